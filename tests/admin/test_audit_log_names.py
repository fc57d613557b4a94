"""The audit log names people and links to them: the staff user and the contact."""

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from tests.factories import AuditEventFactory, ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

AUDIT_LOG = reverse("admin:core_auditevent_changelist")


def test_the_staff_user_is_named_and_linked_for_a_viewer_who_may_see_users(
    as_superuser: Client,
) -> None:
    marie = UserFactory(username="mketer", first_name="Marie", last_name="Keter")
    AuditEventFactory(user=marie, username="mketer")

    page = as_superuser.get(AUDIT_LOG).content.decode()

    user_page = reverse("admin:auth_user_change", args=[marie.pk])
    assert f'<a href="{user_page}">Marie Keter (mketer)</a>' in page


def test_the_dpo_reads_the_name_without_a_link_to_the_user_page(as_dpo: Client) -> None:
    marie = UserFactory(username="mketer", first_name="Marie", last_name="Keter")
    AuditEventFactory(user=marie, username="mketer")

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert "Marie Keter (mketer)" in page
    assert reverse("admin:auth_user_change", args=[marie.pk]) not in page


def test_a_deleted_account_keeps_its_username(as_dpo: Client) -> None:
    AuditEventFactory(user=None, username="gone-user")

    assert "gone-user" in as_dpo.get(AUDIT_LOG).content.decode()


def test_the_contact_links_to_its_page_and_to_its_events(as_dpo: Client, dpo: AbstractUser) -> None:
    ines = ContactFactory(first_name="Inès", last_name="Moreau", email="ines.moreau@example.fr")
    AuditEventFactory(user=dpo, username=dpo.username, contact=ines)

    page = as_dpo.get(AUDIT_LOG).content.decode()

    contact_page = reverse("admin:contacts_contact_change", args=[ines.pk])
    assert f'<a href="{contact_page}">Inès Moreau &lt;ines.moreau@example.fr&gt;</a>' in page
    assert f"{AUDIT_LOG}?contact__id__exact={ines.pk}" in page


def test_an_erased_contact_is_named_as_such_without_a_link(
    as_dpo: Client, dpo: AbstractUser
) -> None:
    ines = ContactFactory(status="erased")
    AuditEventFactory(user=dpo, username=dpo.username, contact=ines)

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert "erased contact" in page
    assert reverse("admin:contacts_contact_change", args=[ines.pk]) not in page


def test_details_read_as_words_and_complex_ones_keep_their_json(
    as_dpo: Client, dpo: AbstractUser
) -> None:
    event = AuditEventFactory(
        user=dpo,
        username=dpo.username,
        details={"search": "martin", "filters": {"status": "active"}, "nested": [{"a": 1}]},
    )

    page = as_dpo.get(AUDIT_LOG).content.decode()
    detail = as_dpo.get(reverse("admin:core_auditevent_change", args=[event.pk]))

    assert "search: martin" in page and "filters: status=active" in page
    assert "nested: [{&quot;a&quot;: 1}]" in page
    assert detail.status_code == 200 and "search: martin" in detail.content.decode()
    assert AuditEvent.objects.count() == 1  # reading the log is not itself logged

import pytest
from django.urls import reverse

from consent.ledger import ledger_verify
from consent.models import ConsentRecord
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def record() -> ConsentRecord:
    return grant(ContactFactory(), PurposeFactory(slug="offers"))


def test_marketer_can_list_and_view_ledger_records(as_marketer, record):
    changelist = as_marketer.get(reverse("admin:consent_consentrecord_changelist"))
    detail = as_marketer.get(reverse("admin:consent_consentrecord_change", args=[record.pk]))

    assert changelist.status_code == 200
    assert str(record.uuid) in changelist.content.decode()
    assert detail.status_code == 200
    assert record.hash in detail.content.decode()
    assert not detail.context["has_change_permission"]


def test_marketer_cannot_change_a_ledger_record(as_marketer, record):
    url = reverse("admin:consent_consentrecord_change", args=[record.pk])

    response = as_marketer.post(url, {"channel": "sms", "wording": "forged"})

    assert response.status_code == 403
    assert ConsentRecord.objects.get(pk=record.pk).hash == record.hash
    assert ledger_verify() == []


def test_marketer_cannot_delete_a_ledger_record(as_marketer, record):
    url = reverse("admin:consent_consentrecord_delete", args=[record.pk])

    assert as_marketer.get(url).status_code == 403
    assert as_marketer.post(url, {"post": "yes"}).status_code == 403
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


def test_ledger_list_offers_no_delete_action(as_marketer, record):
    url = reverse("admin:consent_consentrecord_changelist")

    page = as_marketer.get(url)
    as_marketer.post(url, {"action": "delete_selected", "_selected_action": [record.pk]})

    assert page.context["action_form"] is None
    assert b"delete_selected" not in page.content
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


def test_nobody_can_add_change_or_delete_ledger_records_in_the_admin(as_superuser, record):
    add = as_superuser.get(reverse("admin:consent_consentrecord_add"))
    change = as_superuser.post(
        reverse("admin:consent_consentrecord_change", args=[record.pk]), {"wording": "forged"}
    )
    delete = as_superuser.post(
        reverse("admin:consent_consentrecord_delete", args=[record.pk]), {"post": "yes"}
    )

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert ledger_verify() == []


def test_consent_state_is_read_only(as_superuser, record):
    state = record.contact.consent_states.get()

    change = as_superuser.post(
        reverse("admin:consent_consentstate_change", args=[state.pk]), {"status": "withdrawn"}
    )
    delete = as_superuser.get(reverse("admin:consent_consentstate_delete", args=[state.pk]))

    assert (change.status_code, delete.status_code) == (403, 403)
    state.refresh_from_db()
    assert state.status == "granted"


def test_personal_evidence_is_shown_to_the_dpo_but_not_to_marketers(as_marketer, as_dpo, record):
    url = reverse("admin:consent_consentrecord_change", args=[record.pk])

    seen_by_marketer = as_marketer.get(url).content.decode()
    seen_by_dpo = as_dpo.get(url).content.decode()

    assert "203.0.113.7" not in seen_by_marketer
    assert "203.0.113.7" in seen_by_dpo and "Mozilla/5.0 (test)" in seen_by_dpo

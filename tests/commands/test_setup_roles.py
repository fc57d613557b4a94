from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def setup_roles() -> None:
    call_command("setup_roles", stdout=StringIO())


def permissions(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_marketers_edit_contacts_and_only_view_consents():
    setup_roles()

    granted = permissions("Marketers")

    assert {"contacts.view_contact", "contacts.add_contact", "contacts.change_contact"} <= granted
    assert {
        "contacts.view_interest",
        "contacts.add_interest",
        "contacts.change_interest",
    } <= granted
    assert {
        "contacts.view_timelineevent",
        "consent.view_consentrecord",
        "consent.view_consentstate",
        "consent.view_purpose",
    } <= granted
    forbidden = {
        f"consent.{action}_{model}"
        for action in ("add", "change", "delete")
        for model in ("consentrecord", "consentstate", "purpose", "purposeversion")
    }
    assert "contacts.delete_contact" not in granted
    assert not granted & forbidden
    assert "consent.view_consentevidence" not in granted  # IP and user agent are for the DPO


def test_dpo_manages_purposes_and_requests_and_views_the_ledger():
    setup_roles()

    granted = permissions("DPO")

    assert {
        "consent.view_purpose",
        "consent.add_purpose",
        "consent.change_purpose",
        "consent.add_purposeversion",
        "consent.view_purposeversion",
        "privacy.add_privacyrequest",
        "privacy.change_privacyrequest",
        "privacy.view_privacyrequest",
        "contacts.view_suppression",
        "consent.view_consentrecord",
        "consent.view_consentevidence",
    } <= granted
    assert "contacts.delete_suppression" not in granted


def test_running_it_twice_changes_nothing_and_restores_drifted_groups():
    setup_roles()
    first = {name: permissions(name) for name in ("Marketers", "DPO")}
    marketers = Group.objects.get(name="Marketers")
    user = UserFactory()
    user.groups.add(marketers)
    marketers.permissions.clear()

    setup_roles()

    assert Group.objects.filter(name__in=["Marketers", "DPO"]).count() == 2
    assert {name: permissions(name) for name in ("Marketers", "DPO")} == first
    assert user.groups.get() == marketers  # members are kept


def test_administrators_run_the_tool_and_never_touch_the_ledger_or_contacts():
    setup_roles()

    granted = permissions("Administrators")

    assert {
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "core.view_apiclient",
        "crmsync.view_connection",
        "django_celery_beat.change_periodictask",
        "core.delete_staffdevice",
    } <= granted
    assert not {p for p in granted if p.split(".")[0] in {"consent", "contacts", "privacy"}}
    assert not {"auth.change_group", "auth.delete_user", "core.add_staffdevice"} & granted
    # a key with contacts:read, a webhook to one's own host, a new task with its arguments
    assert (
        not {
            "core.add_apiclient",
            "core.change_apiclient",
            "crmsync.add_connection",
            "crmsync.change_connection",
            "django_celery_beat.add_periodictask",
        }
        & granted
    )

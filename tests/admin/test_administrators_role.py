"""The Administrators role: staff accounts, integrations, schedules and second factors, and no
personal data or ledger."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.admin.conftest import otp_verified_login
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(roles: None) -> object:
    user = UserFactory(username="administrator-persona")
    user.groups.add(Group.objects.get(name="Administrators"))
    return user


@pytest.fixture
def as_administrator(administrator: object) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, administrator)
    return client


def test_an_administrator_creates_a_marketer_account(as_administrator: Client) -> None:
    response = as_administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "new-marketer",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    assert get_user("new-marketer").check_password("a long pass phrase 42")


def get_user(username: str) -> object:
    return UserFactory._meta.model.objects.get(username=username)


def test_an_administrator_gives_roles_but_not_superuser_status_or_loose_permissions(
    as_administrator: Client,
) -> None:
    colleague = UserFactory(username="colleague")

    page = as_administrator.get(reverse("admin:auth_user_change", args=[colleague.pk]))

    form = page.context["adminform"].form
    assert "groups" in form.fields and "is_staff" in form.fields
    assert "is_superuser" not in form.fields and "user_permissions" not in form.fields


def test_an_administrator_cannot_take_over_a_superuser(as_administrator: Client) -> None:
    root = UserFactory(username="root", is_superuser=True)

    response = as_administrator.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": "taken over 1234", "password2": "taken over 1234"},
    )

    assert response.status_code == 403
    root.refresh_from_db()
    assert not root.check_password("taken over 1234")


def test_a_superuser_still_grants_superuser_status(as_superuser: Client) -> None:
    colleague = UserFactory(username="colleague")

    page = as_superuser.get(reverse("admin:auth_user_change", args=[colleague.pk]))

    assert "is_superuser" in page.context["adminform"].form.fields


def test_an_administrator_reschedules_a_periodic_job(as_administrator: Client) -> None:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    task = PeriodicTask.objects.create(name="demo job", task="core.tasks.demo", interval=every_hour)

    assert (
        as_administrator.get(
            reverse("admin:django_celery_beat_periodictask_changelist")
        ).status_code
        == 200
    )
    page = as_administrator.get(
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    )
    assert page.status_code == 200 and page.context["has_change_permission"]


@pytest.mark.parametrize(
    "page",
    [
        "admin:auth_user_changelist",
        "admin:core_apiclient_add",
        "admin:crmsync_connection_add",
        "admin:otp_totp_totpdevice_changelist",
        "admin:axes_accessattempt_changelist",
    ],
)
def test_an_administrator_opens_the_tools_pages(as_administrator: Client, page: str) -> None:
    assert as_administrator.get(reverse(page)).status_code == 200


@pytest.mark.parametrize(
    "page",
    [
        "admin:contacts_contact_changelist",
        "admin:consent_consentrecord_changelist",
        "admin:privacy_privacyrequest_changelist",
        "admin:core_auditevent_changelist",
        "admin:auth_group_add",
    ],
)
def test_an_administrator_sees_no_personal_data_nor_the_ledger(
    as_administrator: Client, page: str
) -> None:
    ContactFactory()

    assert as_administrator.get(reverse(page)).status_code == 403


@pytest.mark.parametrize(
    "page",
    [
        "admin:django_celery_beat_periodictask_changelist",
        "admin:django_celery_beat_periodictask_add",
        "admin:django_celery_beat_crontabschedule_changelist",
        "admin:django_celery_beat_crontabschedule_add",
        "admin:django_celery_beat_intervalschedule_add",
    ],
)
def test_the_schedules_pages_name_every_column_in_translatable_words(
    as_administrator: Client, page: str
) -> None:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="demo job", task="core.tasks.demo", interval=every_hour)

    text = as_administrator.get(reverse(page)).content.decode()

    # django-celery-beat's own labels that no catalogue can translate
    for label in ("Task Name", "Scheduler", "Crontab translation", "Human readable"):
        assert label not in text

"""The Administrators role: staff accounts, integrations, schedules and second factors, and no
personal data or ledger."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.models import ApiClient, AuditAction, AuditEvent
from crmsync.connections import connection_create
from crmsync.models import Connection
from tests.admin.conftest import otp_verified_login
from tests.admin.forms import submitted_form
from tests.crmsync.receiver import SECRET
from tests.factories import ApiClientFactory, ContactFactory, UserFactory

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
    # no password of the administrator's choosing: a superuser sets it (README "Roles")
    assert not get_user("new-marketer").has_usable_password()


def get_user(username: str) -> object:
    return UserFactory._meta.model.objects.get(username=username)


def test_an_administrator_gives_no_roles_superuser_status_or_loose_permissions(
    as_administrator: Client,
) -> None:
    colleague = UserFactory(username="colleague")

    page = as_administrator.get(reverse("admin:auth_user_change", args=[colleague.pk]))

    form = page.context["adminform"].form
    assert "is_staff" in form.fields and "is_active" in form.fields and "email" in form.fields
    assert "groups" not in form.fields  # whoever assigns roles can take any role
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
        "admin:core_apiclient_changelist",
        "admin:crmsync_connection_changelist",
        "admin:core_staffdevice_changelist",
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
        "admin:django_celery_beat_periodictask_change",
        "admin:django_celery_beat_crontabschedule_changelist",
        "admin:django_celery_beat_crontabschedule_add",
        "admin:django_celery_beat_intervalschedule_add",
    ],
)
def test_the_schedules_pages_name_every_column_in_translatable_words(
    as_administrator: Client, page: str
) -> None:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    task = PeriodicTask.objects.create(name="demo job", task="core.tasks.demo", interval=every_hour)
    args = [task.pk] if page.endswith("_change") else []

    response = as_administrator.get(reverse(page, args=args))
    text = response.content.decode()

    assert response.status_code == 200

    # django-celery-beat's own labels that no catalogue can translate
    for label in ("Task Name", "Scheduler", "Crontab translation", "Human readable"):
        assert label not in text


def test_a_superuser_adds_a_periodic_job_named_in_translatable_words(as_superuser: Client) -> None:
    text = as_superuser.get(reverse("admin:django_celery_beat_periodictask_add")).content.decode()

    for label in ("Task Name", "Scheduler", "Crontab translation", "Human readable"):
        assert label not in text


@pytest.fixture
def demo_job() -> PeriodicTask:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(
        name="demo job",
        task="core.tasks.demo",
        interval=every_hour,
        args="[1]",
        kwargs='{"email": "dpo@example.fr"}',
    )


def test_an_administrator_changes_a_jobs_schedule_but_not_what_it_runs(
    as_administrator: Client, demo_job: PeriodicTask
) -> None:
    every_day = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
    url = reverse("admin:django_celery_beat_periodictask_change", args=[demo_job.pk])
    page = as_administrator.get(url)
    form = page.context["adminform"].form
    assert not {"task", "regtask", "args", "kwargs", "queue", "exchange"} & set(form.fields)
    assert not {"routing_key", "headers", "priority"} & set(form.fields)
    assert {"enabled", "interval", "crontab", "one_off", "start_time", "expires"} <= set(
        form.fields
    )
    assert "core.tasks.demo" in page.content.decode()  # shown, read-only

    forged = submitted_form(
        page,
        interval=str(every_day.pk),
        description="daily now",
        task="contacts.tasks.send_address_confirmation",
        regtask="contacts.tasks.send_address_confirmation",
        args='["attacker@example.com"]',
        kwargs='{"to": "attacker@example.com"}',
        queue="elsewhere",
        headers='{"x": 1}',
        priority="9",
    )
    response = as_administrator.post(url, forged)

    assert response.status_code == 302
    demo_job.refresh_from_db()
    assert demo_job.interval == every_day and demo_job.description == "daily now"
    assert (demo_job.task, demo_job.args, demo_job.queue) == ("core.tasks.demo", "[1]", None)
    assert demo_job.kwargs == '{"email": "dpo@example.fr"}' and demo_job.priority is None


def test_an_administrator_adds_no_periodic_job(as_administrator: Client) -> None:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)

    response = as_administrator.post(
        reverse("admin:django_celery_beat_periodictask_add"),
        {"name": "mine", "task": "core.tasks.demo", "interval": every_hour.pk, "enabled": "on"},
    )

    assert response.status_code == 403
    assert not PeriodicTask.objects.filter(name="mine").exists()


@pytest.mark.parametrize("who", ["administrator", "superuser"])
def test_only_a_superuser_runs_a_periodic_job_now(
    as_administrator: Client, as_superuser: Client, demo_job: PeriodicTask, who: str
) -> None:
    client = as_superuser if who == "superuser" else as_administrator
    url = reverse("admin:django_celery_beat_periodictask_changelist")

    offered = client.get(url).context["action_form"].fields["action"].choices
    response = client.post(
        url, {"action": "run_tasks", "_selected_action": [str(demo_job.pk)]}, follow=True
    )
    said = [str(message) for message in response.context["messages"]]

    ran = 'task "core.tasks.demo" not found' in said  # the action ran, found no such task
    assert ran is (who == "superuser")
    assert ("run_tasks" in dict(offered)) is (who == "superuser")


@pytest.mark.parametrize("model", ["core_apiclient", "crmsync_connection"])
def test_api_clients_and_crm_connections_are_view_only_for_an_administrator(
    as_administrator: Client, model: str
) -> None:
    obj: ApiClient | Connection
    if model == "core_apiclient":
        obj = ApiClientFactory()
    else:
        obj = connection_create(
            name="integrator",
            kind="webhook",
            base_url="http://127.0.0.1:9/hooks",
            credentials={"secret": SECRET},
        )

    add = as_administrator.post(reverse(f"admin:{model}_add"), {"name": "mine"})
    page = as_administrator.get(reverse(f"admin:{model}_change", args=[obj.pk]))
    change = as_administrator.post(reverse(f"admin:{model}_change", args=[obj.pk]), {"name": "x"})

    assert add.status_code == 403 and change.status_code == 403
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert type(obj).objects.count() == 1


@pytest.fixture
def seal_ledger() -> PeriodicTask:
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    return PeriodicTask.objects.create(
        name="seal-ledger", task="consent.tasks.seal_ledger", interval=every_minute
    )


def job_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.PERIODIC_TASK_CHANGED))


def test_the_products_own_job_is_read_only_for_an_administrator(
    as_administrator: Client, seal_ledger: PeriodicTask
) -> None:
    url = reverse("admin:django_celery_beat_periodictask_change", args=[seal_ledger.pk])
    page = as_administrator.get(url)
    assert page.status_code == 200 and not page.context["has_change_permission"]

    response = as_administrator.post(
        url,
        {
            "name": "seal-ledger",
            "interval": str(seal_ledger.interval_id),
            "one_off": "on",
            "expires_0": "2020-01-01",
            "expires_1": "00:00:00",
        },
    )

    assert response.status_code == 403
    seal_ledger.refresh_from_db()
    assert seal_ledger.enabled and not seal_ledger.one_off and seal_ledger.expires is None
    assert not job_events()


@pytest.mark.parametrize("action", ["disable_tasks", "toggle_tasks"])
def test_an_administrator_cannot_switch_off_the_products_jobs_in_bulk(
    as_administrator: Client, seal_ledger: PeriodicTask, demo_job: PeriodicTask, action: str
) -> None:
    response = as_administrator.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": action, "_selected_action": [str(seal_ledger.pk), str(demo_job.pk)]},
        follow=True,
    )

    seal_ledger.refresh_from_db()
    demo_job.refresh_from_db()
    assert seal_ledger.enabled and not demo_job.enabled
    said = " ".join(str(message) for message in response.context["messages"])
    assert "only a superuser changes them" in said
    [event] = job_events()
    assert event.username == "administrator-persona"
    assert event.details["jobs"] == ["demo job"]


def test_a_superuser_disables_a_products_job_and_it_is_audited(
    as_superuser: Client, seal_ledger: PeriodicTask
) -> None:
    as_superuser.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "disable_tasks", "_selected_action": [str(seal_ledger.pk)]},
    )

    seal_ledger.refresh_from_db()
    assert not seal_ledger.enabled
    [event] = job_events()
    assert event.details == {"jobs": ["seal-ledger"], "done": "disabled"}


def test_an_administrators_change_to_another_job_is_audited(
    as_administrator: Client, demo_job: PeriodicTask
) -> None:
    url = reverse("admin:django_celery_beat_periodictask_change", args=[demo_job.pk])

    response = as_administrator.post(
        url, submitted_form(as_administrator.get(url), description="quieter", enabled=None)
    )

    assert response.status_code == 302
    demo_job.refresh_from_db()
    assert not demo_job.enabled
    [event] = job_events()
    assert event.details["job"] == "demo job" and event.details["done"] == "changed"
    assert set(event.details["fields"]) == {"description", "enabled"}


def test_the_schedule_of_a_products_job_is_read_only_for_an_administrator(
    as_administrator: Client, seal_ledger: PeriodicTask
) -> None:
    every_minute = seal_ledger.interval
    url = reverse("admin:django_celery_beat_intervalschedule_change", args=[every_minute.pk])

    response = as_administrator.post(url, {"every": "1", "period": IntervalSchedule.SECONDS})

    assert response.status_code == 403
    every_minute.refresh_from_db()
    assert every_minute.period == IntervalSchedule.MINUTES

"""django-celery-beat's admin (and django-axes') in French: none of the English labels that
core/third_party_labels.py lists is left on their pages.

The French comes from our catalogue (locale/), which takes precedence over the apps' own.
"""

import html
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from core.third_party_labels import AXES, CELERY_BEAT
from tests.admin.conftest import otp_verified_login
from tests.factories import TOTPDeviceFactory, UserFactory

BEAT_PAGES = [
    f"admin:django_celery_beat_{model}_{view}"
    for model in ("periodictask", "intervalschedule", "crontabschedule", "solarschedule")
    for view in ("changelist", "add")
] + ["admin:django_celery_beat_clockedschedule_changelist", "admin:axes_accessattempt_changelist"]
# Written the same in French (listed to replace the app's "Minute⋅s").
SAME_IN_FRENCH = {"Minute(s)"}


def french(msgid: str) -> str:
    with translation.override("fr"):
        return translation.gettext(msgid)


pytestmark = pytest.mark.django_db


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style|svg|select)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "\n", page))


def left_in_english(text: str, msgids: tuple[str, ...]) -> list[str]:
    """The msgids shown as such (unless their French keeps the English word: "Exchange AMQP")."""
    return [
        msgid
        for msgid in msgids
        if msgid not in SAME_IN_FRENCH
        and not (french(msgid) != msgid and msgid in french(msgid))
        and re.search(r"(?<!\w)" + re.escape(msgid) + r"(?!\w)", text)
    ]


@pytest.fixture
def superuser() -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    otp_verified_login(client, UserFactory(username="root", is_superuser=True))
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="nightly", task="core.tasks.demo", interval=every_hour)
    CrontabSchedule.objects.create(minute="0", hour="3")
    ClockedSchedule.objects.create(clocked_time=timezone.now())
    SolarSchedule.objects.create(event="sunrise", latitude=48.85, longitude=2.35)
    return client


def test_the_periodic_jobs_pages_read_in_french(superuser: Client) -> None:
    task = PeriodicTask.objects.get(name="nightly")
    pages = [reverse(name) for name in BEAT_PAGES]
    pages.append(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]))

    english = {}
    for url in pages:
        response = superuser.get(url)
        assert response.status_code == 200, url
        found = left_in_english(visible_text(response.content.decode()), CELERY_BEAT + AXES)
        if found:
            english[url] = found

    assert english == {}


def test_a_cron_schedule_reads_in_words_in_the_reader_s_language(superuser: Client) -> None:
    changelist = reverse("admin:django_celery_beat_crontabschedule_changelist")

    french = visible_text(superuser.get(changelist).content.decode())
    superuser.cookies["django_language"] = "en"
    english = visible_text(superuser.get(changelist).content.decode())

    assert "À 03:00" in french and "At 03:00" not in french
    assert "At 03:00" in english


def test_the_authenticator_apps_read_in_french(superuser: Client) -> None:
    device = TOTPDeviceFactory(user=UserFactory(username="camille"))

    listed = visible_text(
        superuser.get(reverse("admin:core_staffdevice_changelist")).content.decode()
    )
    shown = visible_text(
        superuser.get(reverse("admin:core_staffdevice_change", args=[device.pk])).content.decode()
    )

    for text in (listed, shown):
        assert "TOTP" not in text and "Last used at" not in text and "Created at" not in text
    assert "Applications d’authentification (double authentification)" in listed
    assert "Dernière utilisation le" in listed and "camille" in listed

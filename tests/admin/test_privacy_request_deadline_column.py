"""The register of requests fits a 1,366 px screen: the deadline in words, near the left."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from consent.models import SourceKind
from privacy.admin import PrivacyRequestAdmin, deadline_class
from privacy.models import PrivacyRequest
from privacy.selectors import request_deadline_in_words
from privacy.services import privacy_request_transition
from tests.factories import PrivacyRequestFactory

CHANGELIST = reverse("admin:privacy_privacyrequest_changelist")
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("due_at", "words", "css_class"),
    [
        (NOW - timedelta(days=4), "4 days late", "deadline-late"),
        (NOW - timedelta(days=1), "1 day late", "deadline-late"),
        (NOW - timedelta(hours=2), "late since today", "deadline-late"),
        (NOW + timedelta(hours=2), "due today", "deadline-soon"),
        (NOW + timedelta(days=3), "due in 3 days", "deadline-soon"),
        (NOW + timedelta(days=1), "due in 1 day", "deadline-soon"),
        (NOW + timedelta(days=20), "due in 20 days", "deadline-later"),
    ],
)
def test_a_deadline_reads_in_calendar_days(due_at: datetime, words: str, css_class: str) -> None:
    with timezone.override(PARIS):
        assert request_deadline_in_words(due_at=due_at, now=NOW) == words
        assert deadline_class(due_at, NOW) == css_class


def test_the_register_has_few_columns_the_deadline_first() -> None:
    columns = PrivacyRequestAdmin.list_display

    assert columns[0] == "deadline" and len(columns) <= 5


def filed(days_ago: int, **kwargs: object) -> PrivacyRequest:
    at = timezone.now() - timedelta(days=days_ago)
    return PrivacyRequestFactory(
        at=at, type="rectification", source_kind=SourceKind.WEB_FORM, **kwargs
    )


@pytest.mark.django_db
def test_late_requests_are_highlighted_in_words_and_closed_ones_have_no_deadline(
    as_dpo: Client,
) -> None:
    with freeze_time(timezone.now()):
        late, soon, later = filed(40), filed(27), filed(1)
        done = privacy_request_transition(
            request=filed(60, verified=True), status="completed", by="dpo", note="Done."
        )
        late.refresh_from_db()
        soon.refresh_from_db()
        later.refresh_from_db()

        response = as_dpo.get(CHANGELIST)

    page = response.content.decode()
    model_admin = response.context["cl"].model_admin
    late_days = (timezone.localdate() - timezone.localdate(late.due_at)).days
    assert 'class="deadline deadline-late"' in page and f"{late_days} days late" in page
    assert "deadline deadline-soon" in page and "deadline deadline-later" in page
    assert model_admin.deadline(done) == "-"
    assert "held" not in model_admin.status_and_hold(soon)

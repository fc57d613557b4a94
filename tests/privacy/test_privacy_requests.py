"""Filing a privacy request: due one calendar month after receipt (GDPR Art. 12(3)), in Paris."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from contacts.models import TimelineEvent
from privacy.models import PrivacyRequest
from tests.factories import ContactFactory, PrivacyRequestFactory

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-01-15T10:00:00+01:00", datetime(2026, 2, 15, 10, tzinfo=PARIS)),
        ("2026-01-31T10:00:00+01:00", datetime(2026, 2, 28, 10, tzinfo=PARIS)),
        ("2028-01-31T10:00:00+01:00", datetime(2028, 2, 29, 10, tzinfo=PARIS)),
        ("2026-12-31T10:00:00+01:00", datetime(2027, 1, 31, 10, tzinfo=PARIS)),
    ],
)
def test_request_is_due_one_calendar_month_after_receipt(received, due):
    request = PrivacyRequestFactory(at=received)

    assert request.due_at == due


def test_due_date_follows_the_calendar_of_paris_not_of_utc():
    # 31 March 00:30 in Paris is still 30 March in UTC: the month runs to 30 April in Paris
    request = PrivacyRequestFactory(at="2026-03-31T00:30:00+02:00")

    assert request.due_at.astimezone(PARIS) == datetime(2026, 4, 30, 0, 30, tzinfo=PARIS)


def test_request_history_starts_with_its_first_status():
    contact = ContactFactory()

    request = PrivacyRequestFactory(
        at="2026-01-31T10:00:00+01:00", contact=contact, type="erasure", by="api:crm"
    )

    [event] = request.history.all()
    assert (event.status, event.at, event.by) == ("received", request.received_at, "api:crm")
    assert TimelineEvent.objects.get(contact=contact, kind="request_filed").summary == "erasure"


def test_request_from_a_verified_channel_starts_verified():
    request = PrivacyRequestFactory(
        at="2026-01-31T10:00:00+01:00", type="portability", verified=True
    )

    assert request.status == "verified"
    assert list(request.history.values_list("status", flat=True)) == ["verified"]


def test_unknown_request_type_is_an_error_on_type():
    with pytest.raises(ValidationError) as error:
        PrivacyRequestFactory(at="2026-01-31T10:00:00+01:00", type="revenge")

    assert list(error.value.message_dict) == ["type"]
    assert not PrivacyRequest.objects.exists()

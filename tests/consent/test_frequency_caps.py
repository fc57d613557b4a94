"""The channels' marketing caps (issue 13 point 4): per channel, edited in the admin, the
settings' `MARKETING_CAPS` where a channel has none, applied by both forms of the eligibility
rule and by the audience preview, read once rather than once per contact."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.selectors import campaign_audience
from consent.eligibility import (
    CALLS_PER_PERIOD,
    Ineligible,
    contact_eligibility,
    eligible_contacts,
    frequency_limits,
)
from consent.models import Channel, FrequencyCap, MessageSent, Purpose
from consent.selectors import (
    FREQUENCY_CAPS_CACHE_KEY,
    frequency_caps_by_channel,
    frequency_caps_in_force,
)
from consent.services import frequency_cap_delete, frequency_cap_save
from contacts.models import Contact
from core.models import AuditAction, AuditEvent
from tests.admin.conftest import otp_verified_login
from tests.factories import ContactFactory, PurposeFactory, UserFactory, campaign_make, grant

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:consent_frequencycap_changelist")
ADD = reverse("admin:consent_frequencycap_add")


@pytest.fixture(autouse=True)
def default_caps(settings) -> None:
    settings.MARKETING_CAPS = {"day": 1, "week": 3}


@pytest.fixture
def offers() -> Purpose:
    return PurposeFactory(slug="offers", channels=["email", "sms", "phone"])


@pytest.fixture
def subscriber(offers: Purpose) -> Contact:
    contact = ContactFactory(phone="+33612345678")
    grant(contact, offers, "email")
    grant(contact, offers, "sms")
    return contact


def staff_client(group: str) -> Client:
    call_command("setup_roles", stdout=StringIO())
    user = UserFactory(username=f"{group.lower()}-caps")
    user.groups.add(Group.objects.get(name=group))
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, user)
    return client


@pytest.fixture
def as_marketer() -> Client:
    return staff_client("Marketers")


@pytest.fixture
def as_dpo() -> Client:
    return staff_client("DPO")


def sent(contact: Contact, purpose: Purpose, channel: str = "email", **ago: float) -> None:
    MessageSent.objects.create(
        contact=contact, purpose=purpose, channel=channel, sent_at=timezone.now() - timedelta(**ago)
    )


def both_forms(contact: Contact, purpose: Purpose, channel: str = "email") -> tuple[list, bool]:
    """The explanation of the contact, and whether the audience in SQL selects them."""
    return (
        contact_eligibility(contact, purpose, channel),
        eligible_contacts(purpose, channel).filter(pk=contact.pk).exists(),
    )


def change_url(channel: str) -> str:
    return reverse(
        "admin:consent_frequencycap_change", args=[FrequencyCap.objects.get(channel=channel).pk]
    )


def delete_url(channel: str) -> str:
    return reverse(
        "admin:consent_frequencycap_delete", args=[FrequencyCap.objects.get(channel=channel).pk]
    )


# --- edited in the admin ------------------------------------------------------------------


def test_a_cap_edited_in_the_admin_changes_who_is_eligible_in_both_forms(
    as_marketer: Client, subscriber: Contact, offers: Purpose, django_capture_on_commit_callbacks
):
    # given a message this morning: the default cap of one a day is reached (and cached)
    sent(subscriber, offers, hours=3)
    campaign = campaign_make(offers)
    assert both_forms(subscriber, offers) == ([Ineligible.FREQUENCY], False)
    assert campaign_audience(campaign)[0].excluded == {"frequency": 1}

    # when a marketer allows two emails a day
    with django_capture_on_commit_callbacks(execute=True):
        response = as_marketer.post(ADD, {"channel": "email", "per_day": 2, "per_week": 5})

    # then the subscriber may receive another one, in both forms and in the preview
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert both_forms(subscriber, offers) == ([], True)
    (audience,) = campaign_audience(campaign)
    assert (audience.eligible, audience.excluded) == (1, {})

    # and back to one a day on the change form, they may not
    with django_capture_on_commit_callbacks(execute=True):
        response = as_marketer.post(change_url("email"), {"per_day": 1, "per_week": 5})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert both_forms(subscriber, offers) == ([Ineligible.FREQUENCY], False)
    (audience,) = campaign_audience(campaign)
    assert (audience.eligible, audience.excluded) == (0, {"frequency": 1})


def test_the_change_is_written_to_the_audit_log_and_the_row_names_who_made_it(
    as_marketer: Client,
):
    as_marketer.post(ADD, {"channel": "sms", "per_day": 2, "per_week": 4})

    cap = FrequencyCap.objects.get(channel="sms")
    assert cap.updated_by is not None and cap.updated_by.username == "marketers-caps"
    event = AuditEvent.objects.get(action=AuditAction.FREQUENCY_CAP)
    assert event.username == "marketers-caps"
    assert event.details == {
        "channel": "sms",
        "before": {"per_day": 1, "per_week": 3},
        "after": {"per_day": 2, "per_week": 4},
        "default": False,
    }


def test_removing_a_channels_caps_in_the_admin_returns_it_to_the_defaults(
    as_marketer: Client, subscriber: Contact, offers: Purpose, django_capture_on_commit_callbacks
):
    frequency_cap_save(channel="email", per_day=3, per_week=6, by=None)
    sent(subscriber, offers, hours=3)
    assert both_forms(subscriber, offers) == ([], True)

    with django_capture_on_commit_callbacks(execute=True):
        response = as_marketer.post(delete_url("email"), {"post": "yes"})

    assert response.status_code == 302
    assert not FrequencyCap.objects.exists()
    assert both_forms(subscriber, offers) == ([Ineligible.FREQUENCY], False)
    event = AuditEvent.objects.get(action=AuditAction.FREQUENCY_CAP)
    assert event.details["after"] == {"per_day": 1, "per_week": 3}
    assert event.details["default"] is True


def test_the_list_shows_every_channel_with_the_caps_in_force(as_dpo: Client):
    frequency_cap_save(channel="sms", per_day=0, per_week=2, by=None)

    page = as_dpo.get(CHANGELIST)

    assert page.status_code == 200
    lines = {line["channel"]: line for line in page.context["caps_in_force"]}
    assert set(lines) == {str(label) for label in Channel.labels}
    email, sms = lines["Email"]["caps"], lines["SMS"]["caps"]
    assert (email.per_day, email.per_week, email.is_default) == (1, 3, True)
    assert (sms.per_day, sms.per_week, sms.is_default) == (0, 2, False)
    assert "default (settings)" in page.content.decode()
    assert lines["Email"]["url"] == ""  # the DPO views them only


def test_the_dpo_views_the_caps_but_cannot_change_them(as_dpo: Client):
    frequency_cap_save(channel="sms", per_day=1, per_week=2, by=None)

    added = as_dpo.post(ADD, {"channel": "email", "per_day": 5, "per_week": 9})
    changed = as_dpo.post(change_url("sms"), {"per_day": 5, "per_week": 9})

    assert (added.status_code, changed.status_code) == (403, 403)
    assert list(FrequencyCap.objects.values_list("channel", "per_day")) == [("sms", 1)]


def test_a_marketer_is_offered_the_channels_without_caps_starting_from_the_defaults(
    as_marketer: Client,
):
    frequency_cap_save(channel="sms", per_day=1, per_week=2, by=None)

    page = as_marketer.get(ADD + "?channel=postal")

    form = page.context["adminform"].form
    assert "sms" not in dict(form.fields["channel"].choices)
    assert form.initial == {"per_day": 1, "per_week": 3, "channel": "postal"}


@pytest.mark.parametrize(
    ("per_day", "per_week", "field"),
    [(-1, 3, "per_day"), (1, -2, "per_week"), (3, 2, "per_week"), ("", 3, "per_day")],
)
def test_the_admin_refuses_invalid_caps_with_a_field_error(
    as_marketer: Client, per_day, per_week, field
):
    response = as_marketer.post(ADD, {"channel": "email", "per_day": per_day, "per_week": per_week})

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not FrequencyCap.objects.exists()


@pytest.mark.parametrize(("per_day", "per_week"), [(3, 0), (0, 2), (0, 0), (2, 2)])
def test_a_weekly_cap_below_the_daily_one_is_refused_unless_one_of_them_is_zero(
    per_day: int, per_week: int
):
    frequency_cap_save(channel="email", per_day=per_day, per_week=per_week, by=None)

    assert frequency_caps_in_force("email", cached=False).per_week == per_week
    with pytest.raises(ValidationError) as refused:
        frequency_cap_save(channel="sms", per_day=3, per_week=2, by=None)
    assert list(refused.value.message_dict) == ["per_week"]
    assert "lower than the cap per day" in refused.value.message_dict["per_week"][0]


# --- the rule ------------------------------------------------------------------------------


def test_a_channels_caps_do_not_affect_another_channel(subscriber: Contact, offers: Purpose):
    frequency_cap_save(channel="sms", per_day=3, per_week=5, by=None)
    sent(subscriber, offers, "email", hours=3)
    sent(subscriber, offers, "sms", hours=3)
    sent(subscriber, offers, "sms", hours=2)

    assert both_forms(subscriber, offers, "email") == ([Ineligible.FREQUENCY], False)
    assert both_forms(subscriber, offers, "sms") == ([], True)


def test_zero_means_no_cap(
    subscriber: Contact, offers: Purpose, django_capture_on_commit_callbacks
):
    frequency_cap_save(channel="email", per_day=0, per_week=0, by=None)
    for hours in (1, 2, 3, 30, 60):
        sent(subscriber, offers, hours=hours)
    assert both_forms(subscriber, offers) == ([], True)

    with django_capture_on_commit_callbacks(execute=True):
        frequency_cap_save(channel="email", per_day=0, per_week=5, by=None)
    assert both_forms(subscriber, offers) == ([Ineligible.FREQUENCY], False)


def test_the_persons_own_frequency_still_applies_without_caps(subscriber: Contact, offers: Purpose):
    frequency_cap_save(channel="email", per_day=0, per_week=0, by=None)
    subscriber.frequency = "weekly"
    subscriber.save()
    sent(subscriber, offers, days=3)

    assert both_forms(subscriber, offers) == ([Ineligible.FREQUENCY], False)


def test_without_a_row_the_settings_are_the_default(settings, subscriber: Contact, offers):
    settings.MARKETING_CAPS = {"day": 2, "week": 0}
    frequency_cap_save(channel="sms", per_day=1, per_week=1, by=None)
    sent(subscriber, offers, "email", hours=3)
    assert both_forms(subscriber, offers, "email") == ([], True)

    sent(subscriber, offers, "email", hours=2)
    assert both_forms(subscriber, offers, "email") == ([Ineligible.FREQUENCY], False)
    assert frequency_caps_by_channel()["postal"] == frequency_caps_in_force("postal")
    assert frequency_caps_in_force("postal").is_default


def test_without_a_channel_the_limits_are_the_defaults(settings):
    frequency_cap_save(channel="email", per_day=5, per_week=10, by=None)
    settings.MARKETING_CAPS = {"day": 2, "week": 4}
    at = timezone.now()

    global_caps = [limit.count for limit in frequency_limits(at) if limit.frequency is None]
    email_caps = [limit.count for limit in frequency_limits(at, "email") if not limit.frequency]

    assert global_caps == [2, 4]
    assert email_caps == [5, 10]


def test_the_legal_cap_of_phone_calls_stays_whatever_the_channels_caps():
    frequency_cap_save(channel="phone", per_day=0, per_week=0, by=None)

    limits = frequency_limits(timezone.now(), Channel.PHONE)

    assert [(limit.count, limit.consumers_only) for limit in limits if limit.frequency is None] == [
        (CALLS_PER_PERIOD, True)
    ]


# --- read once -----------------------------------------------------------------------------


def test_the_caps_are_read_from_the_cache_which_saving_and_removing_clear(
    django_capture_on_commit_callbacks,
):
    frequency_cap_save(channel="email", per_day=2, per_week=4, by=None)
    assert frequency_caps_in_force("email").per_day == 2  # read and cached

    # a write that bypasses the service is not seen: the caps come from the cache
    FrequencyCap.objects.filter(channel="email").update(per_day=7)
    assert frequency_caps_in_force("email").per_day == 2

    with django_capture_on_commit_callbacks(execute=True):
        frequency_cap_save(channel="email", per_day=3, per_week=4, by=None)
    assert cache.get(FREQUENCY_CAPS_CACHE_KEY) is None
    assert frequency_caps_in_force("email").per_day == 3

    with django_capture_on_commit_callbacks(execute=True):
        frequency_cap_delete(channel="email")
    assert cache.get(FREQUENCY_CAPS_CACHE_KEY) is None
    assert frequency_caps_in_force("email").is_default


def test_explaining_many_contacts_reads_the_caps_once(offers: Purpose):
    frequency_cap_save(channel="email", per_day=2, per_week=4, by=None)
    contacts = [ContactFactory() for _ in range(6)]
    for contact in contacts:
        grant(contact, offers, "email")
    cache.clear()

    with CaptureQueriesContext(connection) as queries:
        for contact in contacts:
            contact_eligibility(contact, offers, "email")

    caps_reads = [q for q in queries.captured_queries if "consent_frequencycap" in q["sql"]]
    assert len(caps_reads) == 1


def test_the_audience_count_does_not_run_a_query_per_contact(
    offers: Purpose, django_assert_max_num_queries
):
    frequency_cap_save(channel="email", per_day=2, per_week=4, by=None)
    for _ in range(12):
        contact = ContactFactory()
        grant(contact, offers, "email")
        sent(contact, offers, hours=1)
    campaign = campaign_make(offers)
    cache.clear()

    # the steps, the wording versions, the caps, and one count for the step: not 12 more
    with django_assert_max_num_queries(4):
        (audience,) = campaign_audience(campaign)

    assert audience.eligible == 12

"""Objection stays objection (GDPR Art. 21(2), 21(3)): an objection request or an unsubscribe
from all also covers legitimate-interest purposes and channels created afterwards, until the
person takes it back for one of them (a tick) or for all (resubscribe)."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from consent.eligibility import contact_eligibility, eligible_contacts
from consent.models import LegalBasis, Purpose, SourceKind
from contacts.models import Contact, TimelineKind
from contacts.services import timeline_add
from crmsync.models import OutboxEvent
from preferences.services import preference_token_issue
from privacy.models import PrivacyRequestType
from privacy.services import privacy_request_carry_out, privacy_request_file
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import BROWSER, center_path, post_form, read_page, save_consents

pytestmark = pytest.mark.django_db

INTERESTS = LegalBasis.LEGITIMATE_INTERESTS


def reasons(contact: Contact, purpose: Purpose, channel: str = "email") -> list[str]:
    """Both forms of the rule, which must agree: the explanation, and the audience in SQL."""
    contact = Contact.objects.get(pk=contact.pk)
    purpose = Purpose.objects.get(pk=purpose.pk)
    explained = contact_eligibility(contact, purpose, channel)
    in_audience = eligible_contacts(purpose, channel).filter(pk=contact.pk).exists()
    assert in_audience is (explained == [])
    return explained


def object_by_request(contact: Contact) -> None:
    request = privacy_request_file(
        contact=contact,
        type=PrivacyRequestType.OBJECTION,
        source_kind=SourceKind.API,
        verified=True,
    )
    privacy_request_carry_out(request_id=str(request.id))


@pytest.fixture
def camille() -> Contact:
    # a professional address: legitimate interest reaches her by email (CPCE L34-5)
    return ContactFactory(email="camille@example.fr", language="en", phone="+33612345678", b2b=True)


@pytest.fixture
def news() -> Purpose:
    return PurposeFactory(slug="news", legal_basis=INTERESTS, channels=["email"])


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


def test_an_objection_covers_legitimate_interest_purposes_and_channels_created_afterwards(
    camille, news, newsletter
):
    # given a consent and a legitimate interest, then an objection request
    grant(camille, newsletter)
    object_by_request(camille)

    # when a legitimate-interest purpose is created, and the old one gains a channel
    surveys = PurposeFactory(slug="surveys", legal_basis=INTERESTS, channels=["email"])
    Purpose.objects.filter(pk=news.pk).update(channels=["email", "sms"])

    # then both stay objected; the consent the person gave is untouched
    assert reasons(camille, surveys) == ["objected"]
    assert reasons(camille, news, "sms") == ["objected"]
    assert reasons(camille, news) == ["objected"]
    assert reasons(camille, newsletter) == []
    camille.refresh_from_db()
    assert camille.marketing_objected_at is not None
    assert camille.timeline.filter(kind=TimelineKind.OBJECTION).count() == 1


def test_an_unsubscribe_from_all_objects_until_the_person_resubscribes(
    client: Client, camille, news, newsletter
):
    # given an unsubscribe from all in the preference center
    grant(camille, newsletter)
    token = preference_token_issue(contact=camille)
    post_form(client, token, "unsubscribe")

    # when a legitimate-interest purpose is created afterwards
    surveys = PurposeFactory(slug="surveys", legal_basis=INTERESTS, channels=["email"])

    # then it is objected, and the page shows it off
    assert reasons(camille, surveys) == ["objected", "suppressed"]
    page = read_page(client.get(center_path(token, lang="en"), **BROWSER))
    assert "surveys:email" not in page.checked()

    # until the person resubscribes: the objection is lifted, for the new purpose too
    post_form(client, token, "resubscribe")
    assert reasons(camille, surveys) == []
    assert reasons(camille, news) == []
    assert reasons(camille, newsletter) == []
    camille.refresh_from_db()
    assert camille.marketing_objected_at is None


def test_ticking_one_legitimate_interest_again_lifts_the_objection_for_it_alone(
    client: Client, camille, news
):
    token = preference_token_issue(contact=camille)
    post_form(client, token, "unsubscribe")
    surveys = PurposeFactory(slug="surveys", legal_basis=INTERESTS, channels=["email"])
    tips = PurposeFactory(slug="tips", legal_basis=INTERESTS, channels=["email"])

    save_consents(client, token, tick=["surveys:email"], lang="en")

    page = read_page(client.get(center_path(token, lang="en"), **BROWSER))
    assert page.checked() == {"surveys:email"}
    assert "suppressed" not in reasons(camille, surveys)  # the person's own tick lifted it
    assert reasons(camille, surveys) == []
    assert reasons(camille, tips) == ["objected"]
    assert reasons(camille, news) == ["objected"]


def test_a_grant_older_than_the_objection_does_not_lift_it(camille, news):
    # a legitimate-interest grant recorded before the objection request
    grant(camille, news)
    object_by_request(camille)
    assert reasons(camille, news) == ["objected"]

    # a CRM replaying that older grant changes nothing either (state follows time)
    grant(camille, news, source_kind="crm", given_at=timezone.now() - timedelta(days=3))
    assert reasons(camille, news) == ["objected"]


def test_the_crms_learn_of_the_objection(camille, news):
    object_by_request(camille)

    event = OutboxEvent.objects.filter(topic="contact.updated").order_by("-id").first()
    assert event.payload["objected_to_marketing"] is True
    assert event.payload["changed"] == ["marketing_objection"]


def test_the_migration_dates_the_objection_of_people_who_unsubscribed_before_it(camille, news):
    # given people who unsubscribed or objected before the flag existed, one of whom came back
    migration = importlib.import_module("contacts.migrations.0009_contact_marketing_objected_at")
    left, came_back = ContactFactory(), ContactFactory()
    for contact in (camille, left, came_back):
        timeline_add(contact=contact, kind=TimelineKind.UNSUBSCRIBED, summary="-")
    timeline_add(contact=camille, kind=TimelineKind.OBJECTION, summary="-")
    timeline_add(contact=came_back, kind=TimelineKind.RESUBSCRIBED, summary="-")

    migration.fill_marketing_objection(apps, None)

    dated = dict(Contact.objects.values_list("pk", "marketing_objected_at"))
    last_objection = camille.timeline.filter(kind=TimelineKind.OBJECTION).get().occurred_at
    assert dated[camille.pk] == last_objection
    assert dated[left.pk] is not None
    assert dated[came_back.pk] is None
    assert reasons(left, news) == ["objected"]

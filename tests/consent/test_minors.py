"""Children (issue 12, point 2; GDPR Art. 8, loi Informatique et Libertés art. 45): a birth
year and a country give the age of digital consent; under it, consent-based marketing needs
the guardian's consent recorded in the ledger (in France, with the child's)."""

import pytest
from django.utils import timezone

from consent.eligibility import contact_eligibility, eligible_contacts
from consent.minors import digital_consent_age, possibly_under_age
from consent.models import ConsentEvidence, ConsentRecord, ConsentState, LegalBasis
from consent.services import Evidence
from contacts.models import Contact
from privacy.services import contact_erase
from tests.api.payloads import consent_body
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

CONSENTS = "/api/v1/consents/"
GUARDIAN = {"name": "Alex Martin", "contact": "alex.martin@example.fr"}


def born(age: int) -> int:
    """The birth year of someone who turns `age` this year."""
    return timezone.now().year - age


def guardian_grant(contact: Contact, purpose, actor: str) -> ConsentRecord:
    return grant(
        contact,
        purpose,
        actor=actor,
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            guardian_name=GUARDIAN["name"],
            guardian_contact=GUARDIAN["contact"],
        ),
    )


def test_the_age_of_digital_consent_follows_the_country_of_residence():
    assert digital_consent_age("FR") == 15
    assert digital_consent_age("fr") == 15
    assert (digital_consent_age("DE"), digital_consent_age("BE")) == (16, 13)
    assert digital_consent_age("") == 16  # the GDPR's default
    assert digital_consent_age("US") == 16


@pytest.mark.parametrize(
    ("age", "country", "minor"),
    [
        (14, "FR", True),
        (15, "FR", True),
        (16, "FR", False),
        (13, "BE", True),
        (14, "BE", False),
        (16, "DE", True),
    ],
)
def test_a_birth_year_counts_as_under_age_when_the_person_may_be(age, country, minor):
    # turning 15 this year in France: maybe still 14 today, so a child until proven otherwise
    contact = ContactFactory(birth_year=born(age), country=country)

    assert possibly_under_age(contact, timezone.now()) is minor


def test_a_french_child_whose_own_grant_is_the_only_one_is_excluded_as_minor():
    purpose = PurposeFactory()
    child = ContactFactory(birth_year=born(13), country="FR")
    grant(child, purpose)

    assert contact_eligibility(child, purpose, "email") == ["minor"]
    assert not eligible_contacts(purpose, "email").filter(pk=child.pk).exists()


def test_in_france_the_guardian_alone_is_not_enough_the_child_consents_too():
    purpose = PurposeFactory()
    alone, jointly = (ContactFactory(birth_year=born(13), country="FR") for _ in range(2))
    guardian_grant(alone, purpose, "guardian")
    guardian_grant(jointly, purpose, "person_and_guardian")

    assert contact_eligibility(alone, purpose, "email") == ["minor"]
    assert contact_eligibility(jointly, purpose, "email") == []
    assert list(eligible_contacts(purpose, "email")) == [jointly]


def test_elsewhere_the_guardians_consent_suffices():
    purpose = PurposeFactory()
    child = ContactFactory(birth_year=born(12), country="DE")
    guardian_grant(child, purpose, "guardian")

    assert contact_eligibility(child, purpose, "email") == []


def test_a_flagged_minor_without_a_birth_year_counts_as_under_age():
    purpose = PurposeFactory()
    child = ContactFactory(is_minor=True, country="IT")
    grant(child, purpose)

    assert contact_eligibility(child, purpose, "email") == ["minor"]
    guardian_grant(child, purpose, "guardian")
    assert contact_eligibility(child, purpose, "email") == []


def test_a_child_is_not_marketed_to_under_a_legitimate_interest_either():
    # by post, where legitimate interest reaches anyone who has not objected
    purpose = PurposeFactory(legal_basis=LegalBasis.LEGITIMATE_INTERESTS, channels=["postal"])
    child = ContactFactory(
        birth_year=born(10), country="ES", address_line1="1 calle Mayor", city="Madrid"
    )
    adult = ContactFactory(birth_year=born(30), address_line1="1 rue Haute", city="Lyon")

    assert contact_eligibility(child, purpose, "postal") == ["minor"]
    assert contact_eligibility(adult, purpose, "postal") == []


def test_a_later_grant_by_the_child_alone_replaces_the_guardians():
    purpose = PurposeFactory()
    child = ContactFactory(birth_year=born(12), country="DE")
    guardian_grant(child, purpose, "guardian")
    grant(child, purpose, action="withdraw")
    grant(child, purpose)

    assert contact_eligibility(child, purpose, "email") == ["minor"]
    assert not eligible_contacts(purpose, "email").filter(pk=child.pk).exists()


def test_each_state_names_the_actor_of_the_record_behind_it():
    """The audience reads who set a pair's state from the state itself (no join to the
    ledger): it must be its record's actor after every write."""
    purpose = PurposeFactory()
    child = ContactFactory(birth_year=born(12), country="DE")

    guardian_grant(child, purpose, "guardian")
    state = ConsentState.objects.get(contact=child, purpose=purpose, channel="email")
    assert state.actor == state.record.actor == "guardian"
    assert eligible_contacts(purpose, "email").filter(pk=child.pk).exists()

    grant(child, purpose, action="withdraw")
    state.refresh_from_db()
    assert state.actor == state.record.actor == "person"


def test_the_api_sets_the_birth_year_and_answers_it(api):
    created = api().post(
        "/api/v1/contacts/",
        {"email": "zoe@example.fr", "birth_year": born(14), "address": {"country": "fr"}},
        format="json",
    )

    assert created.status_code == 201, created.json()
    assert created.json()["birth_year"] == born(14)
    zoe = Contact.objects.get(email="zoe@example.fr")
    assert (zoe.birth_year, zoe.country) == (born(14), "FR")
    refused = api().post(
        "/api/v1/contacts/", {"email": "zoe@example.fr", "birth_year": 2999}, format="json"
    )
    assert refused.status_code == 400
    assert list(refused.json()) == ["birth_year"]


def test_the_api_records_a_guardians_consent_with_its_evidence_apart(api):
    purpose = PurposeFactory(slug="newsletter")
    child = ContactFactory(birth_year=born(13), country="FR")
    body = consent_body(purpose, contact=str(child.public_id), actor="person_and_guardian")
    body["evidence"]["guardian"] = GUARDIAN

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["actor"] == "person_and_guardian"
    record = ConsentRecord.objects.get(uuid=response.json()["id"])
    evidence = ConsentEvidence.objects.get(record=record)
    assert (evidence.guardian_name, evidence.guardian_contact) == (
        GUARDIAN["name"],
        GUARDIAN["contact"],
    )
    assert contact_eligibility(child, purpose, "email") == []


def test_the_api_refuses_a_guardians_grant_without_the_guardian(api):
    purpose = PurposeFactory(slug="newsletter")
    child = ContactFactory(birth_year=born(13), country="FR")
    body = consent_body(purpose, contact=str(child.public_id), actor="guardian")

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["evidence"]) == ["guardian"]
    assert not ConsentRecord.objects.exists()


def test_the_api_lets_no_client_claim_to_be_staff(api):
    purpose = PurposeFactory(slug="newsletter")
    body = consent_body(purpose, contact=str(ContactFactory().public_id), actor="staff")

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["actor"]


def test_erasure_removes_the_guardians_details_and_the_ledger_still_verifies():
    from consent.ledger import ledger_verify

    purpose = PurposeFactory()
    child = ContactFactory(birth_year=born(13), country="FR")
    record = guardian_grant(child, purpose, "person_and_guardian")

    contact_erase(contact=child, reason="request")

    assert not ConsentEvidence.objects.filter(record=record).exists()
    child.refresh_from_db()
    assert child.birth_year is None
    assert ledger_verify() == []


@pytest.mark.parametrize("territory", ["RE", "GP", "YT", "NC"])
def test_a_child_overseas_in_france_needs_the_joint_consent_as_in_mainland_france(territory):
    purpose = PurposeFactory()
    alone = ContactFactory(birth_year=born(13), country=territory)
    jointly = ContactFactory(birth_year=born(13), country=territory)
    guardian_grant(alone, purpose, "guardian")
    guardian_grant(jointly, purpose, "person_and_guardian")
    # 15 there as in France: someone born 16 years ago is of age
    older = ContactFactory(birth_year=born(16), country=territory)
    grant(older, purpose)

    assert contact_eligibility(alone, purpose, "email") == ["minor"]
    assert contact_eligibility(jointly, purpose, "email") == []
    assert contact_eligibility(older, purpose, "email") == []
    audience = set(eligible_contacts(purpose, "email").values_list("pk", flat=True))
    assert audience == {jointly.pk, older.pk}

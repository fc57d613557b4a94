"""The HubSpot adapter, through the real hubspot-api-client, against the HubSpot emulator."""

import socket
from collections.abc import Iterator

import pytest

from consent.models import LegalBasis
from contacts.services import contact_payload
from crmsync.adapters.base import ConnectionConfig, TransientError
from crmsync.adapters.hubspot import HubSpotAdapter
from tests.crmsync.crm_changes import consent_change, contact_change, other_change, person
from tests.emulators.hubspot import HubSpotEmulator
from tests.factories import ContactFactory, PurposeFactory

TOKEN = "hubspot-test-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


def adapter_for(
    hubspot: HubSpotEmulator, token: str = TOKEN, base_url: str = "", **config: object
) -> HubSpotAdapter:
    settings = {"purpose_map": {"newsletter": "1001", "offers": "1002"}, **config}
    return HubSpotAdapter(
        ConnectionConfig(
            name="hubspot",
            kind="hubspot",
            base_url=base_url or hubspot.url,
            credentials={"token": token},
            **settings,  # type: ignore[arg-type]
        ),
        timeout=5,
    )


def test_a_contact_reaches_hubspot_by_email_with_the_default_properties(
    hubspot: HubSpotEmulator,
) -> None:
    camille = person(1)

    result = adapter_for(hubspot).push([contact_change(camille, topic="contact.created")])

    stored = hubspot.contact("person1@example.fr")
    assert stored is not None
    assert {
        name: stored["properties"].get(name)
        for name in (
            "firstname",
            "lastname",
            "phone",
            "company",
            "jobtitle",
            "country",
            "lifecyclestage",
        )
    } == {
        "firstname": "Camille",
        "lastname": "Martin1",
        "phone": "+33612345678",
        "company": "Acme",
        "jobtitle": "Buyer",
        "country": "FR",
        "lifecyclestage": "marketingqualifiedlead",  # our "mql" in HubSpot's values
    }
    assert result.rejected == {}
    assert result.remote_ids == {contact_change(camille).contact: stored["id"]}


@pytest.mark.django_db
def test_a_contact_of_ours_as_the_outbox_describes_it_reaches_hubspot(
    hubspot: HubSpotEmulator,
) -> None:
    contact = ContactFactory(email="dominique@example.fr", phone="", lifecycle_stage="sql")
    data = contact_payload(contact)

    result = adapter_for(hubspot).push([contact_change(data, topic="contact.created")])

    stored = hubspot.contact("dominique@example.fr")
    assert stored is not None
    assert stored["properties"]["lastname"] == contact.last_name
    assert stored["properties"]["lifecyclestage"] == "salesqualifiedlead"
    assert "phone" not in stored["properties"]  # nothing to say: HubSpot's stays as it is
    assert result.remote_ids == {contact.public_id: stored["id"]}


def test_a_hundred_contacts_go_in_one_full_call_and_more_are_split_at_a_hundred(
    hubspot: HubSpotEmulator,
) -> None:
    adapter = adapter_for(hubspot)

    adapter.push([contact_change(person(n)) for n in range(100)])
    adapter.push([contact_change(person(n)) for n in range(100, 350)])

    sizes = [len(call.body["inputs"]) for call in hubspot.calls_to(UPSERT)]
    assert adapter.batch_size == 100
    assert sizes == [100, 100, 100, 50]
    assert len(hubspot.contacts) == 350


def test_several_changes_of_one_contact_collapse_to_its_last_state(
    hubspot: HubSpotEmulator,
) -> None:
    changes = [
        contact_change(person(1, first_name="Camille"), topic="contact.created"),
        contact_change(person(1, first_name="Camila")),
        contact_change(person(2)),
        contact_change(person(1, first_name="Camilla", lifecycle_stage="customer")),
    ]

    result = adapter_for(hubspot).push(changes)

    [call] = hubspot.calls_to(UPSERT)
    assert [item["id"] for item in call.body["inputs"]] == [
        "person1@example.fr",
        "person2@example.fr",
    ]
    stored = hubspot.contact("person1@example.fr")
    assert stored is not None
    assert stored["properties"]["firstname"] == "Camilla"
    assert stored["properties"]["lifecyclestage"] == "customer"
    assert result.rejected == {}


def test_field_mappings_push_only_the_fields_mapped_to_push(hubspot: HubSpotEmulator) -> None:
    hubspot.properties.add("consentdesk_language")
    mappings = [
        {"field": "email", "remote": "email", "direction": "both", "conflict": "ours"},
        {"field": "last_name", "remote": "lastname", "direction": "push", "conflict": "ours"},
        {
            "field": "language",
            "remote": "consentdesk_language",
            "direction": "both",
            "conflict": "latest",
        },
        {"field": "first_name", "remote": "firstname", "direction": "pull", "conflict": "theirs"},
    ]

    adapter_for(hubspot, field_mappings=mappings).push([contact_change(person(1))])

    [call] = hubspot.calls_to(UPSERT)
    assert call.body["inputs"][0]["properties"] == {
        "email": "person1@example.fr",
        "lastname": "Martin1",
        "consentdesk_language": "fr",
    }


def test_an_emptied_field_clears_hubspot_but_an_untouched_empty_one_does_not(
    hubspot: HubSpotEmulator,
) -> None:
    hubspot.put_contact(
        {"email": "person1@example.fr", "phone": "+33600000000", "company": "Sales typed it"}
    )

    adapter_for(hubspot).push([contact_change(person(1, phone="", company=""), changed=["phone"])])

    stored = hubspot.contact("person1@example.fr")
    assert stored is not None
    assert stored["properties"]["phone"] == ""
    assert stored["properties"]["company"] == "Sales typed it"


@pytest.mark.django_db
def test_a_consent_sets_the_subscription_with_the_legal_basis_of_its_purpose(
    hubspot: HubSpotEmulator,
) -> None:
    PurposeFactory(slug="newsletter", legal_basis=LegalBasis.CONSENT)
    PurposeFactory(
        slug="offers", legal_basis=LegalBasis.LEGITIMATE_INTERESTS, similar_products=True
    )
    camille = person(1)
    newsletter = consent_change(camille, "newsletter")
    offers = consent_change(camille, "offers")

    result = adapter_for(hubspot).push([contact_change(camille), newsletter, offers])

    status = hubspot.subscription_status("person1@example.fr", "1001")
    assert status is not None
    assert status["status"] == "SUBSCRIBED"
    assert status["legalBasis"] == "CONSENT_WITH_NOTICE"
    assert newsletter.data["record"] in status["legalBasisExplanation"]
    offers_status = hubspot.subscription_status("person1@example.fr", "1002")
    assert offers_status is not None
    assert offers_status["legalBasis"] == "LEGITIMATE_INTEREST_CLIENT"
    assert result.rejected == {}


@pytest.mark.django_db
def test_a_withdrawal_and_an_unsubscribe_from_all_opt_out_in_hubspot(
    hubspot: HubSpotEmulator,
) -> None:
    PurposeFactory(slug="newsletter")
    PurposeFactory(slug="offers")
    camille, dominique = person(1), person(2)
    adapter = adapter_for(hubspot)
    adapter.push([consent_change(camille, "newsletter"), consent_change(dominique, "offers")])

    adapter.push(
        [
            consent_change(camille, "newsletter", status="withdrawn"),
            other_change(dominique, "contact.unsubscribed", {"source": "one_click"}),
        ]
    )

    for email, subscription in [
        ("person1@example.fr", "1001"),
        ("person2@example.fr", "1001"),
        ("person2@example.fr", "1002"),
    ]:
        status = hubspot.subscription_status(email, subscription)
        assert status is not None and status["status"] == "NOT_SUBSCRIBED", (email, subscription)


@pytest.mark.django_db
def test_other_channels_unmapped_purposes_pending_and_superseded_consents_change_nothing(
    hubspot: HubSpotEmulator,
) -> None:
    PurposeFactory(slug="newsletter")
    camille = person(1)
    changes = [
        consent_change(camille, "newsletter", channel="sms"),
        consent_change(camille, "events"),
        consent_change(camille, "newsletter", status="pending"),
        consent_change(camille, "newsletter", topic="consent.superseded"),
    ]

    result = adapter_for(hubspot).push(changes)

    assert result.rejected == {}
    assert hubspot.calls == []


def test_an_erased_contact_is_delivered_without_a_call(hubspot: HubSpotEmulator) -> None:
    erased = other_change(person(1), "contact.erased", {"id": person(1)["id"], "status": "erased"})

    result = adapter_for(hubspot).push([erased])

    assert result.rejected == {}
    assert hubspot.calls == []


@pytest.mark.django_db
def test_a_resubscription_after_an_opt_out_is_rejected_with_hubspots_message(
    hubspot: HubSpotEmulator,
) -> None:
    PurposeFactory(slug="newsletter")
    camille = person(1)
    adapter = adapter_for(hubspot)
    adapter.push([consent_change(camille, "newsletter", status="withdrawn")])
    again = consent_change(camille, "newsletter")

    result = adapter.push([again])

    assert "cannot be resubscribed" in result.rejected[again.id]


def test_rate_limit_is_transient_with_hubspots_retry_after(hubspot: HubSpotEmulator) -> None:
    hubspot.retry_after = "7"
    hubspot.rate_limit(ratio=1.0)

    with pytest.raises(TransientError) as raised:
        adapter_for(hubspot).push([contact_change(person(1))])

    assert raised.value.retry_after == 7.0
    assert hubspot.contacts == {}


@pytest.mark.django_db
def test_short_rate_limits_are_waited_out_within_a_batch_of_subscriptions(
    hubspot: HubSpotEmulator,
) -> None:
    PurposeFactory(slug="newsletter")
    hubspot.retry_after = "0.01"
    hubspot.rate_limit(ratio=0.3, seed=7)
    consents = [consent_change(person(n), "newsletter") for n in range(40)]

    result = adapter_for(hubspot).push(consents)

    assert result.rejected == {}
    assert all(
        hubspot.subscription_status(f"person{n}@example.fr", "1001")["status"] == "SUBSCRIBED"  # type: ignore[index]
        for n in range(40)
    )
    assert len([call for call in hubspot.calls if call.status == 429]) >= 5


@pytest.mark.django_db
def test_a_long_rate_limit_gives_the_batch_back(hubspot: HubSpotEmulator) -> None:
    PurposeFactory(slug="newsletter")
    hubspot.retry_after = "30"
    hubspot.rate_limit(ratio=1.0)

    with pytest.raises(TransientError) as raised:
        adapter_for(hubspot).push([consent_change(person(1), "newsletter")])

    assert raised.value.retry_after == 30.0


def test_a_server_error_is_transient(hubspot: HubSpotEmulator) -> None:
    hubspot.fail_next(status=500, body={"status": "error", "message": "internal error"})

    with pytest.raises(TransientError, match="500"):
        adapter_for(hubspot).push([contact_change(person(1))])


def test_a_refused_token_is_transient_and_says_so(hubspot: HubSpotEmulator) -> None:
    with pytest.raises(TransientError, match="access token"):
        adapter_for(hubspot, token="revoked").push([contact_change(person(1))])


def test_a_hubspot_too_slow_to_answer_is_transient(hubspot: HubSpotEmulator) -> None:
    hubspot.delay = 1.0
    adapter = adapter_for(hubspot)
    adapter.timeout = 0.2

    with pytest.raises(TransientError, match="could not be reached"):
        adapter.push([contact_change(person(1))])


def test_an_unreachable_hubspot_is_transient(hubspot: HubSpotEmulator) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]

    with pytest.raises(TransientError, match="could not be reached"):
        adapter_for(hubspot, base_url=f"http://127.0.0.1:{closed_port}").push(
            [contact_change(person(1))]
        )


@pytest.mark.parametrize("multi_status", [False, True], ids=["whole-batch 400", "207"])
def test_an_invalid_input_is_rejected_and_the_rest_of_the_batch_delivered(
    hubspot: HubSpotEmulator, multi_status: bool
) -> None:
    hubspot.multi_status = multi_status
    good = [contact_change(person(n)) for n in range(9)]
    bad = contact_change(person(9, email="not-an-address@nowhere"))

    result = adapter_for(hubspot).push([*good[:4], bad, *good[4:]])

    assert list(result.rejected) == [bad.id]
    assert "not-an-address@nowhere" in result.rejected[bad.id]
    assert len(hubspot.contacts) == 9
    assert set(result.remote_ids) == {change.contact for change in good}


def test_a_mapping_to_a_property_hubspot_lacks_rejects_the_batch_in_one_call(
    hubspot: HubSpotEmulator,
) -> None:
    mappings = [{"field": "language", "remote": "consentdesk_language", "direction": "push"}]
    changes = [contact_change(person(n)) for n in range(100)]

    result = adapter_for(hubspot, field_mappings=mappings).push(changes)

    assert set(result.rejected) == {change.id for change in changes}
    assert "consentdesk_language" in result.rejected[changes[0].id]
    assert "does not exist" in result.rejected[changes[0].id]
    assert len(hubspot.calls_to(UPSERT)) == 1  # not halved down to each contact


@pytest.mark.django_db
def test_replaying_a_batch_leaves_hubspot_identical(hubspot: HubSpotEmulator) -> None:
    PurposeFactory(slug="newsletter")
    PurposeFactory(slug="offers")
    camille, dominique = person(1), person(2)
    batch = [
        contact_change(camille, topic="contact.created"),
        contact_change(dominique),
        consent_change(camille, "newsletter"),
        consent_change(dominique, "offers", status="withdrawn"),
    ]
    adapter = adapter_for(hubspot)
    first = adapter.push(batch)
    before = hubspot.snapshot()

    again = adapter.push(batch)

    assert hubspot.snapshot() == before
    assert again.rejected == first.rejected == {}
    assert again.remote_ids == first.remote_ids


def test_an_email_changed_here_updates_the_same_hubspot_record(hubspot: HubSpotEmulator) -> None:
    adapter = adapter_for(hubspot)
    first = adapter.push([contact_change(person(1))])
    [remote_id] = first.remote_ids.values()

    moved = person(1, email="camille.new@example.fr")
    adapter.push([contact_change(moved, remote_id=remote_id, changed=["email"])])

    assert list(hubspot.contacts) == [remote_id]
    assert hubspot.contact("camille.new@example.fr") is not None
    assert hubspot.contact("person1@example.fr") is None


def test_an_email_changed_on_a_record_hubspot_no_longer_has_makes_a_new_one(
    hubspot: HubSpotEmulator,
) -> None:
    moved = contact_change(
        person(1, email="camille.new@example.fr"), remote_id="4040", changed=["email"]
    )

    result = adapter_for(hubspot).push([moved])

    stored = hubspot.contact("camille.new@example.fr")
    assert stored is not None
    assert result.remote_ids == {moved.contact: stored["id"]}
    assert result.rejected == {}

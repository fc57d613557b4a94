"""The CRM emulators answer what the real APIs answer, to the real clients."""

import itertools
from collections.abc import Iterator

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts import PublicObjectSearchRequest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator

TOKEN = "hubspot-test-token"


class Clock:
    """Milliseconds that move only when told (one tick per write by default)."""

    def __init__(self, start: int = 1_790_000_000_000) -> None:
        self.ticks = itertools.count(start)

    def __call__(self) -> int:
        return next(self.ticks)


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN, clock=Clock()) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(clock=Clock()) as emulator:
        assert isinstance(emulator, SalesforceEmulator)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator


def hub_post(
    hubspot: HubSpotEmulator, path: str, body: object, token: str = TOKEN
) -> requests.Response:
    return requests.post(
        hubspot.url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


def upsert(hubspot: HubSpotEmulator, emails: list[str], **properties: str) -> requests.Response:
    inputs = [{"idProperty": "email", "id": email, "properties": properties} for email in emails]
    return hub_post(hubspot, "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})


def sf_client(salesforce: SalesforceEmulator) -> Salesforce:
    return Salesforce(instance_url=salesforce.url, session_id=salesforce.session_id)


# -- HubSpot ---------------------------------------------------------------------------------
def test_hubspot_refuses_a_call_without_the_bearer_token(hubspot: HubSpotEmulator) -> None:
    answer = hub_post(hubspot, "/crm/v3/objects/contacts/search", {}, token="wrong")

    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_hubspot_refuses_a_batch_of_more_than_a_hundred_and_writes_nothing(
    hubspot: HubSpotEmulator,
) -> None:
    answer = upsert(hubspot, [f"p{n}@example.fr" for n in range(101)])

    assert answer.status_code == 400
    assert hubspot.contacts == {}
    assert upsert(hubspot, [f"p{n}@example.fr" for n in range(100)]).status_code == 200


def test_hubspot_refuses_a_whole_batch_with_one_invalid_input(hubspot: HubSpotEmulator) -> None:
    answer = upsert(hubspot, ["good@example.fr", "bad-address"])

    assert answer.status_code == 400
    assert "bad-address" in answer.json()["message"]
    assert hubspot.contacts == {}


def test_hubspot_search_pages_through_the_changes_since_a_cursor(hubspot: HubSpotEmulator) -> None:
    for start in range(0, 250, 50):
        upsert(hubspot, [f"p{n}@example.fr" for n in range(start, start + 50)], firstname="A")
    cursor = hubspot.contact("p49@example.fr")["properties"]["lastmodifieddate"]  # type: ignore[index]
    client = HubSpot(access_token=TOKEN, host=hubspot.url).crm.contacts.search_api
    seen, after = [], None

    while True:
        page = client.do_search(
            PublicObjectSearchRequest(
                filter_groups=[
                    {
                        "filters": [
                            {"propertyName": "lastmodifieddate", "operator": "GT", "value": cursor}
                        ]
                    }
                ],
                sorts=["lastmodifieddate"],
                properties=["email"],
                limit=100,
                after=after,
            )
        )
        seen += [result.properties["email"] for result in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after

    assert seen == [f"p{n}@example.fr" for n in range(50, 250)]
    assert page.total == 200


def test_hubspot_search_limits_pages_to_200_and_paging_to_10000(hubspot: HubSpotEmulator) -> None:
    search = "/crm/v3/objects/contacts/search"

    assert hub_post(hubspot, search, {"limit": 201}).status_code == 400
    assert hub_post(hubspot, search, {"limit": 200, "after": "9950"}).status_code == 200
    assert hub_post(hubspot, search, {"limit": 200, "after": "10000"}).status_code == 400


def test_hubspot_search_offers_no_result_past_the_ten_thousandth(hubspot: HubSpotEmulator) -> None:
    for n in range(10_050):
        hubspot.put_contact({"email": f"p{n}@example.fr"})
    search = "/crm/v3/objects/contacts/search"
    since = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}
        ]
    }
    body = {**since, "sorts": ["lastmodifieddate"], "limit": 200}

    last = hub_post(hubspot, search, {**body, "after": "9900"}).json()
    beyond = hub_post(hubspot, search, {**body, "after": last["paging"]["next"]["after"]})

    assert last["total"] == 10_050
    assert len(last["results"]) == 100
    assert beyond.status_code == 400


def test_a_repeated_upsert_leaves_hubspot_unchanged(hubspot: HubSpotEmulator) -> None:
    upsert(hubspot, ["camille@example.fr"], firstname="Camille")
    before = hubspot.snapshot()

    answer = upsert(hubspot, ["camille@example.fr"], firstname="Camille")

    assert answer.json()["results"][0]["new"] is False
    assert hubspot.snapshot() == before


def test_the_same_seed_throttles_the_same_calls(hubspot: HubSpotEmulator) -> None:
    def statuses() -> list[int]:
        hubspot.rate_limit(ratio=0.1, seed=42)
        return [
            hub_post(hubspot, "/crm/v3/objects/contacts/search", {}).status_code for _ in range(100)
        ]

    first, second = statuses(), statuses()

    assert first == second
    assert 3 <= first.count(429) <= 20
    refused = next(call for call in hubspot.calls if call.status == 429)
    assert refused.path.endswith("/search")


def test_hubspot_answers_429_with_retry_after_beyond_its_rate(hubspot: HubSpotEmulator) -> None:
    hubspot.rate_limit(per_second=3)

    answers = [hub_post(hubspot, "/crm/v3/objects/contacts/search", {}) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    assert answers[3].headers["Retry-After"] == "1"


def test_hubspot_fails_on_demand_then_recovers(hubspot: HubSpotEmulator) -> None:
    hubspot.fail_next(2, status=502)

    statuses = [upsert(hubspot, ["a@example.fr"]).status_code for _ in range(3)]

    assert statuses == [502, 502, 200]
    assert [call.status for call in hubspot.calls] == statuses


def test_a_gdpr_delete_removes_the_contact_for_good(hubspot: HubSpotEmulator) -> None:
    upsert(hubspot, ["camille@example.fr"])
    body = {"objectId": "camille@example.fr", "idProperty": "email"}

    assert hub_post(hubspot, "/crm/v3/objects/contacts/gdpr-delete", body).status_code == 204
    assert hubspot.contact("camille@example.fr") is None
    assert upsert(hubspot, ["camille@example.fr"]).status_code == 400


def test_an_email_changed_in_hubspot_keeps_the_record(hubspot: HubSpotEmulator) -> None:
    [result] = upsert(hubspot, ["old@example.fr"]).json()["results"]

    answer = requests.patch(
        f"{hubspot.url}/crm/v3/objects/contacts/{result['id']}",
        json={"properties": {"email": "new@example.fr"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )

    assert answer.status_code == 200
    assert hubspot.contact("new@example.fr")["id"] == result["id"]  # type: ignore[index]
    assert hubspot.contact("old@example.fr") is None


def test_hubspot_v3_never_resubscribes_an_opt_out(hubspot: HubSpotEmulator) -> None:
    body = {
        "emailAddress": "a@example.fr",
        "subscriptionId": "1001",
        "legalBasis": "CONSENT_WITH_NOTICE",
    }
    subscribe, unsubscribe = (
        "/communication-preferences/v3/subscribe",
        "/communication-preferences/v3/unsubscribe",
    )

    assert hub_post(hubspot, subscribe, body).json()["status"] == "SUBSCRIBED"
    assert "already subscribed" in hub_post(hubspot, subscribe, body).json()["message"]
    assert hub_post(hubspot, unsubscribe, body).json()["status"] == "NOT_SUBSCRIBED"
    assert "already unsubscribed" in hub_post(hubspot, unsubscribe, body).json()["message"]
    assert hub_post(hubspot, subscribe, body).status_code == 400
    assert hubspot.subscription_status("a@example.fr", "1001")["status"] == "NOT_SUBSCRIBED"  # type: ignore[index]


def test_a_hubspot_opt_out_shows_on_the_contact_for_a_pull_to_see(hubspot: HubSpotEmulator) -> None:
    upsert(hubspot, ["a@example.fr"])
    before = hubspot.contact("a@example.fr")["properties"]["lastmodifieddate"]  # type: ignore[index]
    body = {"emailAddress": "a@example.fr", "subscriptionId": "1001"}

    hub_post(hubspot, "/communication-preferences/v3/unsubscribe", body)

    properties = hubspot.contact("a@example.fr")["properties"]  # type: ignore[index]
    assert properties["hs_email_optout_1001"] == "true"
    assert properties["lastmodifieddate"] > before
    assert upsert(hubspot, ["a@example.fr"], hs_email_optout_1001="false").status_code == 400


# -- Salesforce ------------------------------------------------------------------------------
def test_salesforce_serves_tls_that_only_a_client_trusting_its_certificate_accepts(
    salesforce: SalesforceEmulator,
) -> None:
    url = f"{salesforce.url}/services/data/v59.0/query?q=SELECT+Id+FROM+Contact"
    headers = {"Authorization": f"Bearer {salesforce.session_id}"}

    assert requests.get(url, headers=headers, verify=str(salesforce.certificate), timeout=5).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, headers=headers, verify="/etc/ssl/certs/ca-certificates.crt", timeout=5)


def test_salesforce_refuses_a_call_without_the_session(salesforce: SalesforceEmulator) -> None:
    answer = requests.get(f"{salesforce.url}/services/data/v59.0/sobjects/Contact/003", timeout=5)

    assert answer.status_code == 401
    assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def collection(
    salesforce: SalesforceEmulator, records: list[dict], all_or_none: bool = False
) -> list:
    body = {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Contact"}, **r} for r in records],
    }
    return sf_client(salesforce).restful(  # type: ignore[return-value]
        "composite/sobjects/Contact/ConsentDesk_Id__c", method="PATCH", json=body
    )


def test_salesforce_collections_answer_each_record_and_cap_at_200(
    salesforce: SalesforceEmulator,
) -> None:
    answer = collection(
        salesforce, [{"ConsentDesk_Id__c": "a", "LastName": "A"}, {"ConsentDesk_Id__c": "b"}]
    )

    assert answer[0]["success"] is True and answer[0]["created"] is True
    assert answer[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest, match="EXCEEDED_ID_LIMIT"):
        collection(salesforce, [{"ConsentDesk_Id__c": str(n), "LastName": "A"} for n in range(201)])
    assert len(salesforce.records["Contact"]) == 1


def test_salesforce_all_or_none_writes_nothing_when_one_record_fails(
    salesforce: SalesforceEmulator,
) -> None:
    answer = collection(
        salesforce,
        [{"ConsentDesk_Id__c": "a", "LastName": "A"}, {"ConsentDesk_Id__c": "b", "Email": "nope"}],
        all_or_none=True,
    )

    assert [item["success"] for item in answer] == [False, False]
    assert answer[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert salesforce.records["Contact"] == {}


def test_salesforce_upserts_by_external_id_without_moving_an_unchanged_record(
    salesforce: SalesforceEmulator,
) -> None:
    collection(salesforce, [{"ConsentDesk_Id__c": "a", "LastName": "A"}])
    before = salesforce.snapshot()

    [again] = collection(salesforce, [{"ConsentDesk_Id__c": "a", "LastName": "A"}])

    assert again["created"] is False
    assert salesforce.snapshot() == before


def test_salesforce_soql_pages_the_changes_since_a_cursor_with_next_records_url(
    salesforce: SalesforceEmulator,
) -> None:
    salesforce.query_batch = 40
    collection(salesforce, [{"ConsentDesk_Id__c": str(n), "LastName": f"L{n}"} for n in range(150)])
    cursor = salesforce.find("Contact", ConsentDesk_Id__c="49")[0]["SystemModstamp"]
    client = sf_client(salesforce)

    first = client.query(
        f"SELECT Id, LastName, SystemModstamp FROM Contact WHERE SystemModstamp > {cursor} "  # noqa: S608 - SOQL to the emulator
        "ORDER BY SystemModstamp LIMIT 90"
    )
    records = list(first["records"])
    page = first
    while not page["done"]:
        page = client.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        records += page["records"]

    assert first["totalSize"] == 90 and len(first["records"]) == 40
    assert [record["LastName"] for record in records] == [f"L{n}" for n in range(50, 140)]
    assert len(client.query_all("SELECT Id FROM Contact")["records"]) == 150


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Contact WHERE LastName LIKE 'A%'",
        "SELECT Id, (SELECT Id FROM Cases) FROM Contact",
        "SELECT Id FROM Contact WHERE SystemModstamp > 2026-01-01T00:00:00Z AND IsDeleted = false",
        "DELETE FROM Contact",
    ],
)
def test_salesforce_refuses_soql_beyond_the_pulls_grammar(
    salesforce: SalesforceEmulator, soql: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest, match="MALFORMED_QUERY"):
        sf_client(salesforce).query(soql)


def test_salesforce_refuses_an_unknown_column(salesforce: SalesforceEmulator) -> None:
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_FIELD"):
        sf_client(salesforce).query("SELECT Id, Nickname FROM Contact")


def test_salesforce_resolves_references_by_external_id(salesforce: SalesforceEmulator) -> None:
    client = sf_client(salesforce)
    client.Individual.upsert("ConsentDesk_Id__c/p1", {"LastName": "Martin"})
    [individual] = salesforce.find("Individual")

    client.Contact.upsert(
        "ConsentDesk_Id__c/p1", {"LastName": "Martin", "Individual": {"ConsentDesk_Id__c": "p1"}}
    )
    [missing] = collection(
        salesforce,
        [{"ConsentDesk_Id__c": "p2", "LastName": "X", "Individual": {"ConsentDesk_Id__c": "p2"}}],
    )

    assert (
        client.Contact.get_by_custom_id("ConsentDesk_Id__c", "p1")["IndividualId"]
        == individual["Id"]
    )
    assert "Foreign key external ID: p2 not found" in missing["errors"][0]["message"]


def test_salesforce_gets_updates_and_deletes_a_record(salesforce: SalesforceEmulator) -> None:
    client = sf_client(salesforce)
    record_id = client.Contact.create({"LastName": "Martin"})["id"]

    client.Contact.update(record_id, {"Title": "Buyer"})
    assert client.Contact.get(record_id)["Title"] == "Buyer"
    client.Contact.delete(record_id)

    assert salesforce.records["Contact"] == {}


def test_salesforce_limits_raise_what_simple_salesforce_raises(
    salesforce: SalesforceEmulator,
) -> None:
    client = sf_client(salesforce)
    salesforce.rate_limit(ratio=1.0)
    with pytest.raises(SalesforceRefusedRequest, match="REQUEST_LIMIT_EXCEEDED"):
        client.query("SELECT Id FROM Contact")

    salesforce.rate_limit(ratio=1.0, status=503)
    with pytest.raises(SalesforceGeneralError, match="SERVER_UNAVAILABLE"):
        client.query("SELECT Id FROM Contact")

    salesforce.throttle = None
    client.query("SELECT Id FROM Contact")
    assert client.api_usage["api-usage"].used == 3


def test_salesforce_refuses_values_of_the_wrong_type(salesforce: SalesforceEmulator) -> None:
    [flag] = collection(
        salesforce, [{"ConsentDesk_Id__c": "a", "LastName": "A", "HasOptedOutOfEmail": "yes"}]
    )
    client = sf_client(salesforce)
    client.Individual.create({"LastName": "A", "ConsentDesk_Id__c": "a"})
    [when] = client.restful(
        "composite/sobjects/ContactPointTypeConsent/ConsentDesk_Id__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "ContactPointTypeConsent"},
                    "ConsentDesk_Id__c": "a:x",
                    "Name": "x",
                    "Party": {"ConsentDesk_Id__c": "a"},
                    "EffectiveFrom": "last tuesday",
                }
            ],
        },
    )

    assert flag["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert when["errors"][0]["fields"] == ["EffectiveFrom"]

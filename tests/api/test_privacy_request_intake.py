"""Privacy requests from API clients: a daily erasure cap, and no way to learn who is a contact.

SPEC §3: past `API_ERASURE_DAILY_LIMIT` erasures a day from one client, the next ones wait for
the DPO. A client that cannot read contacts gets the same answer for an unknown email as for
a known one.
"""

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from contacts.models import Contact
from core.models import Scope
from privacy.models import PrivacyRequest
from privacy.services import privacy_requests_carry_out_pending
from tests.api.live import LIVE_DB, at_the_same_time, post_over_http
from tests.conftest import wait_for
from tests.factories import ApiClientFactory, ContactFactory

pytestmark = pytest.mark.django_db

REQUESTS = "/api/v1/privacy-requests/"


def erasure(client, email: str) -> dict:
    response = client.post(REQUESTS, {"email": email, "type": "erasure"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def shape(body: object) -> object:
    """The keys and value types of an answer, with the values that differ by nature (ids,
    times) left out: what a client could compare between two answers."""
    if isinstance(body, dict):
        return {key: shape(value) for key, value in body.items()}
    if isinstance(body, list):
        return [shape(item) for item in body]
    return type(body).__name__


# --- the daily erasure cap --------------------------------------------------------------------


def test_erasures_past_the_daily_limit_are_filed_but_wait_for_the_dpo(api, settings):
    # given a limit of two erasures a day
    settings.API_ERASURE_DAILY_LIMIT = 2
    client = api()
    people = [ContactFactory() for _ in range(3)]

    # when the client files three
    answers = [erasure(client, person.email) for person in people]
    privacy_requests_carry_out_pending()  # what the workers do

    # then the first two are carried out, the third waits, with the reason for the DPO
    assert [answer["status"] for answer in answers] == ["verified", "verified", "received"]
    requests = [PrivacyRequest.objects.get(id=answer["id"]) for answer in answers]
    assert [request.status for request in requests] == ["completed", "completed", "received"]
    assert [request.held_reason for request in requests[:2]] == ["", ""]
    assert client.record.name in requests[2].held_reason
    assert "API_ERASURE_DAILY_LIMIT" in requests[2].held_reason
    statuses = [Contact.objects.get(pk=person.pk).status for person in people]
    assert statuses == ["erased", "erased", "active"]


def test_the_limit_is_per_client_and_per_day(api, settings):
    settings.API_ERASURE_DAILY_LIMIT = 1
    busy, other = api(), api()

    with freeze_time("2026-05-04T09:00:00+02:00"):
        first = erasure(busy, ContactFactory().email)
        second = erasure(busy, ContactFactory().email)
        others = erasure(other, ContactFactory().email)
    with freeze_time("2026-05-05T00:10:00+02:00"):  # the next day in Paris
        next_day = erasure(busy, ContactFactory().email)

    assert [first["status"], second["status"]] == ["verified", "received"]
    assert others["status"] == "verified"
    assert next_day["status"] == "verified"


def test_other_request_types_do_not_count_nor_wait(api, settings, camille):
    settings.API_ERASURE_DAILY_LIMIT = 0
    client = api()

    response = client.post(REQUESTS, {"email": camille.email, "type": "access"}, format="json")

    assert response.json()["status"] == "verified"


# --- an unknown email -------------------------------------------------------------------------


@pytest.mark.parametrize("type", ["erasure", "access", "rectification"])
def test_an_unknown_email_is_answered_like_a_known_one_to_a_client_without_contacts_read(
    api, camille, type
):
    client = api(scopes=[Scope.PRIVACY_WRITE])

    known = client.post(REQUESTS, {"email": camille.email, "type": type}, format="json")
    unknown = client.post(REQUESTS, {"email": "nobody@example.fr", "type": type}, format="json")

    assert known.status_code == unknown.status_code == 201
    assert shape(known.json()) == shape(unknown.json())
    assert "contact" not in known.json()
    assert known.json()["status"] == unknown.json()["status"]
    assert known.json()["history"][0]["note"] == unknown.json()["history"][0]["note"]

    # and reading them back, once the workers are done, tells nothing more
    privacy_requests_carry_out_pending()
    read = [client.get(f"{REQUESTS}{answer.json()['id']}/").json() for answer in (known, unknown)]
    assert shape(read[0]) == shape(read[1])
    assert [[(e["status"], e["note"]) for e in body["history"]] for body in read] == [
        [(e["status"], e["note"]) for e in read[0]["history"]]
    ] * 2


def test_a_client_that_reads_contacts_is_told_the_email_is_unknown(api):
    client = api(scopes=[Scope.PRIVACY_WRITE, Scope.CONTACTS_READ])

    response = client.post(
        REQUESTS, {"email": "nobody@example.fr", "type": "erasure"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"email": ["No contact has this email."]}
    assert not PrivacyRequest.objects.exists()


def test_a_client_that_reads_contacts_sees_the_contact_of_its_requests(api, camille):
    client = api(scopes=[Scope.PRIVACY_WRITE, Scope.CONTACTS_READ])

    response = client.post(REQUESTS, {"email": camille.email, "type": "access"}, format="json")

    assert response.json()["contact"] == str(camille.public_id)


def test_an_unknown_email_counts_against_the_erasure_limit_too(api, settings):
    settings.API_ERASURE_DAILY_LIMIT = 1
    client = api(scopes=[Scope.PRIVACY_WRITE])

    erasure(client, "nobody@example.fr")
    answer = erasure(client, ContactFactory().email)

    assert answer["status"] == "received"
    assert (
        timezone.now() - timedelta(minutes=1)
        < PrivacyRequest.objects.get(id=answer["id"]).received_at
    )


@pytest.mark.postgres
@pytest.mark.slow
@LIVE_DB
def test_concurrent_erasures_cannot_pass_the_daily_limit_together(
    live_server, celery_worker, settings
):
    # given a limit of two and five people, whose erasures arrive at the same moment
    settings.API_ERASURE_DAILY_LIMIT = 2
    key = ApiClientFactory().plain_key
    bodies = iter(
        [json.dumps({"email": ContactFactory().email, "type": "erasure"}) for _ in range(5)]
    )
    lock = threading.Lock()

    def file_one() -> tuple[int, bytes]:
        with lock:
            body = next(bodies).encode()
        return post_over_http(f"{live_server.url}{REQUESTS}", key, body)

    # when
    answers = at_the_same_time(file_one, times=5)

    # then two go to the workers, three wait for the DPO
    assert {status for status, _body in answers} == {201}
    statuses = sorted(json.loads(body)["status"] for _status, body in answers)
    assert statuses == ["received", "received", "received", "verified", "verified"]
    assert PrivacyRequest.objects.exclude(held_reason="").count() == 3
    # the two verified ones are carried out, the held ones are not
    wait_for(lambda: PrivacyRequest.objects.filter(status="completed").count() == 2)
    assert Contact.objects.filter(status="erased").count() == 2

"""The CRMs' change notifications at /crm/notify/<id>/: a HubSpot webhook signed (v3) with the
app's client secret, or a Salesforce outbound message from the connection's organisation at
the URL with its token, queues one pull of the connection, which brings the change in; anything
unverified is refused and queues nothing."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from xml.etree import ElementTree

import pytest
from django.conf import settings
from django.db import connection as database
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hubspot.utils.signature import Signature

from contacts.models import Contact
from crmsync import notifications
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState
from crmsync.notifications import MAX_BODY_BYTES, hubspot_signature_v3, notification_url
from crmsync.tasks import pull_connection
from tests.admin.conftest import otp_verified_login
from tests.conftest import wait_for, worker_settled
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import UserFactory

# a notification's request commits on its own, then queues its pull: as in production
pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "hubspot-test-token"
CLIENT_SECRET = "0f6b7d1e-hubspot-app-client-secret"
URL_TOKEN = "sf-outbound-token-4Jx9QmV2pT7cLw3a"
ORGANIZATION_ID = "00D5e000000KQ2eEAG"
EVENTS = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1764150000000,'
    '"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,'
    '"changeSource":"CRM","propertyName":"firstname","propertyValue":"Camille"}]'
)


@contextmanager
def queued_pulls() -> Iterator[list[tuple[Any, ...]]]:
    """The pulls the notifications queue, held back instead of run."""
    calls: list[tuple[Any, ...]] = []
    with mock.patch.object(
        pull_connection,
        "apply_async",
        side_effect=lambda args, **options: calls.append(tuple(args)),
    ):
        yield calls


@pytest.fixture
def hubspot_connection(db: None) -> Connection:
    return connection_create(
        name="hubspot",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": TOKEN, "secret": CLIENT_SECRET},
    )


@pytest.fixture
def salesforce_connection(db: None) -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url="https://127.0.0.1:9",
        credentials={"token": "session", "secret": URL_TOKEN},
        options={"organization_id": ORGANIZATION_ID},
    )


def path_of(connection: Connection) -> str:
    return reverse("crmsync:notify", args=[connection.pk])


def hubspot_headers(
    *,
    uri: str,
    body: str = EVENTS,
    method: str = "POST",
    secret: str = CLIENT_SECRET,
    age_seconds: float = 0,
) -> dict[str, str]:
    """The headers HubSpot sends, its signature made by hubspot-api-client's own helper."""
    timestamp = str(int((time.time() - age_seconds) * 1000))
    signature = Signature.get_signature(
        secret, body, "v3", http_uri=uri, http_method=method, timestamp=timestamp
    )
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def notify_hubspot(
    client: Client,
    connection: Connection,
    body: str = EVENTS,
    *,
    signed_body: str | None = None,
    **signing: Any,
) -> Any:
    """POST a HubSpot webhook to the connection's URL, signed for what `signing` says (by
    default, for this request)."""
    path = path_of(connection)
    signing.setdefault("uri", settings.SITE_URL + path)
    headers = hubspot_headers(body=body if signed_body is None else signed_body, **signing)
    return client.post(path, data=body, content_type="application/json", headers=headers)


def outbound_message(organization_id: str = ORGANIZATION_ID, *record_ids: str) -> str:
    """A Salesforce outbound message, as the outbound messaging WSDL describes it."""
    notifications_xml = "".join(
        f"<Notification><Id>04l5e00000Gx7Q{number:04d}</Id>"
        '<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{record_id}</sf:Id><sf:Email>person{number}@example.fr</sf:Email></sObject>"
        "</Notification>"
        for number, record_id in enumerate(record_ids or ("0035e00000ZkM3hAAF",))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{organization_id}</OrganizationId>"
        "<ActionId>04k5e000000CaRkAAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0</PartnerUrl>"
        f"{notifications_xml}"
        "</notifications>"
        "</soapenv:Body>"
        "</soapenv:Envelope>"
    )


def notify_salesforce(
    client: Client, connection: Connection, body: str | None = None, token: str = URL_TOKEN
) -> Any:
    path = reverse("crmsync:notify-with-token", args=[connection.pk, token])
    return client.post(
        path, data=outbound_message() if body is None else body, content_type="text/xml"
    )


def acknowledged(response: Any) -> bool:
    """The answer is the SOAP acknowledgement Salesforce waits for."""
    if response.status_code != 200 or not response["Content-Type"].startswith("text/xml"):
        return False
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own answer
    return (
        root.findtext(
            "{http://schemas.xmlsoap.org/soap/envelope/}Body"
            "/{http://soap.sforce.com/2005/09/outbound}notificationsResponse"
            "/{http://soap.sforce.com/2005/09/outbound}Ack"
        )
        == "true"
    )


def last_notification(connection: Connection) -> Any:
    return ConnectionState.objects.get(pk=connection.pk).last_notification_at


# --- HubSpot ------------------------------------------------------------------------------------


def test_a_correctly_signed_hubspot_notification_queues_a_pull_and_is_recorded(
    client: Client, hubspot_connection: Connection
) -> None:
    with queued_pulls() as queued:
        response = notify_hubspot(client, hubspot_connection)

    assert response.status_code == 204
    assert queued == [(hubspot_connection.pk,)]
    assert last_notification(hubspot_connection) is not None


@pytest.mark.slow
def test_a_contact_changed_in_hubspot_arrives_through_its_notification_and_the_real_pull(
    client: Client, celery_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "NOTIFIED_PULL_DELAY_SECONDS", 1)
    with HubSpotEmulator(token=TOKEN) as hubspot:
        connection = connection_create(
            name="hubspot",
            kind="hubspot",
            base_url=hubspot.url,
            credentials={"token": TOKEN, "secret": CLIENT_SECRET},
        )
        hubspot.put_contact({"email": "camille@example.fr", "firstname": "Camille"})

        response = notify_hubspot(client, connection)

        assert response.status_code == 204
        contact = wait_for(lambda: Contact.objects.filter(email="camille@example.fr").first())
        assert contact.first_name == "Camille"
        assert hubspot.calls_to("/search")
        worker_settled()


def test_a_wrong_hubspot_signature_is_refused_and_queues_nothing(
    client: Client, hubspot_connection: Connection
) -> None:
    with queued_pulls() as queued:
        response = notify_hubspot(client, hubspot_connection, secret="another-apps-secret")

    assert response.status_code == 401
    assert queued == []
    assert last_notification(hubspot_connection) is None


def test_a_hubspot_notification_older_than_five_minutes_is_refused(
    client: Client, hubspot_connection: Connection
) -> None:
    with queued_pulls() as queued:
        recent = notify_hubspot(client, hubspot_connection, age_seconds=240)
        replayed = notify_hubspot(client, hubspot_connection, age_seconds=360)

    assert (recent.status_code, replayed.status_code) == (204, 401)
    assert queued == [(hubspot_connection.pk,)]


def test_a_tampered_hubspot_body_is_refused(client: Client, hubspot_connection: Connection) -> None:
    tampered = EVENTS.replace('"objectId":123', '"objectId":124')

    with queued_pulls() as queued:
        response = notify_hubspot(client, hubspot_connection, body=tampered, signed_body=EVENTS)

    assert response.status_code == 401
    assert queued == []


def test_a_hubspot_signature_made_for_another_method_or_url_is_refused(
    client: Client, hubspot_connection: Connection
) -> None:
    other = connection_create(
        name="hubspot 2",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": TOKEN, "secret": CLIENT_SECRET},
    )

    with queued_pulls() as queued:
        for_get = notify_hubspot(client, hubspot_connection, method="GET")
        for_other_url = notify_hubspot(
            client, hubspot_connection, uri=settings.SITE_URL + path_of(other)
        )
        over_http = notify_hubspot(
            client, hubspot_connection, uri="http://evil.example" + path_of(hubspot_connection)
        )
        a_get = client.get(path_of(hubspot_connection))

    assert [for_get.status_code, for_other_url.status_code, over_http.status_code] == [401] * 3
    assert a_get.status_code == 405
    assert queued == []


def test_an_unsigned_hubspot_notification_is_refused(
    client: Client, hubspot_connection: Connection
) -> None:
    with queued_pulls() as queued:
        response = client.post(path_of(hubspot_connection), EVENTS, content_type="application/json")

    assert response.status_code == 401
    assert queued == []


def test_the_signed_uri_has_the_escapes_hubspot_lists_decoded_and_no_other() -> None:
    # hubspot-api-client signs the URI it is given: give it the URI as HubSpot decodes it
    called = "https://consent.example.fr/crm/notify/7/?portal=62515%3Aeu%2C1&name=a%20b"
    decoded = "https://consent.example.fr/crm/notify/7/?portal=62515:eu,1&name=a%20b"

    ours = hubspot_signature_v3(
        secret=CLIENT_SECRET, method="POST", uri=called, body=EVENTS.encode(), timestamp="1"
    )

    assert ours == Signature.get_signature(
        CLIENT_SECRET, EVENTS, "v3", http_uri=decoded, http_method="POST", timestamp="1"
    )
    assert ours != Signature.get_signature(
        CLIENT_SECRET, EVENTS, "v3", http_uri=called, http_method="POST", timestamp="1"
    )


@pytest.mark.postgres
def test_a_notification_does_not_wait_for_a_pull_holding_the_connection_s_state(
    client: Client, hubspot_connection: Connection
) -> None:
    holding, release = threading.Event(), threading.Event()

    def pull_applying_a_page() -> None:
        try:
            with transaction.atomic():
                ConnectionState.objects.select_for_update().get(pk=hubspot_connection.pk)
                holding.set()
                release.wait(timeout=20)
        finally:
            database.close()

    puller = threading.Thread(target=pull_applying_a_page)
    puller.start()
    try:
        assert holding.wait(timeout=10)
        started = time.monotonic()
        with queued_pulls() as queued:
            response = notify_hubspot(client, hubspot_connection)
        waited = time.monotonic() - started
    finally:
        release.set()
        puller.join()

    assert response.status_code == 204 and waited < 5
    assert queued == [(hubspot_connection.pk,)]
    # its time is left out this once: the next notification records it
    assert last_notification(hubspot_connection) is None


def test_a_storm_of_notifications_queues_one_pull_and_the_next_window_another(
    client: Client, hubspot_connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "NOTIFIED_PULL_DELAY_SECONDS", 1)

    with queued_pulls() as queued:
        answers = [notify_hubspot(client, hubspot_connection).status_code for _ in range(10)]
        assert answers == [204] * 10
        assert queued == [(hubspot_connection.pk,)]
        time.sleep(1.1)  # the queued pull has started: it may have read before the next change
        notify_hubspot(client, hubspot_connection)

    assert queued == [(hubspot_connection.pk,)] * 2


def test_the_pull_a_notification_queues_starts_after_the_notifications_it_stands_for(
    client: Client, hubspot_connection: Connection
) -> None:
    with mock.patch.object(pull_connection, "apply_async") as apply_async:
        notify_hubspot(client, hubspot_connection)

    apply_async.assert_called_once_with(
        (hubspot_connection.pk,),
        kwargs={"again_if_busy": True},
        countdown=notifications.NOTIFIED_PULL_DELAY_SECONDS,
    )


# --- Salesforce ---------------------------------------------------------------------------------


def test_a_salesforce_outbound_message_from_the_organisation_is_acknowledged_and_queues_a_pull(
    client: Client, salesforce_connection: Connection
) -> None:
    with queued_pulls() as queued:
        response = notify_salesforce(client, salesforce_connection)

    assert acknowledged(response)
    assert queued == [(salesforce_connection.pk,)]
    assert last_notification(salesforce_connection) is not None


def test_the_organisation_id_may_be_configured_as_setup_shows_it_in_15_characters(
    client: Client, salesforce_connection: Connection
) -> None:
    salesforce_connection.options = {"organization_id": ORGANIZATION_ID[:15]}
    salesforce_connection.save()

    with queued_pulls() as queued:
        ours = notify_salesforce(client, salesforce_connection)
        other = notify_salesforce(
            client, salesforce_connection, outbound_message("00D5e000000KQ3fEAG")
        )

    assert acknowledged(ours)
    assert other.status_code == 403
    assert queued == [(salesforce_connection.pk,)]


def test_a_salesforce_message_with_a_wrong_token_or_from_another_organisation_is_refused(
    client: Client, salesforce_connection: Connection
) -> None:
    with queued_pulls() as queued:
        wrong_token = notify_salesforce(client, salesforce_connection, token=URL_TOKEN + "x")
        other_org = notify_salesforce(
            client, salesforce_connection, outbound_message("00D000000000001AAA")
        )
        no_token = client.post(
            path_of(salesforce_connection), outbound_message(), content_type="text/xml"
        )

    assert [wrong_token.status_code, other_org.status_code, no_token.status_code] == [403] * 3
    assert b"Ack" not in wrong_token.content + other_org.content + no_token.content
    assert queued == []
    assert last_notification(salesforce_connection) is None


@pytest.mark.parametrize(
    "body",
    [
        "<soapenv:Envelope",
        "not xml at all",
        # a DTD: an entity expansion (or an external entity) is never attempted
        '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><a>&lol;</a>',
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        # well-formed, but no outbound message
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body/></soapenv:Envelope>",
        outbound_message("").replace("<OrganizationId></OrganizationId>", ""),
    ],
)
def test_a_malformed_salesforce_message_is_a_bad_request(
    client: Client, salesforce_connection: Connection, body: str
) -> None:
    with queued_pulls() as queued:
        response = notify_salesforce(client, salesforce_connection, body)

    assert response.status_code == 400
    assert queued == []


def test_a_salesforce_message_brings_the_change_in_through_the_real_pull(
    client: Client, monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    with SalesforceEmulator() as salesforce:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(salesforce.certificate))
        connection = connection_create(
            name="salesforce",
            kind="salesforce",
            base_url=salesforce.url,
            credentials={"token": salesforce.session_id, "secret": URL_TOKEN},
            options={"organization_id": ORGANIZATION_ID},
        )
        record = salesforce.insert(
            "Contact", {"Email": "lea@example.fr", "FirstName": "Léa", "LastName": "Roux"}
        )
        # the pull a notification queues, run here as the worker would
        with mock.patch.object(
            pull_connection,
            "apply_async",
            side_effect=lambda args, **options: pull_connection.run(*args),
        ):
            response = notify_salesforce(
                client, connection, outbound_message(ORGANIZATION_ID, record)
            )

    assert acknowledged(response)
    contact = Contact.objects.get(email="lea@example.fr")
    assert contact.first_name == "Léa"


# --- both ---------------------------------------------------------------------------------------


def test_a_disabled_an_unknown_or_an_unconfigured_connection_is_not_found(
    client: Client, hubspot_connection: Connection
) -> None:
    without_secret = connection_create(
        name="hubspot without secret",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": TOKEN},
    )
    webhook = connection_create(
        name="integrator",
        kind="webhook",
        base_url="http://127.0.0.1:9/hooks",
        credentials={"secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    )
    disabled = connection_create(
        name="hubspot disabled",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": TOKEN, "secret": CLIENT_SECRET},
        enabled=False,
    )
    unknown = Connection(pk=999_999, kind="hubspot")

    with queued_pulls() as queued:
        statuses = [
            notify_hubspot(client, connection).status_code
            for connection in (disabled, unknown, without_secret, webhook)
        ]

    assert statuses == [404] * 4
    assert queued == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    client: Client, hubspot_connection: Connection, salesforce_connection: Connection
) -> None:
    huge = "[" + " " * MAX_BODY_BYTES + "]"

    with queued_pulls() as queued:
        hubspot = notify_hubspot(client, hubspot_connection, body=huge)
        salesforce = notify_salesforce(client, salesforce_connection, huge)

    assert (hubspot.status_code, salesforce.status_code) == (413, 413)
    assert queued == []


def test_the_admin_shows_each_connection_s_notification_url_and_last_notification(
    hubspot_connection: Connection, salesforce_connection: Connection
) -> None:
    ConnectionState.objects.filter(pk=hubspot_connection.pk).update(
        last_notification_at=timezone.now()
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, UserFactory(is_superuser=True))

    hubspot_page = client.get(
        reverse("admin:crmsync_connection_change", args=[hubspot_connection.pk])
    ).content.decode()
    salesforce_page = client.get(
        reverse("admin:crmsync_connection_change", args=[salesforce_connection.pk])
    ).content.decode()
    listing = client.get(reverse("admin:crmsync_connection_changelist")).content.decode()

    assert notification_url(hubspot_connection) == settings.SITE_URL + path_of(hubspot_connection)
    assert notification_url(hubspot_connection) in hubspot_page
    assert "last change notification" in hubspot_page.lower()
    assert "last change notification" in listing.lower()
    assert settings.SITE_URL + path_of(salesforce_connection) + "&lt;secret&gt;/" in salesforce_page
    assert URL_TOKEN not in salesforce_page  # the token is a credential: never shown


def test_a_notification_s_pull_that_finds_another_at_work_comes_back_later(
    hubspot_connection: Connection, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(pull_connection.app.conf, "task_always_eager", False)
    # another pull holds the connection (it may have read before the change)
    ConnectionState.objects.filter(pk=hubspot_connection.pk).update(
        pull_lease_token=None, pull_lease_until=timezone.now() + timezone.timedelta(minutes=5)
    )
    with mock.patch.object(pull_connection, "apply_async") as queued:
        pull_connection(hubspot_connection.pk, again_if_busy=True)
        pull_connection(hubspot_connection.pk)  # the beat's: the next minute comes anyway

    queued.assert_called_once_with(
        (hubspot_connection.pk,),
        kwargs={"again_if_busy": True},
        countdown=settings.CRM_PULL_BUSY_RETRY,
    )

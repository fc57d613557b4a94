"""CRM connections: settings checked with clear errors, credentials encrypted at rest (and
re-encrypted after a key rotation), and `manage.py crm_connect` (SPEC §4)."""

import base64
import os
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection as database

from crmsync.adapters.webhook import WebhookAdapter
from crmsync.connections import (
    connection_config,
    connection_create,
    connection_credentials,
    connection_update,
    connections_credentials_rotate,
)
from crmsync.models import Connection, ConnectionState
from tests.crmsync.receiver import SECRET
from tests.factories import PurposeFactory

pytestmark = pytest.mark.django_db

TOKEN = "pat-eu1-4f7c2a9e-0d1b-4c3e-9a8f-supersecret"


def create(**overrides: Any) -> Connection:
    values: dict[str, Any] = {
        "name": "hubspot-prod",
        "kind": "hubspot",
        "base_url": "https://api.hubapi.example",
        "credentials": {"token": TOKEN},
    }
    return connection_create(**{**values, **overrides})


def raw_row(connection: Connection) -> str:
    """The connection's row as the database holds it, every column as text."""
    with database.cursor() as cursor:
        cursor.execute("SELECT * FROM crmsync_connection WHERE id = %s", [connection.pk])
        return " ".join(str(value) for value in cursor.fetchone())


def test_the_credentials_are_stored_encrypted_never_in_plaintext() -> None:
    connection = create(credentials={"token": TOKEN, "secret": SECRET})

    row = raw_row(connection)

    assert TOKEN not in row and SECRET not in row
    assert connection_credentials(Connection.objects.get(pk=connection.pk)) == {
        "token": TOKEN,
        "secret": SECRET,
    }


def test_the_adapter_s_configuration_carries_the_decrypted_credentials() -> None:
    purpose = PurposeFactory(slug="newsletter")
    mapping = {
        "field": "first_name",
        "remote": "firstname",
        "direction": "both",
        "conflict": "latest",
    }
    connection = create(purpose_map={purpose.slug: "1234"}, field_mappings=[mapping])

    config = connection_config(Connection.objects.get(pk=connection.pk))

    assert (config.name, config.kind, config.base_url) == (
        "hubspot-prod",
        "hubspot",
        "https://api.hubapi.example",
    )
    assert config.credentials == {"token": TOKEN}
    assert config.purpose_map == {"newsletter": "1234"}
    assert config.field_mappings == [mapping]


def test_a_new_connection_has_its_push_state() -> None:
    connection = create()

    assert ConnectionState.objects.get(pk=connection.pk).push_cursor == 0


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"field": "shoe_size", "remote": "x", "direction": "push", "conflict": "ours"},
            "shoe_size",
        ),
        (
            {"field": "email", "remote": "email", "direction": "sideways", "conflict": "ours"},
            "sideways",
        ),
        (
            {"field": "email", "remote": "email", "direction": "push", "conflict": "loudest"},
            "loudest",
        ),
        ({"field": "email", "remote": "", "direction": "push", "conflict": "ours"}, "remote"),
        ({"field": "email", "remote": "e", "direction": "push", "conflict": "ours", "x": 1}, "x"),
    ],
)
def test_a_bad_field_mapping_is_refused_naming_what_is_wrong(
    mapping: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        create(field_mappings=[mapping])

    assert list(refused.value.message_dict) == ["field_mappings"]
    assert message in refused.value.message_dict["field_mappings"][0]
    assert "Mapping 1" in refused.value.message_dict["field_mappings"][0]
    assert not Connection.objects.exists()


def test_a_field_mapped_twice_is_refused() -> None:
    mapping = {"field": "email", "remote": "email", "direction": "push", "conflict": "ours"}

    with pytest.raises(ValidationError, match="mapped twice"):
        create(field_mappings=[mapping, {**mapping, "remote": "work_email"}])


def test_an_unknown_purpose_in_the_purpose_map_is_refused() -> None:
    PurposeFactory(slug="newsletter")

    with pytest.raises(ValidationError) as refused:
        create(purpose_map={"newsletter": "1", "horoscope": "2"})

    assert refused.value.message_dict == {"purpose_map": ["Unknown purpose 'horoscope'."]}


def test_a_crm_connection_needs_its_token_and_a_webhook_a_valid_secret() -> None:
    with pytest.raises(ValidationError) as no_token:
        create(credentials={})
    with pytest.raises(ValidationError) as bad_secret:
        create(kind="webhook", credentials={"secret": "hunter2"})

    assert list(no_token.value.message_dict) == ["credentials"]
    assert "whsec_" in bad_secret.value.message_dict["credentials"][0]


def test_an_update_keeps_the_credentials_left_out_and_replaces_those_given() -> None:
    connection = create(credentials={"token": TOKEN, "secret": "other"})

    connection_update(
        connection=connection, fields={"enabled": False}, credentials={"token": "new"}
    )

    stored = Connection.objects.get(pk=connection.pk)
    assert connection_credentials(stored) == {"token": "new", "secret": "other"}
    assert stored.enabled is False


def test_after_a_key_rotation_the_credentials_are_re_encrypted_with_the_new_key(
    settings: Any,
) -> None:
    connection = create()
    old_key = settings.FIELD_ENCRYPTION_KEY
    new_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_PREVIOUS_KEYS = new_key, [old_key]

    out = StringIO()
    call_command("rotate_crm_credentials", stdout=out)

    assert out.getvalue().strip().splitlines()[-1] == "1 CRM connection re-encrypted."
    token = Connection.objects.get(pk=connection.pk).credentials_token
    assert Fernet(new_key).decrypt(token.encode())  # readable with the new key alone
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(token.encode())
    settings.FIELD_ENCRYPTION_PREVIOUS_KEYS = []
    assert connection_credentials(Connection.objects.get(pk=connection.pk)) == {"token": TOKEN}


def test_a_rotation_names_a_connection_no_key_can_read(settings: Any) -> None:
    create(name="orphan")
    settings.FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()

    with pytest.raises(InvalidToken, match="orphan"):
        connections_credentials_rotate()


def crm_connect(*args: str) -> list[str]:
    out = StringIO()
    call_command("crm_connect", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_crm_connect_creates_a_connection_and_prints_its_id_last() -> None:
    PurposeFactory(slug="newsletter")

    lines = crm_connect(
        "hubspot",
        "HubSpot EU",
        "--base-url",
        "https://api.hubapi.example",
        "--token",
        TOKEN,
        "--purpose-map",
        "newsletter=8723451",
    )

    connection = Connection.objects.get(pk=int(lines[-1]))
    assert (connection.name, connection.kind, connection.purpose_map) == (
        "HubSpot EU",
        "hubspot",
        {"newsletter": "8723451"},
    )
    assert connection_credentials(connection) == {"token": TOKEN}
    assert TOKEN not in "\n".join(lines)


def test_crm_connect_gives_a_webhook_without_secret_a_new_one_shown_once() -> None:
    lines = crm_connect("webhook", "integrator", "--base-url", "https://hooks.example/cd")

    connection = Connection.objects.get(pk=int(lines[-1]))
    secret = connection_credentials(connection)["secret"]
    assert secret.startswith("whsec_") and secret in lines[-2]
    WebhookAdapter(connection_config(connection))  # standardwebhooks takes it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fax", "x", "--base-url", "https://a.example"], "invalid choice"),
        (["hubspot", "x", "--base-url", "not a url", "--token", "t"], "base_url"),
        (["hubspot", "x", "--base-url", "https://a.example"], "access token"),
        (["webhook", "x", "--base-url", "https://a.example", "--secret", "s"], "whsec_"),
        (
            [
                "hubspot",
                "x",
                "--base-url",
                "https://a.example",
                "--token",
                "t",
                "--purpose-map",
                "n",
            ],
            "SLUG=REMOTE_ID",
        ),
        (
            [
                "hubspot",
                "x",
                "--base-url",
                "https://a.example",
                "--token",
                "t",
                "--purpose-map",
                "nope=1",
            ],
            "Unknown purpose 'nope'",
        ),
    ],
)
def test_crm_connect_refuses_bad_input_clearly_and_creates_nothing(
    args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        crm_connect(*args)

    assert not Connection.objects.exists()


def test_crm_connect_refuses_a_name_already_taken() -> None:
    create(name="crm")

    with pytest.raises(CommandError, match="already exists"):
        crm_connect("hubspot", "crm", "--base-url", "https://a.example", "--token", "t")

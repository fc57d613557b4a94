"""CRM connections: their settings, checked, and their credentials, encrypted at rest (GDPR
Art. 32): the database holds a Fernet token, never the plaintext (`core.encryption`).

A module apart from `crmsync.services`, which the apps below this one import to write the
outbox: this one needs their services (the contact's fields, the purposes)."""

from collections.abc import Mapping
from typing import Any

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from consent.models import Purpose
from contacts.models import Contact
from contacts.services import contact_payload
from core.batches import in_batches
from core.encryption import field_cipher, json_decrypted, json_encrypted
from crmsync.adapters.base import ConnectionConfig
from crmsync.models import (
    ConflictRule,
    Connection,
    ConnectionKind,
    ConnectionState,
    MappingDirection,
)
from crmsync.services import connections_changed, outbox_head


def mappable_fields() -> list[str]:
    """Our contact fields a mapping may name: those the outbox carries about a contact."""
    return [name for name in contact_payload(Contact()) if name != "id"]


def field_mappings_problems(mappings: Any) -> list[str]:
    """What is wrong with a connection's field mappings (empty when nothing is)."""
    if not isinstance(mappings, list):
        return [_("Give a list of {field, remote, direction, conflict} objects.")]
    known = set(mappable_fields())
    problems = []
    seen: set[str] = set()
    for number, mapping in enumerate(mappings, start=1):
        where = _("Mapping %(number)d") % {"number": number}
        found = _mapping_problems(mapping, known)
        field = mapping.get("field") if isinstance(mapping, dict) else None
        if field in known and field in seen:
            found.append(_("%(field)s is mapped twice.") % {"field": field})
        seen.add(str(field))
        problems += [f"{where}: {problem}" for problem in found]
    return problems


def _mapping_problems(mapping: Any, known: set[str]) -> list[str]:
    if not isinstance(mapping, dict):
        return [_("not an object.")]
    problems = []
    unexpected = sorted(set(mapping) - {"field", "remote", "direction", "conflict"})
    if unexpected:
        problems.append(_("unknown keys %(keys)s.") % {"keys": ", ".join(unexpected)})
    if mapping.get("field") not in known:
        problems.append(
            _("unknown field %(field)r (one of: %(known)s).")
            % {"field": mapping.get("field"), "known": ", ".join(sorted(known))}
        )
    if not isinstance(mapping.get("remote"), str) or not mapping["remote"].strip():
        problems.append(_("name the CRM's field in “remote”."))
    for key, choices in (("direction", MappingDirection), ("conflict", ConflictRule)):
        if mapping.get(key) not in choices.values:
            problems.append(
                _("unknown %(key)s %(value)r (one of: %(known)s).")
                % {"key": key, "value": mapping.get(key), "known": ", ".join(choices.values)}
            )
    return problems


def purpose_map_problems(purpose_map: Any) -> list[str]:
    """What is wrong with a connection's purpose map (empty when nothing is)."""
    if not isinstance(purpose_map, dict):
        return [_("Give an object {purpose slug: the CRM's id}.")]
    known = set(Purpose.objects.filter(slug__in=list(purpose_map)).values_list("slug", flat=True))
    problems = [
        _("Unknown purpose %(slug)r.") % {"slug": slug} for slug in purpose_map if slug not in known
    ]
    problems += [
        _("Purpose %(slug)s: give the CRM's id as text.") % {"slug": slug}
        for slug, remote in purpose_map.items()
        if not isinstance(remote, str) or not remote.strip()
    ]
    return problems


def credentials_problems(*, kind: str, credentials: Mapping[str, str]) -> list[str]:
    """What is wrong with a connection's credentials for its kind (empty when nothing is)."""
    if kind == ConnectionKind.WEBHOOK:
        from crmsync.adapters.webhook import secret_problem  # the webhook adapter's own rule

        problem = secret_problem(credentials.get("secret", ""))
        return [problem] if problem else []
    if kind in (ConnectionKind.HUBSPOT, ConnectionKind.SALESFORCE) and not credentials.get("token"):
        return [_("A %(kind)s connection needs its access token.") % {"kind": kind}]
    return []


def connection_validate(
    *,
    kind: str,
    field_mappings: Any,
    purpose_map: Any,
    options: Any,
    credentials: Mapping[str, str] | None = None,
) -> None:
    """Raise a ValidationError naming each field that is wrong, with why."""
    errors: dict[str, list[str]] = {}
    if kind not in ConnectionKind.values:
        errors["kind"] = [
            _("Unknown kind %(kind)r (one of: %(known)s).")
            % {"kind": kind, "known": ", ".join(ConnectionKind.values)}
        ]
    for name, problems in (
        ("field_mappings", field_mappings_problems(field_mappings)),
        ("purpose_map", purpose_map_problems(purpose_map)),
        ("options", [] if isinstance(options, dict) else [_("Give an object.")]),
        (
            "credentials",
            [] if credentials is None else credentials_problems(kind=kind, credentials=credentials),
        ),
    ):
        if problems:
            errors[name] = problems
    if errors:
        raise ValidationError(errors)


def connection_create(
    *,
    name: str,
    kind: str,
    base_url: str,
    credentials: Mapping[str, str],
    field_mappings: list[dict[str, str]] | None = None,
    purpose_map: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    pull_interval: int = 60,
    enabled: bool = True,
) -> Connection:
    """Create a CRM connection, its credentials encrypted (GDPR Art. 32). It receives the
    changes made from now on: its push cursor starts at the end of the outbox."""
    connection = Connection(
        name=name,
        kind=kind,
        base_url=base_url,
        field_mappings=field_mappings or [],
        purpose_map=purpose_map or {},
        options=options or {},
        pull_interval=pull_interval,
        enabled=enabled,
    )
    connection_validate(
        kind=kind,
        field_mappings=connection.field_mappings,
        purpose_map=connection.purpose_map,
        options=connection.options,
        credentials=credentials,
    )
    connection.credentials_token = json_encrypted(dict(credentials))
    connection.full_clean(exclude=["credentials_token"])
    with transaction.atomic():
        connection.save()
        ConnectionState.objects.create(connection=connection, push_cursor=outbox_head())
        transaction.on_commit(connections_changed)
    return connection


def connection_update(
    *, connection: Connection, fields: Mapping[str, Any], credentials: Mapping[str, str] | None
) -> Connection:
    """Change a connection; `credentials`, when given, replaces the stored ones (merged over
    them: a key left out keeps its value)."""
    for name, value in fields.items():
        setattr(connection, name, value)
    merged = None
    if credentials:
        merged = {**connection_credentials(connection), **credentials}
    connection_validate(
        kind=connection.kind,
        field_mappings=connection.field_mappings,
        purpose_map=connection.purpose_map,
        options=connection.options,
        credentials=merged,
    )
    if merged is not None:
        connection.credentials_token = json_encrypted(merged)
    connection.full_clean(exclude=["credentials_token"])
    with transaction.atomic():
        connection.save()
        ConnectionState.objects.get_or_create(
            connection=connection, defaults={"push_cursor": outbox_head()}
        )
        transaction.on_commit(connections_changed)
    return connection


def connection_credentials(connection: Connection) -> dict[str, str]:
    """The connection's credentials, decrypted ({} when none are stored)."""
    if not connection.credentials_token:
        return {}
    value = json_decrypted(connection.credentials_token)
    return value if isinstance(value, dict) else {}


def connection_config(connection: Connection) -> ConnectionConfig:
    """The connection as its adapter sees it (credentials decrypted)."""
    return ConnectionConfig(
        name=connection.name,
        kind=connection.kind,
        base_url=connection.base_url,
        credentials=connection_credentials(connection),
        purpose_map=dict(connection.purpose_map),
        field_mappings=list(connection.field_mappings),
        options=dict(connection.options),
    )


def connections_credentials_rotate(*, batch_size: int = 100) -> int:
    """Re-encrypt every connection's credentials with `FIELD_ENCRYPTION_KEY` (after a key
    rotation), a batch per transaction. Answers how many; one no key reads stops it, named."""
    cipher = field_cipher()
    rotated = 0
    for batch in in_batches(
        Connection.objects.exclude(credentials_token=""), batch_size=batch_size
    ):
        with transaction.atomic():
            for connection in batch:
                try:
                    token = cipher.rotate(connection.credentials_token.encode("ascii"))
                except InvalidToken as error:
                    raise InvalidToken(f"CRM connection {connection.name!r}") from error
                Connection.objects.filter(pk=connection.pk).update(
                    credentials_token=token.decode("ascii")
                )
                rotated += 1
    return rotated

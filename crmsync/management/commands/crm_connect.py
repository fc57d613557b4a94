"""`manage.py crm_connect {hubspot,salesforce,webhook} NAME --base-url URL [--token T]
[--secret S] [--purpose-map SLUG=REMOTE_ID ...]`: prints the new connection's id last."""

import base64
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from crmsync.adapters.webhook import SECRET_PREFIX
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionKind


class Command(BaseCommand):
    help = (
        "Create a CRM connection and print its id on the last line. Its credentials are "
        "stored encrypted; a webhook without --secret gets a new one, printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=ConnectionKind.values)
        parser.add_argument("name", help="A unique name for the connection.")
        parser.add_argument(
            "--base-url", required=True, help="The CRM's API base URL, or the webhook's URL."
        )
        parser.add_argument("--token", default="", help="The CRM's access token.")
        parser.add_argument(
            "--secret", default="", help="The webhook's signing secret (whsec_ then base64)."
        )
        parser.add_argument(
            "--purpose-map",
            nargs="+",
            default=[],
            metavar="SLUG=REMOTE_ID",
            help="Our purpose slug = the CRM's subscription type or data-use purpose id.",
        )

    def handle(self, *args: Any, kind: str, name: str, base_url: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError(_("Give the connection a name."))
        if Connection.objects.filter(name=name).exists():
            raise CommandError(_("A CRM connection named “%s” already exists.") % name)
        credentials = {}
        generated = ""
        if options["token"]:
            credentials["token"] = options["token"]
        if kind == ConnectionKind.WEBHOOK:
            generated = "" if options["secret"] else secret_generated()
            credentials["secret"] = options["secret"] or generated
        elif options["secret"]:
            credentials["secret"] = options["secret"]
        try:
            connection = connection_create(
                name=name,
                kind=kind,
                base_url=base_url,
                credentials=credentials,
                purpose_map=purpose_map_parsed(options["purpose_map"]),
            )
        except ValidationError as error:
            raise CommandError(problems_text(error)) from error
        self.stdout.write(
            _("CRM connection “%(name)s” (%(kind)s) created.") % {"name": name, "kind": kind}
        )
        if generated:
            self.stdout.write(
                _("Its signing secret, shown only this once (give it to the receiver): %s")
                % generated
            )
        self.stdout.write(str(connection.pk))


def secret_generated() -> str:
    """A new Standard Webhooks secret: 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def purpose_map_parsed(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        slug, separator, remote = pair.partition("=")
        if not separator or not slug.strip() or not remote.strip():
            raise CommandError(
                _("--purpose-map: give SLUG=REMOTE_ID, not %(pair)r.") % {"pair": pair}
            )
        if slug.strip() in mapping:
            raise CommandError(_("--purpose-map: %(slug)s is given twice.") % {"slug": slug})
        mapping[slug.strip()] = remote.strip()
    return mapping


def problems_text(error: ValidationError) -> str:
    """A ValidationError as lines "field: message"."""
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"{field}: {message}"
            for field, messages in error.message_dict.items()
            for message in messages
        )
    return "\n".join(error.messages)

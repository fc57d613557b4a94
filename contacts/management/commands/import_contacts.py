"""`manage.py import_contacts FILE [--purpose SLUG --channel C --wording TEXT
--source-reference R]`: shows progress, the rejected rows, then `created N, updated N,
rejected N` on its last line."""

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from contacts.imports import BATCH_SIZE, contact_import_run, contacts_import
from contacts.models import ContactImport, ImportStatus


class Command(BaseCommand):
    help = (
        "Import a CSV (UTF-8 or Windows-1252, `,` or `;`) or XLSX list of contacts, with the "
        "consent every row grants (its purpose, channel, wording and source) if any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV or XLSX file.")
        parser.add_argument("--purpose", default="", help="Slug of the purpose consented to.")
        parser.add_argument("--channel", default="", help="Channel of the consent (email, sms…).")
        parser.add_argument("--wording", default="", help="The wording the people were shown.")
        parser.add_argument(
            "--source-reference", default="", help="Where the consents were collected."
        )
        parser.add_argument(
            "--given-at-column",
            default="",
            help="The column holding each consent's date (default: a column named so).",
        )
        parser.add_argument(
            "--mapping", default="", help='JSON {column: field}, e.g. {"Courriel": "email"}.'
        )
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the import to the worker and print its id instead of loading it here.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(_("No such file: %s") % path)
        try:
            mapping = json.loads(options["mapping"]) if options["mapping"] else None
        except json.JSONDecodeError as error:
            raise CommandError(_("--mapping: %s") % error) from error
        consent = {
            "purpose": options["purpose"],
            "channel": options["channel"],
            "wording": options["wording"],
            "source_reference": options["source_reference"],
            "given_at_column": options["given_at_column"],
        }
        try:
            with path.open("rb") as handle:
                contact_import = contacts_import(
                    file=handle,
                    file_name=path.name,
                    mapping=mapping,
                    consent=consent,
                    queue=options["queue"],
                )
        except ValidationError as error:
            raise CommandError(_error_text(error)) from error
        if options["queue"]:
            self.stdout.write(_("Import %s queued for the worker.") % contact_import.public_id)
            return
        try:
            done = contact_import_run(
                contact_import_id=contact_import.pk,
                batch_size=options["batch_size"],
                on_batch=self._progress,
            )
        except ValidationError as error:  # the file turned out unreadable past its header
            raise CommandError(_error_text(error)) from error
        for line, reason in done.rejections.values_list("line", "reason"):
            self.stdout.write(_("line %(line)d: %(reason)s") % {"line": line, "reason": reason})
        if done.status == ImportStatus.FAILED:
            raise CommandError(done.error)
        self.stdout.write(
            _("created %(created)d, updated %(updated)d, rejected %(rejected)d")
            % {"created": done.created, "updated": done.updated, "rejected": done.rejected}
        )

    def _progress(self, contact_import: ContactImport) -> None:
        self.stdout.write(
            _("%(processed)d/%(rows)d rows, %(consents)d consents recorded")
            % {
                "processed": contact_import.processed,
                "rows": contact_import.rows or 0,
                "consents": contact_import.consents_recorded,
            }
        )


def _error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"{field}: {message}"
            for field, messages in error.message_dict.items()
            for message in messages
        )
    return "\n".join(error.messages)

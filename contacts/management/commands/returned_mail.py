"""`manage.py returned_mail FILE [--campaign C]`: apply the mail house's returned-mail file;
prints each rejected line, then `applied N, unknown N, rejected N` on its last line."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from consent.models import SourceKind
from contacts.deliverability import returned_mail_file_apply


class Command(BaseCommand):
    help = (
        "Apply a returned-mail CSV (a `public_id` or `email` column and a `reason` column with "
        "the La Poste REFLEX reason): those postal addresses become undeliverable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV file.")
        parser.add_argument("--campaign", default="", help="The mailing the letters were in.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(_("No such file: %s") % path)
        result = returned_mail_file_apply(
            content=path.read_bytes(), source_kind=SourceKind.SYSTEM, campaign=options["campaign"]
        )
        for line, reason in result.rejected:
            self.stdout.write(_("line %(line)s: %(reason)s") % {"line": line, "reason": reason})
        self.stdout.write(
            _("applied %(applied)s, unknown %(unknown)s, rejected %(rejected)s")
            % {
                "applied": result.applied,
                "unknown": result.unknown,
                "rejected": len(result.rejected),
            }
        )

"""`manage.py crm_pull [NAME]`: one pull cycle of every enabled CRM connection (or NAME) now,
and what it did."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from crmsync.models import Connection
from crmsync.pull import PULLED_KINDS, connection_pull


class Command(BaseCommand):
    help = (
        "Pull the changes of every enabled HubSpot and Salesforce connection (or the one "
        "named) since their cursor, now, and print what was fetched, created, updated and "
        "skipped (with why)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="Only this connection.")

    def handle(self, *args: Any, **options: Any) -> None:
        connections = Connection.objects.filter(kind__in=PULLED_KINDS)
        if options["name"]:
            connections = connections.filter(name=options["name"])
            if not connections.exists():
                raise CommandError(
                    _("No HubSpot or Salesforce connection is named %(name)r.")
                    % {"name": options["name"]}
                )
            if not connections.filter(enabled=True).exists():
                raise CommandError(
                    _("The connection %(name)r is disabled.") % {"name": options["name"]}
                )
        failed = False
        for connection in connections.filter(enabled=True).order_by("name"):
            outcome = connection_pull(connection_id=connection.pk)
            if outcome.busy:
                self.stdout.write(
                    _("%(name)s: another pull is running; nothing done.") % {"name": connection}
                )
                continue
            self.stdout.write(
                _(
                    "%(name)s: fetched %(fetched)d, created %(created)d, updated %(updated)d, "
                    "unchanged %(unchanged)d, consents %(consents)d, skipped %(skipped)d"
                )
                % {
                    "name": connection.name,
                    "fetched": outcome.fetched,
                    "created": outcome.created,
                    "updated": outcome.updated,
                    "unchanged": outcome.unchanged,
                    "consents": outcome.consents,
                    "skipped": sum(outcome.skipped.values()),
                }
            )
            for reason, count in sorted(outcome.skipped.items()):
                self.stdout.write(f"  {_('skipped')} {count}: {reason}")
            if outcome.error:
                failed = True
                self.stderr.write(
                    _("%(name)s: the pull stopped: %(error)s")
                    % {"name": connection.name, "error": outcome.error}
                )
        if failed:
            raise CommandError(_("At least one pull failed (see above)."))

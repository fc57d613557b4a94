"""`manage.py verify_ledger`: walk the consent ledger's hash chain; non-zero exit on tampering."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from consent.ledger import GENESIS_HASH, ledger_verify
from consent.models import ConsentRecord


class Command(BaseCommand):
    help = (
        "Check every consent ledger record against its hash and the previous record. Exits 0 "
        "when the chain is intact, 1 naming each broken record otherwise."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_verify()
        if problems:
            for problem in problems:
                self.stderr.write(str(problem))
            raise CommandError(
                _("Consent ledger check FAILED: %(count)d problem(s) found.")
                % {"count": len(problems)}
            )
        last = ConsentRecord.objects.order_by("-id").only("hash").first()
        count = ConsentRecord.objects.count()
        last_hash = last.hash if last else GENESIS_HASH
        self.stdout.write(
            self.style.SUCCESS(
                _("Consent ledger intact: %(count)d record(s) verified, chain ends in %(hash)s.")
                % {"count": count, "hash": last_hash[:12]}
            )
        )

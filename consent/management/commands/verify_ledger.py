"""`manage.py verify_ledger [--head NUMBER:HASH]`: check the consent ledger's records, chains and
seals, streamed; non-zero exit on any problem, the result on the last line. The outcome is kept
as a `consent.LedgerVerification` (`consent.ledger.ledger_verification_record`) for the DPO's
dashboard."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from consent.ledger import ledger_verification_record, ledger_verify


class Command(BaseCommand):
    help = (
        "Check every consent ledger record against its hash, its contact's chain and its seal, "
        "and every seal against its chain and signature. Exits 0 when all is intact, 1 naming "
        "each problem otherwise. --head NUMBER:HASH checks a seal head kept outside the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--head",
            metavar="NUMBER:HASH",
            help=_("A seal head kept outside the database (downloaded or emailed)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_verify(head=options.get("head"))
        ledger_verification_record(report=report)  # the DPO's dashboard shows the last one
        if report.problem_count:
            for problem in report:
                self.stderr.write(str(problem))
            if report.left_off:
                self.stderr.write(
                    _("… and %(count)d more problem(s) not listed.") % {"count": report.left_off}
                )
            raise CommandError(
                _("Consent ledger check FAILED: %(count)d problem(s) found.")
                % {"count": report.problem_count}
            )
        last = report.last_seal
        if last is None:
            sealed = _("no seal yet")
        else:
            sealed = _("last seal %(head)s") % {"head": f"{last.number}:{last.seal_hash}"}
        unsealed = ""
        if report.oldest_unsealed_at is not None:
            age = int((timezone.now() - report.oldest_unsealed_at).total_seconds())
            unsealed = _(", %(count)d unsealed (oldest %(age)d s old)") % {
                "count": report.unsealed,
                "age": age,
            }
        if report.stripped:
            unsealed += ngettext(
                ", %(count)d removed at the end of its proof period",
                ", %(count)d removed at the end of their proof period",
                report.stripped,
            ) % {"count": report.stripped}
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "Consent ledger intact: %(count)d record(s) verified, %(seals)d seal(s), "
                    "%(sealed)s%(unsealed)s."
                )
                % {
                    "count": report.records,
                    "seals": report.seals,
                    "sealed": sealed,
                    "unsealed": unsealed,
                }
            )
        )

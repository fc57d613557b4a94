"""`manage.py rotate_proof_archive`: re-encrypt the proof archive with FIELD_ENCRYPTION_KEY."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from privacy.proof import proof_archive_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every proof archive entry with FIELD_ENCRYPTION_KEY, after a rotation "
        "(the old key in FIELD_ENCRYPTION_PREVIOUS_KEYS until this has run)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = proof_archive_rotate()
        self.stdout.write(
            ngettext(
                "%(count)d proof archive entry re-encrypted.",
                "%(count)d proof archive entries re-encrypted.",
                rotated,
            )
            % {"count": rotated}
        )

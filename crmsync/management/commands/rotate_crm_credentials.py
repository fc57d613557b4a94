"""`manage.py rotate_crm_credentials`: re-encrypt the CRM credentials with FIELD_ENCRYPTION_KEY."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from crmsync.connections import connections_credentials_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every CRM connection's credentials with FIELD_ENCRYPTION_KEY, after a "
        "rotation (the old key in FIELD_ENCRYPTION_PREVIOUS_KEYS until this has run)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = connections_credentials_rotate()
        self.stdout.write(
            ngettext(
                "%(count)d CRM connection re-encrypted.",
                "%(count)d CRM connections re-encrypted.",
                rotated,
            )
            % {"count": rotated}
        )

"""`manage.py create_api_client NAME --scopes S [S ...]`: prints the new key on its last line."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from core.models import ApiClient, Scope


class Command(BaseCommand):
    help = (
        "Create an API client with the given scopes and print its key on the last line. "
        "The key is shown only once: only its hash is stored. Scopes: " + ", ".join(Scope.values)
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A unique name, e.g. the web form or CRM it serves.")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            metavar="SCOPE",
            help="One or more of: " + ", ".join(Scope.values),
        )

    def handle(self, *args: Any, name: str, scopes: list[str], **options: Any) -> None:
        # "a,b" is accepted as well as "a b".
        requested = list(dict.fromkeys(s for value in scopes for s in value.split(",") if s))
        unknown = [scope for scope in requested if scope not in Scope.values]
        if unknown:
            raise CommandError(
                _("Unknown scope: %(unknown)s. Valid scopes: %(valid)s.")
                % {"unknown": ", ".join(unknown), "valid": ", ".join(Scope.values)}
            )
        if not requested:
            raise CommandError(_("Give at least one scope."))
        if not name.strip():
            raise CommandError(_("Give the API client a name."))
        client = ApiClient(name=name.strip(), scopes=requested)
        key = client.set_new_key()
        try:
            with transaction.atomic():
                client.save()
        except IntegrityError as error:
            raise CommandError(_("An API client named “%s” already exists.") % name) from error
        self.stdout.write(
            _("API client “%(name)s” created with scopes: %(scopes)s.")
            % {"name": client.name, "scopes": ", ".join(requested)}
        )
        self.stdout.write(_("Its key follows; it is shown only this once, store it now:"))
        self.stdout.write(key)

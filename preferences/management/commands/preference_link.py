"""`manage.py preference_link EMAIL`: print a new preference center link for a contact."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from contacts.selectors import contact_find
from preferences.services import preference_token_issue, preference_url, unsubscribe_url


class Command(BaseCommand):
    help = (
        "Issue a preference link for the contact with this email and print its URL on the last "
        "line. Links issued earlier keep working until the link is renewed in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        contact = contact_find(email=options["email"], with_erased=False)
        if contact is None:
            raise CommandError(_("No contact has this email."))
        token = preference_token_issue(contact=contact)
        self.stderr.write(_("Unsubscribe link: %(url)s") % {"url": unsubscribe_url(token)})
        self.stdout.write(preference_url(token))

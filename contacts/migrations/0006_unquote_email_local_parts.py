"""Contacts stored with a quoted local part take the key every spelling of it now gets.

`"camille.martin"@example.fr` was kept as typed; it is now `camille.martin@example.fr`, so a
later `camille.martin@example.fr` finds this contact instead of creating a second one. An
address that needs its quotes, or whose unquoted form another contact already holds, is left
as it is (staff fix or merge it in the admin). Suppression entries need no rewrite: they are
digests, and lookups also try the quoted spelling (contacts.normalization.email_keys).
"""

from django.core.exceptions import ValidationError
from django.db import migrations

from contacts.normalization import normalize_email


def unquote_email_local_parts(apps, schema_editor) -> None:
    contact_model = apps.get_model("contacts", "Contact")
    quoted = contact_model.objects.filter(email__startswith='"').only("id", "email")
    for contact in quoted.iterator():
        try:
            email = normalize_email(contact.email)
        except ValidationError:
            continue
        if contact_model.objects.filter(email=email).exists():
            continue
        contact_model.objects.filter(pk=contact.pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [("contacts", "0005_email_change_dates_and_unknown_language")]

    operations = [migrations.RunPython(unquote_email_local_parts, migrations.RunPython.noop)]

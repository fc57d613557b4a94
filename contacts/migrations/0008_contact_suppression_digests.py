"""The contact's suppression digests, stored so that the eligibility rule joins the suppression
list in SQL; filled for existing contacts from their email and phone with the current
`SUPPRESSION_HMAC_KEY` (from then on `Contact.save` keeps them in step)."""

from django.db import migrations, models

from contacts.normalization import suppression_digests

BATCH = 1000


def fill_suppression_digests(apps, schema_editor) -> None:
    contact_model = apps.get_model("contacts", "Contact")
    contacts = contact_model.objects.only("id", "email", "phone").order_by("id")
    last_id = 0
    while batch := list(contacts.filter(id__gt=last_id)[:BATCH]):
        for contact in batch:
            email_keys = suppression_digests(kind="email", value=contact.email)
            phone_keys = (
                suppression_digests(kind="phone", value=contact.phone) if contact.phone else []
            )
            contact.email_digest, contact.email_quoted_digest = (email_keys + [None, None])[:2]
            contact.phone_digest = (phone_keys + [None])[0]
        contact_model.objects.bulk_update(
            batch, ["email_digest", "email_quoted_digest", "phone_digest"]
        )
        last_id = batch[-1].id


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0007_contact_email_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="email_digest",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="contact",
            name="email_quoted_digest",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="contact",
            name="phone_digest",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(fill_suppression_digests, migrations.RunPython.noop),
    ]

"""The person's objection to legitimate-interest marketing, dated; for existing contacts, the
time of their last unsubscribe from all or objection request not followed by a resubscribe."""

from django.db import migrations, models
from django.db.models import Max, Q


def fill_marketing_objection(apps, schema_editor) -> None:
    contact_model = apps.get_model("contacts", "Contact")
    objected = contact_model.objects.annotate(
        objected_at=Max(
            "timeline__occurred_at", filter=Q(timeline__kind__in=["unsubscribed", "objection"])
        ),
        resubscribed_at=Max("timeline__occurred_at", filter=Q(timeline__kind="resubscribed")),
    ).filter(objected_at__isnull=False)
    for contact in objected.only("id"):
        if contact.resubscribed_at is None or contact.resubscribed_at < contact.objected_at:
            contact_model.objects.filter(pk=contact.pk).update(
                marketing_objected_at=contact.objected_at
            )


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0008_contact_suppression_digests"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="marketing_objected_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "Set by an objection (GDPR Art. 21(2)) or an unsubscribe from all: every "
                    "legitimate-interest purpose stays off, including one added later."
                ),
                null=True,
                verbose_name="objected to marketing at",
            ),
        ),
        migrations.RunPython(fill_marketing_objection, migrations.RunPython.noop),
    ]

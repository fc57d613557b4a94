import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The event's contact, joined on its public id: a relation of the models only (no
    column, no constraint), so nothing happens in the database, either way."""

    dependencies = [
        ("contacts", "0015_deliverability_feedback"),
        ("crmsync", "0008_sales_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="outboxevent",
                    name="contact",
                    field=models.ForeignObject(
                        from_fields=["contact_public_id"],
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="contacts.contact",
                        to_fields=["public_id"],
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]

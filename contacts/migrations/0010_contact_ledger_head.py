"""The head of each contact's chain in the consent ledger (filled by consent 0008)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0009_contact_marketing_objected_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="ledger_seq",
            field=models.BigIntegerField(default=0, editable=False, verbose_name="ledger position"),
        ),
        migrations.AddField(
            model_name="contact",
            name="ledger_hash",
            field=models.CharField(
                default="0000000000000000000000000000000000000000000000000000000000000000",
                editable=False,
                max_length=64,
                verbose_name="ledger head hash",
            ),
        ),
    ]

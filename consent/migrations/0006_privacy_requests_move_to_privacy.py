"""Privacy requests move to the `privacy` app: their tables are renamed, never copied.

consent forgets the two models (state only) while the database renames their tables to the
names the `privacy` app expects; `privacy.0001_initial` then declares the same models on those
tables. Every row, id and foreign key stays as it was (a rename on PostgreSQL and SQLite), and
the move is reversible.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0005_privacy_request_held_or_without_contact"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="privacyrequest", table="privacy_privacyrequest"),
                migrations.AlterModelTable(
                    name="privacyrequestevent", table="privacy_privacyrequestevent"
                ),
            ],
            state_operations=[
                migrations.DeleteModel(name="PrivacyRequestEvent"),
                migrations.DeleteModel(name="PrivacyRequest"),
            ],
        ),
    ]

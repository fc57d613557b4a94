"""The timeline's note lines written before they were worded at draw time named the special
categories a held note looked like ("Note held for review: santé") in the writer's language:
their summary is emptied and the categories dropped from their data (the page words them)."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def scrub_note_lines(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    TimelineEvent = apps.get_model("contacts", "TimelineEvent")
    for event in TimelineEvent.objects.filter(kind="note_added").iterator():
        data = {key: value for key, value in event.data.items() if key != "categories"}
        if event.summary or data != event.data:
            TimelineEvent.objects.filter(pk=event.pk).update(summary="", data=data)


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0017_notes"),
    ]

    operations = [
        migrations.RunPython(scrub_note_lines, migrations.RunPython.noop),
    ]

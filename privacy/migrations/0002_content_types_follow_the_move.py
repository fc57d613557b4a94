"""The content types of the moved models follow them from `consent` to `privacy`.

Permissions (and so the DPO group's rights) and the admin's log entries point at a content
type: renaming its app label keeps every one of them attached. Reversible: backwards, the
rows go back to `consent`.
"""

from django.conf import settings
from django.db import migrations

MODELS = ("privacyrequest", "privacyrequestevent")


def _merge(apps, old, new):
    """Both rows exist (a `migrate` stopped between the two apps' migrations, and its
    post_migrate created the new one): what points at the old row goes to the new one."""
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    # {the through table's column naming the holder: the table of who holds permissions}
    holders = {
        "group": apps.get_model("auth", "Group").permissions.through,
        User._meta.model_name: User.user_permissions.through,
    }
    for permission in Permission.objects.filter(content_type=old):
        twin = Permission.objects.filter(content_type=new, codename=permission.codename).first()
        if twin is None:
            permission.content_type = new
            permission.save(update_fields=["content_type"])
            continue
        for holder, links in holders.items():
            held_by = links.objects.filter(permission=permission).values_list(
                f"{holder}_id", flat=True
            )
            for holder_id in list(held_by):
                links.objects.get_or_create(**{f"{holder}_id": holder_id}, permission=twin)
        permission.delete()
    LogEntry.objects.filter(content_type=old).update(content_type=new)
    old.delete()


def _move(apps, from_label, to_label):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        old = ContentType.objects.filter(app_label=from_label, model=model).first()
        if old is None:
            continue  # a new database: post_migrate creates the rows once migrated
        new = ContentType.objects.filter(app_label=to_label, model=model).first()
        if new is None:
            old.app_label = to_label
            old.save(update_fields=["app_label"])
        else:
            _merge(apps, old, new)


def forwards(apps, schema_editor):
    _move(apps, "consent", "privacy")


def backwards(apps, schema_editor):
    _move(apps, "privacy", "consent")


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

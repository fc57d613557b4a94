"""`manage.py setup_roles`: the Marketers, DPO and Administrators groups with their
permissions (idempotent)."""

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import gettext as _

MARKETERS = "Marketers"
DPO = "DPO"
ADMINISTRATORS = "Administrators"

# {group: {"app_label.model": (actions)}}. Re-running resets each group to exactly this list.
# Nobody gets change or delete on the ledger: the model does not even define them.
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    MARKETERS: {
        # record_offline_consent: a consent the person signed on paper or gave on the phone
        "contacts.contact": ("view", "add", "change", "record_offline_consent"),
        "contacts.contactimport": ("view", "add"),
        "contacts.interest": ("view", "add", "change"),
        "contacts.timelineevent": ("view",),
        "contacts.suppression": ("view",),
        "consent.purpose": ("view",),
        "consent.purposeversion": ("view",),
        "consent.privacynotice": ("view",),
        "consent.consentrecord": ("view",),
        "consent.consentstate": ("view",),
        # the channels' marketing caps: the change permission also sets and removes a
        # channel's caps (consent.admin.FrequencyCapAdmin)
        "consent.frequencycap": ("view", "change"),
        "crmsync.outboxevent": ("view",),
        # marketers watch the CRM sync; staff admins (superusers) manage it
        "crmsync.connection": ("view",),
        "crmsync.deadletter": ("view",),
        # marketers build and preview campaigns; recipients are written by the senders only
        "campaigns.segment": ("view", "add", "change"),
        "campaigns.campaign": ("view", "add", "change", "send"),
        "campaigns.campaignstep": ("view", "add", "change", "delete"),
        "campaigns.recipient": ("view",),
        # the register of processing activities (GDPR Art. 30) is read by the marketers
        "privacy.processingactivity": ("view",),
        # notes are screened: a held one's text is for the DPO only (contacts.admin.NoteInline)
        "contacts.note": ("view", "add"),
    },
    DPO: {
        "consent.purpose": ("view", "add", "change"),
        "consent.purposeversion": ("view", "add"),
        # a version consent records name is frozen (consent.services.privacy_notice_save)
        "consent.privacynotice": ("view", "add", "change"),
        "consent.consentrecord": ("view",),
        "consent.consentstate": ("view",),
        "consent.consentevidence": ("view",),
        "consent.frequencycap": ("view",),
        "consent.ledgerseal": ("view", "download_heads"),
        "consent.ledgerverification": ("view",),
        # "close": an erasure closed before every CRM acknowledged it (with a note)
        "privacy.privacyrequest": ("view", "add", "change", "close"),
        "privacy.erasureacknowledgement": ("view",),
        "privacy.privacyrequestevent": ("view", "add"),
        # the decrypted proof of an erased person: read through an audited action only
        "privacy.proofarchiveentry": ("view", "read"),
        "contacts.contact": (
            "view",
            "change",
            "change_email",
            "merge",
            "record_offline_consent",
        ),
        "contacts.contactimport": ("view", "add"),
        "contacts.interest": ("view",),
        "contacts.timelineevent": ("view",),
        # No delete: only the person's own new consent lifts a suppression.
        "contacts.suppression": ("view", "add"),
        "crmsync.outboxevent": ("view",),
        # where personal data goes (the processor register); managed by staff admins
        "crmsync.connection": ("view",),
        "crmsync.deadletter": ("view",),
        "core.apiclient": ("view",),
        "core.auditevent": ("view",),
        # who received what, and on which proof (GDPR Art. 5(2), 7(1)); the DPO writes and
        # sends the notices the law requires (policy updates, breach notifications)
        "campaigns.segment": ("view",),
        "campaigns.campaign": ("view", "add", "change", "send_notice"),
        "campaigns.campaignstep": ("view", "add", "change", "delete"),
        "campaigns.recipient": ("view",),
        # the registers of processing activities and of processors (GDPR Art. 28, 30)
        "privacy.processingactivity": ("view", "add", "change"),
        "privacy.processor": ("view", "add", "change"),
        # the breach register (GDPR Art. 33(5)) keeps its history: nobody deletes an entry
        "privacy.breach": ("view", "add", "change"),
        # releases or discards the notes held for special categories of data (Art. 9, 10)
        "contacts.note": ("view", "add", "review"),
    },
    # Run the tool, not the data: staff accounts, schedules, second factors. No ledger,
    # contact or request rights; no deletions that would erase a trail (accounts are switched
    # off instead). Whoever assigns roles can take any role: group permissions stay view-only
    # (this command owns them), and the user admin keeps group membership, superuser status,
    # per-user permissions and other people's passwords to superusers, and every superuser
    # account out of reach (core.admin.StaffUserAdmin).
    ADMINISTRATORS: {
        "auth.user": ("view", "add", "change"),
        "auth.group": ("view",),
        # a key with contacts:read or a webhook to one's own host reads every contact:
        # superusers manage API clients and CRM connections
        "core.apiclient": ("view",),
        "crmsync.connection": ("view",),
        # the schedule only: the task, its arguments and "run now" are superusers'
        # (core.admin.PeriodicTaskAdmin)
        "django_celery_beat.periodictask": ("view", "change"),
        "django_celery_beat.intervalschedule": ("view", "add", "change"),
        "django_celery_beat.crontabschedule": ("view", "add", "change"),
        "django_celery_beat.clockedschedule": ("view", "add", "change"),
        "django_celery_beat.solarschedule": ("view",),
        # a lost phone: remove the device and the person enrols a new one at the next login
        # (with their own password); never add one (whoever adds it knows its secret), never
        # one's own nor a superuser's (core.admin.StaffDeviceAdmin)
        "core.staffdevice": ("view", "delete"),
        # a colleague locked out by failed logins (django-axes): removing the attempts unlocks
        "axes.accessattempt": ("view", "delete"),
    },
}


def role_permissions(models: dict[str, tuple[str, ...]]) -> list[Permission]:
    """The Permission rows a role names; fails loudly on a name that does not exist."""
    wanted = {
        (label.split(".")[0], f"{action}_{label.split('.')[1]}")
        for label, actions in models.items()
        for action in actions
    }
    found = {
        (permission.content_type.app_label, permission.codename): permission
        for permission in Permission.objects.select_related("content_type").filter(
            codename__in={codename for _app, codename in wanted}
        )
    }
    missing = sorted(f"{app}.{codename}" for app, codename in wanted - set(found))
    if missing:
        raise CommandError(
            _("Unknown permissions (are migrations applied?): %s") % ", ".join(missing)
        )
    return [found[key] for key in sorted(wanted)]


class Command(BaseCommand):
    help = "Create or reset the Marketers, DPO and Administrators groups and their permissions."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for name, models in ROLES.items():
                group, created = Group.objects.get_or_create(name=name)
                permissions = role_permissions(models)
                group.permissions.set(permissions)
                if created:
                    message = _("Group %(name)s created with %(count)d permissions.")
                else:
                    message = _("Group %(name)s reset to its %(count)d permissions.")
                self.stdout.write(message % {"name": name, "count": len(permissions)})

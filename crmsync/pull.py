"""The pull: each CRM connection's changes read since its stored cursor and applied to our
contacts and the consent ledger.

A pull claims its connection with a conditional UPDATE (its own lease, apart from the push's:
both run at once), asks the adapter for a page after the cursor, then applies the page and
stores the page's cursor in one transaction, only while the lease is still its own. A worker
killed mid-page stored nothing: the next pull reads the page again, and applying it again
changes nothing (a field already equal, a withdrawal already recorded, a link already there).

Applying a record: the contact is found by the link to the CRM's id (a converted Salesforce
lead's Contact id too), then by our id the CRM holds, then by the normalised email; an email
changed in the CRM changes the same contact. A page is applied with a few statements, not a
few per record: its links, contacts and suppressions read at once, its new people created
through `contacts.services.contacts_create_many` and its changed contacts through
`contacts_update_many` (the batched siblings of `contact_upsert` and `contact_update`, same
rules), an email change through `contact_update`. A suppressed address (an erased person's
stays on the list) is never created, so a pull never re-creates them; an erased contact is
never touched. Fields follow their mapping's conflict rule. Consent changes, grants and
withdrawals, go through the one write path (`consents_record_many`, source `crm`, at the
time the CRM says the change was made, not the record's modification time), those our state
holds already or older than it left out. A grant is second-hand: it carries what the CRM
says of it (its legal basis and explanation when the adapter reads them) but no proof of the
wording the person saw (GDPR Art. 7(1)), so re-permission counts it as undocumented; it is
never recorded for a suppressed person (only their own new consent lifts a suppression) and,
on a double opt-in purpose, it waits pending for the person's click, as an import's does.
Every outbox event a pull writes names its connection, which the push does not send them
back to (no ping-pong).

The record's owner in the CRM, when the adapter read it, is stored on the contact's link to
the connection, one statement a page (`link_owners_store`): the sales alerts email them.
"""

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Case, CharField, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from consent.models import ConsentAction, ConsentState, ConsentStatus, Purpose, SourceKind
from consent.services import ConsentWrite, ConsentWriteErrors, Evidence, consents_record_many
from consent.services.consents import effective_time
from contacts.models import Contact, ContactStatus, SuppressionKind
from contacts.normalization import normalize_email
from contacts.selectors import suppression_reason, suppression_reasons_many
from contacts.services import (
    ContactsWritten,
    contact_fields_clean,
    contact_update,
    contacts_create_many,
    contacts_update_many,
)
from crmsync.adapters import AdapterUnavailable, adapter_for
from crmsync.adapters.base import PullPage, RemoteConsent, RemoteContact, TransientError
from crmsync.connections import connection_config
from crmsync.models import (
    ConflictRule,
    Connection,
    ConnectionKind,
    ConnectionState,
    ContactLink,
    OutboxEvent,
    OutboxTopic,
)
from crmsync.push import ERROR_LENGTH, links_store
from crmsync.services import ORIGIN_KEY, outbox_head, outbox_origin

logger = logging.getLogger(__name__)

PULLED_KINDS = (ConnectionKind.HUBSPOT, ConnectionKind.SALESFORCE)
LIVE = (ConsentStatus.GRANTED, ConsentStatus.PENDING)
OWNER_ID_LENGTH = 255  # ContactLink.owner_id


@dataclass
class PullOutcome:
    """What one pull of a connection did."""

    pages: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    consents: int = 0
    # why records (or their consents) were left out: reason -> how many
    skipped: Counter[str] = field(default_factory=Counter)
    error: str = ""
    busy: bool = False  # another worker is pulling this connection


def connection_pull(*, connection_id: int) -> PullOutcome:
    """Pull the connection's CRM changes since its cursor, page after page, until the CRM has
    none left or the time budget (`CRM_PULL_TIME_BUDGET`) ends. Safe to run twice at once."""
    outcome = PullOutcome()
    connection = Connection.objects.filter(
        pk=connection_id, enabled=True, kind__in=PULLED_KINDS
    ).first()
    if connection is None:
        return outcome
    ConnectionState.objects.get_or_create(
        connection=connection, defaults={"push_cursor": outbox_head()}
    )
    token = _claim(connection_id)
    if token is None:
        outcome.busy = True
        return outcome
    try:
        adapter: Any = adapter_for(connection_config(connection))
        deadline = time.monotonic() + settings.CRM_PULL_TIME_BUDGET
        cursor = ConnectionState.objects.values_list("pull_cursor", flat=True).get(pk=connection_id)
        while True:
            page: PullPage = adapter.pull(cursor or None, settings.CRM_PULL_PAGE_SIZE)
            if not _page_apply(connection, token, page, outcome):
                return outcome  # the lease was lost: another pull goes on from the cursor
            # a page that moved nothing would come back the same: wait for the next cycle
            if page.done or page.next_cursor == cursor or time.monotonic() >= deadline:
                break
            cursor = page.next_cursor
        ConnectionState.objects.filter(pk=connection_id, pull_lease_token=token).update(
            last_pull_at=timezone.now(), pull_error=""
        )
    except Exception as error:  # a CRM down, a bad configuration: named, kept for the admin
        if not isinstance(error, AdapterUnavailable | TransientError):
            logger.warning("CRM connection %s: the pull failed", connection_id, exc_info=True)
        outcome.error = f"{type(error).__name__}: {error}"[:ERROR_LENGTH]
        ConnectionState.objects.filter(pk=connection_id).update(
            pull_error=outcome.error, pull_error_at=timezone.now()
        )
    finally:
        ConnectionState.objects.filter(pk=connection_id, pull_lease_token=token).update(
            pull_lease_token=None, pull_lease_until=None
        )
    return outcome


def connections_due_for_pull(*, now: datetime | None = None) -> list[int]:
    """The enabled CRM connections whose pull interval has passed since their last pull."""
    now = now or timezone.now()
    due = []
    for pk, interval, last in Connection.objects.filter(
        enabled=True, kind__in=PULLED_KINDS
    ).values_list("pk", "pull_interval", "state__last_pull_at"):
        # a few seconds early: the beat runs every minute, the intervals are minutes too
        if last is None or last + timedelta(seconds=interval) <= now + timedelta(seconds=5):
            due.append(pk)
    return due


def _claim(connection_id: int) -> uuid.UUID | None:
    """Take the pull's lease when it is free: one conditional UPDATE on the state row."""
    now = timezone.now()
    token = uuid.uuid4()
    free = Q(pull_lease_until__isnull=True) | Q(pull_lease_until__lt=now)
    claimed = (
        ConnectionState.objects.filter(pk=connection_id)
        .filter(free)
        .update(
            pull_lease_token=token,
            pull_lease_until=now + timedelta(seconds=settings.CRM_PULL_LEASE),
        )
    )
    return token if claimed else None


def _page_apply(
    connection: Connection, token: uuid.UUID, page: PullPage, outcome: PullOutcome
) -> bool:
    """Apply the page and store its cursor, in one transaction, while the lease is ours."""
    with transaction.atomic():
        state = (
            ConnectionState.objects.select_for_update()
            .filter(pk=connection.pk, pull_lease_token=token)
            .first()
        )
        if state is None:
            return False
        counts = PullOutcome()
        with outbox_origin(connection.pk):
            _Applier(connection, counts).apply(page.contacts)
        for problem in page.problems:
            counts.skipped[problem] += 1
        state.pull_cursor = page.next_cursor
        state.pull_lease_until = timezone.now() + timedelta(seconds=settings.CRM_PULL_LEASE)
        state.save(update_fields=["pull_cursor", "pull_lease_until"])
    outcome.pages += 1
    outcome.fetched += len(page.contacts) + len(page.problems)
    outcome.created += counts.created
    outcome.updated += counts.updated
    outcome.unchanged += counts.unchanged
    outcome.consents += counts.consents
    outcome.skipped.update(counts.skipped)
    return True


class _Applier:
    """One page's records applied, in the CRM's order, with a few statements for the page.

    What the page needs is read at once (its links, the contacts by those links, by our ids
    and by the normalised emails, the suppression of the emails no contact has); each record
    is then decided in memory, in order, the new contacts and the changed ones waiting to be
    written together (`contacts_create_many`, `contacts_update_many`, which check every one
    before they write any: a refused record is named, the rest applied). A record that needs
    a contact still waiting has them written first, so a record sees what the ones before it
    did, as when each was written at once. An email changed in the CRM goes through
    `contact_update` alone (its check against the other contacts' addresses may refuse it);
    the page's consent changes are written at once at the end."""

    def __init__(self, connection: Connection, outcome: PullOutcome) -> None:
        self.connection = connection
        self.outcome = outcome
        self.rules = {
            str(mapping.get("field")): str(mapping.get("conflict") or ConflictRule.LATEST)
            for mapping in connection.field_mappings
        }
        self.purposes = {p.slug: p for p in Purpose.objects.filter(slug__in=connection.purpose_map)}
        # the CRM's id -> our contact, as learned in this page (before the links are stored)
        self.linked: dict[str, int] = {}
        self.links: dict[uuid.UUID, str] = {}
        self.pks: dict[uuid.UUID, int] = {}
        # (contact, purpose, channel) -> the newest consent change asked in this page
        self.consents: dict[tuple[int, str, str], tuple[Contact, RemoteConsent, str]] = {}
        # our contact -> its owner in the CRM (id, email), for the records that name one
        self.owners: dict[int, tuple[str, str]] = {}
        # what the page read: the stored links (the CRM's id -> newest link's time, contact)
        # and our contacts, kept up to date with what the page writes
        self.stored_links: dict[str, tuple[datetime, int]] = {}
        self.by_pk: dict[int, Contact] = {}
        self.by_public_id: dict[uuid.UUID, Contact] = {}
        self.by_email: dict[str, Contact] = {}
        self.checked: set[str] = set()  # the emails whose suppression was read
        self.suppressed: set[str] = set()
        # the records waiting for their contact to be written
        self.creating: list[tuple[RemoteContact, str, dict[str, Any]]] = []
        self.creating_keys: set[str] = set()  # their emails and CRM ids
        self.updating: list[tuple[RemoteContact, Contact, dict[str, Any]]] = []
        self.updating_ids: set[int] = set()

    def apply(self, records: list[RemoteContact]) -> None:
        self._read(records)
        for record in records:
            self._record(record)
        self._flush()
        now = timezone.now()
        links_store(connection_id=self.connection.pk, remote_ids=self.links, now=now, pks=self.pks)
        link_owners_store(connection_id=self.connection.pk, owners=self.owners, now=now)
        self._write_consents()

    def _skip(self, reason: str) -> None:
        self.outcome.skipped[reason] += 1

    # -- the page's reads ----------------------------------------------------------------------
    def _read(self, records: list[RemoteContact]) -> None:
        """The links, contacts and suppressions the page's records may need: three or four
        statements, whatever the page's size."""
        remote_ids: set[str] = set()
        emails: set[str] = set()
        public_ids: set[uuid.UUID] = set()
        for record in records:
            remote_ids.update(i for i in (record.converted_to, record.remote_id) if i)
            email = _email(record)
            if email:
                emails.add(email)
            public_id = _public_id(record)
            if public_id is not None:
                public_ids.add(public_id)
        for remote_id, updated_at, contact_id in ContactLink.objects.filter(
            connection=self.connection, remote_id__in=remote_ids
        ).values_list("remote_id", "updated_at", "contact_id"):
            known = self.stored_links.get(remote_id)
            if known is None or (updated_at, contact_id) > known:
                self.stored_links[remote_id] = (updated_at, contact_id)
        linked = {contact_id for _at, contact_id in self.stored_links.values()}
        contacts = list(
            Contact.objects.filter(
                Q(pk__in=linked) | Q(public_id__in=public_ids) | Q(email__in=emails)
            )
        )
        merged_into = {c.merged_into_id for c in contacts if c.merged_into_id is not None}
        merged_into -= {c.pk for c in contacts}
        if merged_into:
            contacts += Contact.objects.filter(pk__in=merged_into)
        for contact in contacts:
            self._remember(contact)
        self._suppressions_read(emails - set(self.by_email))

    def _suppressions_read(self, emails: set[str]) -> None:
        listed = suppression_reasons_many(
            entries=[(SuppressionKind.EMAIL, email) for email in emails]
        )
        self.checked |= emails
        self.suppressed |= {email for _kind, email in listed}

    def _remember(self, contact: Contact) -> None:
        self.by_pk[contact.pk] = contact
        self.by_public_id[contact.public_id] = contact
        self.by_email[contact.email] = contact

    # -- the contact ---------------------------------------------------------------------------
    def _record(self, record: RemoteContact) -> None:
        try:
            email = normalize_email(record.email) if record.email else ""
        except ValidationError as error:
            self._skip(_("refused: %s") % _reasons(error))
            return
        ids = [i for i in (record.converted_to, record.remote_id) if i]
        if email in self.creating_keys or self.creating_keys.intersection(ids):
            self._flush()  # the contact it may be is still waiting to be created
        contact = self._known(record, ids, email)
        if contact is not None and contact.pk in self.updating_ids:
            self._flush()  # it is waiting to be changed: from the contact changed
            contact = self._known(record, ids, email)
        if contact is not None and contact.status == ContactStatus.ERASED:
            self._skip(_("erased here: never re-created by a pull"))
        elif contact is None:
            self._new(record, email)
        else:
            self._known_changed(record, contact, email)

    def _new(self, record: RemoteContact, email: str) -> None:
        if not email:
            self._skip(_("no email in the CRM"))
            return
        if email not in self.checked:  # freed by an email change earlier in the page
            self._suppressions_read({email})
        # the imports' rule: a suppressed address (an erased person's stays listed) is
        # never created again, whatever a list or a CRM holds
        if email in self.suppressed:
            self._skip(_("suppressed here: never re-created by a pull"))
            return
        self.creating.append((record, email, self._new_fields(record)))
        self.creating_keys.update(i for i in (email, record.converted_to, record.remote_id) if i)

    def _known_changed(self, record: RemoteContact, contact: Contact, email: str) -> None:
        changes = self._changes(contact, record)
        # a converted lead's address is the lead's: the Contact's record says the person's now
        moved = email and email != contact.email and not record.converted_to
        new_email = email if moved and self._theirs(contact, record, "email") else None
        if new_email is not None:
            self._email_change(record, contact, new_email, changes)
        elif changes:
            self.updating.append((record, contact, changes))
            self.updating_ids.add(contact.pk)
        else:
            self.outcome.unchanged += 1
            self._applied(record, contact)

    def _email_change(
        self, record: RemoteContact, contact: Contact, email: str, changes: dict[str, Any]
    ) -> None:
        """The contact's new address, through `contact_update` alone (rare: one record at a
        time, the contacts waiting written first). The address may be another contact's,
        which refuses the record: `contact_update` writes in its own savepoint, so a refusal
        leaves nothing of the record behind."""
        self._flush()
        try:
            updated = contact_update(contact=contact, email=email, fields=changes)
        except ValidationError as error:
            self._skip(_("refused: %s") % _reasons(error))
            return
        if self.by_email.get(contact.email) is contact:
            del self.by_email[contact.email]
        self._remember(updated)
        self.outcome.updated += 1
        self._applied(record, updated)

    def _flush(self) -> None:
        """Write the contacts waiting: the new ones, then the changed ones, each set at once."""
        creating, self.creating, self.creating_keys = self.creating, [], set()
        if creating:
            written = contacts_create_many(people=[(e, f) for _r, e, f in creating])
            for index, (record, _email, _fields) in enumerate(creating):
                if self._written(record, written, index):
                    created = index in written.created
                    self.outcome.created += int(created)
                    self.outcome.unchanged += int(not created)
        updating, self.updating, self.updating_ids = self.updating, [], set()
        if updating:
            written = contacts_update_many(changes=[(c, f) for _r, c, f in updating])
            for index, (record, _contact, _fields) in enumerate(updating):
                if self._written(record, written, index):
                    self.outcome.updated += 1

    def _written(self, record: RemoteContact, written: ContactsWritten, index: int) -> bool:
        """Take in a record's contact as a batched write left it; False when it was refused."""
        if index in written.refused:
            self._skip(_("refused: %s") % _reasons(written.refused[index]))
            return False
        contact = written.contacts[index]
        self._remember(contact)
        self._applied(record, contact)
        return True

    def _applied(self, record: RemoteContact, contact: Contact) -> None:
        """The record is ours: its link, its owner and its consent changes for the page."""
        remote_id = record.converted_to or record.remote_id
        self.linked[remote_id] = contact.pk
        self.links[contact.public_id] = remote_id
        self.pks[contact.public_id] = contact.pk
        if record.owner_id is not None:
            self.owners[contact.pk] = (record.owner_id, record.owner_email)
        for consent in record.consents:
            self._consent(contact, record, consent)

    def _known(self, record: RemoteContact, ids: list[str], email: str) -> Contact | None:
        """Ours by the CRM's id, then by our id the CRM holds, then by email; a merged
        contact stands for the one it was merged into."""
        contact_id = next((self.linked[i] for i in ids if i in self.linked), None)
        if contact_id is None:
            stored = [self.stored_links[i] for i in ids if i in self.stored_links]
            contact_id = max(stored)[1] if stored else None
        contact = self.by_pk.get(contact_id) if contact_id else None
        public_id = _public_id(record)
        if contact is None and public_id is not None:
            contact = self.by_public_id.get(public_id)
        if contact is None and email:
            contact = self.by_email.get(email)
        if contact is not None and contact.merged_into_id is not None:
            contact = self.by_pk.get(contact.merged_into_id) or contact
        return contact

    def _new_fields(self, record: RemoteContact) -> dict[str, Any]:
        return self._valid(
            record,
            {name: value for name, value in record.fields.items() if value not in (None, "")},
        )

    def _valid(self, record: RemoteContact, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields our rules accept, each checked alone: a bad value from the CRM (a
        country not in ISO 3166, say) is left out and named, the rest applied."""
        valid = {}
        for name, value in fields.items():
            try:
                cleaned = contact_fields_clean(fields={name: value})
            except ValidationError as error:
                self._skip(
                    _("a field refused (%(id)s): %(reason)s")
                    % {"id": record.remote_id, "reason": _reasons(error)}
                )
                continue
            if name in cleaned:  # a choice emptied in the CRM: ours keeps its value
                valid[name] = cleaned[name]
        return valid

    def _theirs(self, contact: Contact, record: RemoteContact, name: str) -> bool:
        """Whether the CRM's value of the field wins over ours, by its mapping's rule."""
        rule = self.rules.get(name, ConflictRule.LATEST)
        if rule == ConflictRule.THEIRS:
            return True
        if rule == ConflictRule.OURS:
            return not getattr(contact, name, "")  # ours wins, but an empty one is filled
        return contact.updated_at is None or record.modified_at > contact.updated_at

    def _changes(self, contact: Contact, record: RemoteContact) -> dict[str, Any]:
        wanted = {
            name: value
            for name, value in record.fields.items()
            if self._theirs(contact, record, name)
        }
        cleaned = self._valid(record, wanted)
        return {
            name: value for name, value in cleaned.items() if getattr(contact, name, None) != value
        }

    # -- consents ------------------------------------------------------------------------------
    def _consent(self, contact: Contact, record: RemoteContact, consent: RemoteConsent) -> None:
        """Keep the page's newest change per (contact, purpose, channel), grant or withdrawal."""
        key = (contact.pk, consent.purpose, consent.channel)
        known = self.consents.get(key)
        if known is None or consent.at > known[1].at:
            self.consents[key] = (contact, consent, record.converted_to or record.remote_id)

    def _write_consents(self) -> None:
        """The page's consent changes through the one write path, in one call; each change
        our state already holds, or that is older than ours, left out (a re-run adds nothing)."""
        if not self.consents:
            return
        states = {
            (state.contact_id, state.purpose.slug, state.channel): state
            for state in ConsentState.objects.filter(
                contact_id__in={key[0] for key in self.consents},
                purpose__slug__in={key[1] for key in self.consents},
            ).select_related("purpose", "record")
        }
        echoes = self._echoes()
        writes = []
        for key, (contact, consent, remote_id) in self.consents.items():
            reason = self._left_out(contact, consent, states.get(key))
            if reason is None and echoes.get(key) == consent.granted:
                reason = _("what we sent the CRM, with a change of ours on its way: ours stands")
            if reason:
                self._skip(reason)
            elif reason is None:
                writes.append(self._consent_write(contact, consent, remote_id))
        while writes:
            try:
                consents_record_many(writes=writes)
            except ConsentWriteErrors as error:
                for index in sorted(error.errors, reverse=True):
                    self._skip(_("consent refused: %s") % _reasons(error.errors[index]))
                    del writes[index]
                continue
            self.outcome.consents += len(writes)
            return

    def _echoes(self) -> dict[tuple[int, str, str], bool]:
        """(contact, purpose, channel) -> the status (live or not) this connection last
        received from us, for the page's consents with a change of ours it has not received
        yet (after its push cursor, or not numbered): one query.

        A CRM dates a status our push set when it arrives there, so what we sent comes back
        looking newer than the change of ours still on its way. The CRM showing what we last
        sent it tells nothing new (its echo): that change is left out, and ours, on its way,
        stands. A CRM showing anything else changed it itself: the times decide."""
        contacts = {contact.public_id: contact.pk for contact, _c, _r in self.consents.values()}
        cursor = (
            ConnectionState.objects.filter(pk=self.connection.pk)
            .values_list("push_cursor", flat=True)
            .first()
        ) or 0
        sent: dict[tuple[int, str, str], bool] = {}
        waiting: set[tuple[int, str, str]] = set()
        for public_id, payload, sequence in (
            OutboxEvent.objects.filter(
                topic=OutboxTopic.CONSENT_RECORDED, contact_public_id__in=list(contacts)
            )
            .order_by("sequence")
            .values_list("contact_public_id", "payload", "sequence")
        ):
            if payload.get(ORIGIN_KEY) == self.connection.pk:
                continue  # the CRM's own, pulled: never sent back to it
            key = (contacts[public_id], payload.get("purpose", ""), payload.get("channel", ""))
            if sequence is None or sequence > cursor:
                waiting.add(key)
            elif payload.get("status") != ConsentStatus.PENDING:
                sent[key] = payload.get("status") == ConsentStatus.GRANTED
        return {key: sent[key] for key in waiting if key in sent}

    def _left_out(
        self, contact: Contact, consent: RemoteConsent, state: ConsentState | None
    ) -> str | None:
        """Why a change is not written, "" when our state holds it already, None to write it.

        A grant from a CRM never lifts a suppression (SPEC §3: only the person's own new
        explicit consent does): it is left out here, as the write path would refuse it."""
        if self.purposes.get(consent.purpose) is None:
            return _("a purpose no longer known here")
        live = state is not None and state.status in LIVE
        if consent.granted == live:
            return ""  # granted (or pending) already, or nothing to withdraw
        if consent.granted and suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email):
            return _("a grant from the CRM for a suppressed person: not recorded")
        if state is not None and min(consent.at, timezone.now()) < effective_time(state.record):
            # the write path would keep it as superseded; left out, a re-run adds nothing
            return _("a consent change older than ours: ours stands")
        return None

    def _consent_write(
        self, contact: Contact, consent: RemoteConsent, remote_id: str
    ) -> ConsentWrite:
        """A change as the CRM relays it: second hand, at the CRM's time; a grant carries what
        the CRM says of it in place of the wording, which no CRM relays (GDPR Art. 7(1): such a
        grant proves little, and re-permission counts it as undocumented)."""
        reference = f"{self.connection.name}:{remote_id}"
        statement = ""
        if consent.granted:
            statement = _(
                "Relayed by the CRM connection %(connection)s (record %(id)s), which does not "
                "relay the wording the person saw. %(statement)s"
            ) % {
                "connection": self.connection.name,
                "id": remote_id,
                "statement": consent.statement
                or _("The CRM holds the consent as given on %s.") % consent.at.isoformat(),
            }
        return ConsentWrite(
            contact=contact,
            purpose=self.purposes[consent.purpose],
            channel=consent.channel,
            action=ConsentAction.GRANT if consent.granted else ConsentAction.WITHDRAW,
            source_kind=SourceKind.CRM,
            source_reference=reference,
            evidence=Evidence(wording=statement, collection_reference=reference, second_hand=True),
            given_at=min(consent.at, timezone.now()),
        )


def link_owners_store(
    *, connection_id: int, owners: dict[int, tuple[str, str]], now: datetime
) -> int:
    """Store on the contacts' links to the connection who owns each record in the CRM
    (contact id -> owner id, owner email; "" for none), in one UPDATE for the page: the
    sales alerts send to them. Only the links whose owner changed are written, and their
    `updated_at` moves: of a person's CRMs, the one that last assigned them names the owner.
    Answers how many links changed."""
    if not owners:
        return 0
    by_owner: dict[tuple[str, str], list[int]] = {}
    for contact_id, (remote_owner, email) in owners.items():
        owner = (remote_owner[:OWNER_ID_LENGTH], email if _is_email(email) else "")
        by_owner.setdefault(owner, []).append(contact_id)
    # a When per distinct owner, not per contact: a sales team is small, a page is not
    owner_id = Case(
        *[When(contact_id__in=ids, then=Value(owner[0])) for owner, ids in by_owner.items()],
        default=F("owner_id"),
        output_field=CharField(),
    )
    owner_email = Case(
        *[When(contact_id__in=ids, then=Value(owner[1])) for owner, ids in by_owner.items()],
        default=F("owner_email"),
        output_field=CharField(),
    )
    return (
        ContactLink.objects.filter(connection_id=connection_id, contact_id__in=list(owners))
        .exclude(owner_id=owner_id, owner_email=owner_email)
        .update(owner_id=owner_id, owner_email=owner_email, updated_at=now)
    )


def _is_email(value: str) -> bool:
    """Whether the CRM's owner address is one an alert can go to (else none is kept)."""
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _email(record: RemoteContact) -> str:
    """The record's address normalised ("" when it has none or a malformed one)."""
    try:
        return normalize_email(record.email) if record.email else ""
    except ValidationError:
        return ""


def _public_id(record: RemoteContact) -> uuid.UUID | None:
    """Our id the CRM holds for the record (None when it holds none, or a malformed one)."""
    try:
        return uuid.UUID(record.our_id) if record.our_id else None
    except ValueError:
        return None


def _reasons(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}"
            for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)

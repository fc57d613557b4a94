"""Salesforce: contacts by sObject Collections upsert on an external id holding our contact's
public id, consents as `HasOptedOutOfEmail` and, when enabled, `ContactPointTypeConsent`.

`HasOptedOutOfEmail` is one flag for every purpose, so it is set from the contact's current
state, not from the batch (a change carries one consent record): when the batch changes an
email consent of the contact, the flag is true unless one of the purposes the connection maps
(every purpose, when it maps none) is granted by email now, read in `prepare`. Withdrawing
one purpose while another stays granted thus leaves the contact opted in, and a pull does
not read back an opt-out that would withdraw the other. An unsubscribe from all, the batch's
last email change of the contact, opts out whatever the state says.

With `options["consent_objects"]`, each consent of a purpose mapped to a data-use purpose
(`purpose_map`: our slug -> the DataUsePurpose id) is upserted as a `ContactPointTypeConsent`
of the contact's `Individual` (both keyed by the same external id field), which the Contact
points to.
"""

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import requests
from django.utils.translation import gettext as _
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from consent.models import Channel, ConsentState, ConsentStatus
from crmsync.adapters.base import (
    Change,
    ConnectionConfig,
    ErasureTarget,
    PullPage,
    PushResult,
    RemoteConsent,
    RemoteContact,
    TransientError,
)
from crmsync.adapters.batching import (
    NOT_FOUND,
    ContactState,
    Outcome,
    Refused,
    contact_states,
    send_isolating,
)
from crmsync.adapters.pulling import (
    Position,
    milliseconds,
    parsed_time,
    positions_read,
    positions_text,
    pulled_mappings,
)
from crmsync.models import OutboxTopic

BATCH_LIMIT = 200
API_VERSION = "59.0"
EXTERNAL_ID_FIELD = "ConsentDesk_Id__c"
DEFAULT_FIELD_MAPPINGS = (
    ("email", "Email"),
    ("first_name", "FirstName"),
    ("last_name", "LastName"),
    ("phone", "Phone"),
    ("job_title", "Title"),
    ("country", "MailingCountry"),
)
# Salesforce requires a last name; Web-to-Lead's own placeholder when a person gave none
NO_LAST_NAME = "[not provided]"
# the last name an anonymised Contact keeps (Salesforce requires one)
ERASED_NAME = "[erased]"
LIVE_STATUSES = (ConsentStatus.GRANTED,)
ENDED_STATUSES = (ConsentStatus.WITHDRAWN, ConsentStatus.EXPIRED)
CONTACT_POINT_TYPES: dict[str, str] = {
    Channel.EMAIL: "Email",
    Channel.SMS: "Phone",
    Channel.PHONE: "Phone",
    Channel.POSTAL: "MailingAddress",
}
# a Contact's fields as a Lead names them (the others a pull reads from Leads keep their name)
LEAD_FIELDS = {"MailingCountry": "Country"}
LEAD_STANDARD_FIELDS = {"FirstName", "LastName", "Company", "Email", "Phone", "Title", "Country"}
# what a ContactPointTypeConsent's contact point is in our channels (Phone is SMS or a call:
# not told apart, so not pulled)
# records of the cursor's second already applied, read again with a page (SOQL has no finer time)
STALE_ROOM = 200
PULLED_CHANNELS = {"Email": Channel.EMAIL, "MailingAddress": Channel.POSTAL}
# the field history rows that date an email opt-out (when the org tracks the field), by type
HISTORY_OBJECTS = {"Contact": ("ContactHistory", "ContactId"), "Lead": ("LeadHistory", "LeadId")}
OPT_OUT_FIELD = "HasOptedOutOfEmail"
# ids in one history query's IN list (SOQL statements are limited in length)
HISTORY_IDS = 200
# a record id (15 or 18 letters and digits), the only text of the CRM put into a SOQL query
SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
# the API limits (403 REQUEST_LIMIT_EXCEEDED) and the server too busy for now (429, 503)
LIMIT_CODES = ("REQUEST_LIMIT_EXCEEDED",)
CALL_ERRORS = ("NOT_FOUND", "INVALID_FIELD", "INVALID_TYPE")
# the key prefix of a Contact's id (a Lead's is 00Q): a contact linked to one is updated by it
CONTACT_ID_PREFIX = "003"
# what Salesforce answers an update of a record it no longer holds (deleted, merged away)
GONE_CODES = ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
# an update by Id refused because another record already holds our external id (a unique
# field): that record is the one to update, by our id, like a record gone
HELD_ELSEWHERE_CODES = ("DUPLICATE_VALUE",)

Result = TypeVar("Result")


@dataclass
class _Contact:
    """What one contact's record in Salesforce receives from the batch."""

    contact: uuid.UUID
    data: dict[str, Any]
    changed: set[str] = field(default_factory=set)
    opted_out: bool | None = None  # HasOptedOutOfEmail, when the batch decides it
    changes: list[uuid.UUID] = field(default_factory=list)  # contact changes
    consents: list[uuid.UUID] = field(default_factory=list)  # consent changes
    remote_id: str = ""  # the Salesforce id a push or a pull linked the contact to


@dataclass(frozen=True)
class _ConsentObject:
    """A ContactPointTypeConsent: one contact, one data-use purpose, one channel."""

    change: uuid.UUID
    contact: uuid.UUID
    purpose: str
    data_use_purpose: str
    channel: str
    opt_in: bool
    given_at: str
    source: str  # where it was captured: the ledger record, or the unsubscribe event


class SalesforceAdapter:
    """Pushes our changes to a Salesforce org through simple-salesforce."""

    batch_size = BATCH_LIMIT

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.external_id = str(config.options.get("external_id_field") or EXTERNAL_ID_FIELD)
        self.consent_objects = bool(config.options.get("consent_objects"))
        self.session = session or requests.Session()
        # simple-salesforce's errors keep the body, not the headers: Retry-After is read here
        self.retry_after: float | None = None
        self.session.hooks["response"].append(self._remember_retry_after)
        self.client = Salesforce(
            instance_url=config.base_url.rstrip("/"),
            session_id=config.credentials.get("session_id") or config.credentials.get("token", ""),
            version=str(config.options.get("api_version") or API_VERSION),
            session=self.session,
        )
        mappings = [
            (mapping["field"], mapping["remote"])
            for mapping in config.field_mappings
            if mapping.get("direction") in ("push", "both")
        ]
        self.mappings = mappings or list(DEFAULT_FIELD_MAPPINGS)
        # `prepare`'s reading for one batch (its change ids): the contacts of the batch with
        # an email consent granted now, of a purpose mapped here
        self._prepared: tuple[tuple[uuid.UUID, ...], set[uuid.UUID]] | None = None

    def prepare(self, changes: Sequence[Change]) -> None:
        """Read which contacts of the batch that change an email consent hold one granted now
        (one query; none when the batch changes no email consent): `push` runs where it may
        not use the database, and the opt-out flag follows the whole state."""
        contacts = {
            change.contact
            for change in changes
            if change.contact_data and self._email_consent(change) is not None
        }
        live: set[uuid.UUID] = set()
        if contacts:
            states = ConsentState.objects.filter(
                contact__public_id__in=contacts,
                channel=Channel.EMAIL,
                status__in=LIVE_STATUSES,
            )
            if self.config.purpose_map:
                states = states.filter(purpose__slug__in=list(self.config.purpose_map))
            live = set(states.values_list("contact__public_id", flat=True).distinct())
        self._prepared = (_batch_key(changes), live)

    def _email_live(self, changes: Sequence[Change]) -> set[uuid.UUID]:
        """The contacts of the batch with a mapped email consent granted now (`prepare`)."""
        if self._prepared is None or self._prepared[0] != _batch_key(changes):
            self.prepare(changes)  # called alone, as the dead letters' replay and the tests do
        return self._prepared[1] if self._prepared else set()

    def push(self, changes: Sequence[Change]) -> PushResult:
        """Upsert the contacts changed (with their email opt-out), then their consent objects.

        `contact.erased` changes nothing here: erasure reaches Salesforce through its own
        propagation (delete or anonymise, acknowledged on the privacy request)."""
        result = PushResult()
        contacts = self._contacts(changes)
        refused: set[uuid.UUID] = set()
        if self.consent_objects and contacts:
            refused |= self._upsert_records("Individual", contacts, self._individual, result)
        live = [c for c in contacts if c.contact not in refused]
        refused |= self._upsert_records("Contact", live, self._contact_record, result)
        objects = [o for o in self._consent_objects(changes) if o.contact not in refused]
        if objects:
            self._upsert_consent_objects(objects, result)
        return result

    # -- what the batch asks -------------------------------------------------------------------
    def _contacts(self, changes: Sequence[Change]) -> list[_Contact]:
        """One record per contact: its last state in the batch and its email opt-out."""
        states: dict[uuid.UUID, ContactState] = contact_states(changes)
        contacts: dict[uuid.UUID, _Contact] = {}
        for contact, state in states.items():
            contacts[contact] = _Contact(
                contact, state.data, state.changed, changes=state.changes, remote_id=state.remote_id
            )
        # contact -> whether its last email consent change in the batch unsubscribes from all
        unsubscribed: dict[uuid.UUID, bool] = {}
        for change in sorted(changes, key=lambda change: change.sequence):
            live = self._email_consent(change)
            # a consent object needs its Individual, which comes with the contact's record
            asks_object = self.consent_objects and bool(self._asked(change))
            if (live is None and not asks_object) or not change.contact_data:
                continue  # erased since, or nothing Salesforce keeps
            entry = contacts.setdefault(
                change.contact,
                _Contact(change.contact, change.contact_data, remote_id=change.remote_id),
            )
            entry.consents.append(change.id)
            if live is not None:
                unsubscribed[change.contact] = change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED
        granted_now = self._email_live(changes) if unsubscribed else set()
        for contact, ended_all in unsubscribed.items():
            contacts[contact].opted_out = ended_all or contact not in granted_now
        return list(contacts.values())

    @staticmethod
    def _email_consent(change: Change) -> bool | None:
        """Whether the change leaves an email consent live (True) or ended (False); None
        when it is not about email consent."""
        if change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED:
            return False
        status = change.data.get("status")
        if (
            change.topic != OutboxTopic.CONSENT_RECORDED
            or change.data.get("channel") != Channel.EMAIL
        ):
            return None
        if status not in (*LIVE_STATUSES, *ENDED_STATUSES):
            return None  # pending a double opt-in: not a consent yet
        return status in LIVE_STATUSES

    def _consent_objects(self, changes: Sequence[Change]) -> list[_ConsentObject]:
        """The ContactPointTypeConsent of each mapped purpose and channel: the last asked."""
        if not self.consent_objects:
            return []
        wanted: dict[tuple[uuid.UUID, str, str], _ConsentObject] = {}
        for change in sorted(changes, key=lambda change: change.sequence):
            if not change.contact_data:
                continue
            for purpose, channel, opt_in in self._asked(change):
                wanted[(change.contact, purpose, channel)] = _ConsentObject(
                    change=change.id,
                    contact=change.contact,
                    purpose=purpose,
                    data_use_purpose=self.config.purpose_map[purpose],
                    channel=channel,
                    opt_in=opt_in,
                    given_at=_salesforce_time(change.data.get("given_at"), change.occurred_at),
                    source=_capture_source(change),
                )
        return list(wanted.values())

    def _asked(self, change: Change) -> list[tuple[str, str, bool]]:
        if change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED:
            # every consent withdrawn: the email ones are those Salesforce's opt-out is about
            return [(purpose, Channel.EMAIL, False) for purpose in self.config.purpose_map]
        purpose, channel = change.data.get("purpose", ""), change.data.get("channel", "")
        status = change.data.get("status")
        if (
            change.topic != OutboxTopic.CONSENT_RECORDED
            or purpose not in self.config.purpose_map
            or channel not in CONTACT_POINT_TYPES
            or status not in (*LIVE_STATUSES, *ENDED_STATUSES)
        ):
            return []  # unmapped, a channel Salesforce has no contact point for, or pending
        return [(purpose, channel, status in LIVE_STATUSES)]

    # -- records -------------------------------------------------------------------------------
    def _contact_record(self, contact: _Contact) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for ours, theirs in self.mappings:
            value = contact.data.get(ours)
            if value in (None, "") and ours not in contact.changed:
                continue  # an empty value of ours never blanks what sales typed there
            record[theirs] = None if value == "" else value
        if contact.opted_out is not None:
            record["HasOptedOutOfEmail"] = contact.opted_out
        if self.consent_objects:
            record["Individual"] = {self.external_id: str(contact.contact)}
        return record

    def _individual(self, contact: _Contact) -> dict[str, Any]:
        names = {
            "FirstName": contact.data.get("first_name"),
            "LastName": contact.data.get("last_name"),
        }
        return {name: value for name, value in names.items() if value}

    def _upsert_records(
        self,
        sobject: str,
        contacts: list[_Contact],
        fields: Callable[[_Contact], dict[str, Any]],
        result: PushResult,
    ) -> set[uuid.UUID]:
        """Upsert one record per contact; the contacts Salesforce refused.

        A contact linked to a Salesforce Contact (one a pull found, which a Salesforce user
        made without our external id) is updated by that Id, our id written on it: an upsert
        by our id alone would make a second Contact of the same person. One gone from
        Salesforce since, or refused because another Contact holds our id already (our id is
        unique there), is upserted by our id: that other Contact is updated."""
        refused: set[uuid.UUID] = set()
        linked = (
            [c for c in contacts if c.remote_id.startswith(CONTACT_ID_PREFIX)]
            if sobject == "Contact"
            else []
        )
        by_id = {c.contact for c in linked}
        rest = [c for c in contacts if c.contact not in by_id]
        rest += self._upsert_chunks(sobject, "Id", linked, fields, result, refused)
        self._upsert_chunks(sobject, self.external_id, rest, fields, result, refused)
        return refused

    def _upsert_chunks(
        self,
        sobject: str,
        key: str,
        contacts: list[_Contact],
        fields: Callable[[_Contact], dict[str, Any]],
        result: PushResult,
        refused: set[uuid.UUID],
    ) -> list[_Contact]:
        """Upsert the contacts keyed by `key`, noting the refused; those updated by an Id
        Salesforce no longer holds, or whose id another record holds, left for an upsert by
        our id."""
        gone = []
        for chunk in _chunks(contacts):
            records = [
                {
                    "attributes": {"type": sobject},
                    **({"Id": c.remote_id} if key == "Id" else {}),
                    self.external_id: str(c.contact),
                    **fields(c),
                }
                for c in chunk
            ]
            outcome = send_isolating(records, partial(self._collection, sobject, key=key))
            if key != "Id":
                self._create_without_last_name(sobject, records, outcome)
            for index, remote_id in outcome.accepted.items():
                if sobject == "Contact":
                    result.remote_ids[chunk[index].contact] = remote_id
            for index, message in outcome.refused.items():
                if key == "Id" and any(
                    code in message for code in (*GONE_CODES, *HELD_ELSEWHERE_CODES)
                ):
                    gone.append(chunk[index])
                    continue
                refused.add(chunk[index].contact)
                for change in (*chunk[index].changes, *chunk[index].consents):
                    result.rejected[change] = message
        return gone

    def _create_without_last_name(
        self, sobject: str, records: list[dict[str, Any]], outcome: Outcome[Any]
    ) -> None:
        """Create again, with a placeholder last name, the records refused for want of one.

        Salesforce requires a last name to create a Contact or an Individual, and some of our
        contacts have none; sending the placeholder only when creating keeps a name sales
        typed into an existing record."""
        missing = [
            index
            for index, message in outcome.refused.items()
            if "REQUIRED_FIELD_MISSING" in message and "LastName" in message
        ]
        if not missing:
            return
        named = [{**records[index], "LastName": NO_LAST_NAME} for index in missing]
        again = send_isolating(named, partial(self._collection, sobject))
        for position, index in enumerate(missing):
            if position in again.accepted:
                del outcome.refused[index]
                outcome.accepted[index] = again.accepted[position]
            else:
                outcome.refused[index] = again.refused.get(position, outcome.refused[index])

    def _upsert_consent_objects(self, objects: list[_ConsentObject], result: PushResult) -> None:
        for chunk in _chunks(objects):
            records = [self._consent_object(o) for o in chunk]
            outcome = send_isolating(records, partial(self._collection, "ContactPointTypeConsent"))
            for index, message in outcome.refused.items():
                result.rejected[chunk[index].change] = message

    def _consent_object(self, consent: _ConsentObject) -> dict[str, Any]:
        return {
            "attributes": {"type": "ContactPointTypeConsent"},
            # one per contact, data-use purpose and channel: a replay finds it again
            self.external_id: f"{consent.contact}:{consent.data_use_purpose}:{consent.channel}",
            "Name": f"{consent.purpose} ({consent.channel})"[:80],
            "Party": {self.external_id: str(consent.contact)},
            "DataUsePurposeId": consent.data_use_purpose,
            "PrivacyConsentStatus": "OptIn" if consent.opt_in else "OptOut",
            "EffectiveFrom": consent.given_at,
            "CaptureDate": consent.given_at,
            "CaptureSource": consent.source,
            "CaptureContactPointType": CONTACT_POINT_TYPES[consent.channel],
            "ContactPointType": CONTACT_POINT_TYPES[consent.channel],
        }

    def _collection(
        self, sobject: str, records: Sequence[dict[str, Any]], *, key: str = ""
    ) -> Outcome[Any]:
        """One sObject Collections upsert by our external id or, `key` "Id", an sObject
        Collections update by the records' ids (an upsert goes by external ids only); each
        record's id or errors."""
        external_id = key or self.external_id
        path = (
            "composite/sobjects" if key == "Id" else f"composite/sobjects/{sobject}/{external_id}"
        )
        answer = self._call(
            lambda: self.client.restful(
                path,
                method="PATCH",
                json={"allOrNone": False, "records": list(records)},
                timeout=self.timeout,
            )
        )
        outcome: Outcome[Any] = Outcome()
        for index, item in enumerate(answer or []):
            if item.get("success"):
                outcome.accepted[index] = str(item.get("id"))
            else:
                outcome.refused[index] = _errors_text(item.get("errors") or [])
        return outcome

    # -- pull ----------------------------------------------------------------------------------
    def pull(self, cursor: str | None, limit: int) -> PullPage:
        """Leads, Contacts and (with `consent_objects`) ContactPointTypeConsents modified since
        the cursor, each type in `SystemModstamp` order, following `nextRecordsUrl`.

        Leads come first, so that a lead converted to a Contact hands its link (and so our
        contact, with its consents) to that Contact before the Contact's own record is read."""
        positions = positions_read(cursor)
        streams = ["Lead", "Contact"] + (
            ["ContactPointTypeConsent"] if self.consent_objects else []
        )
        contacts: list[RemoteContact] = []
        problems: list[str] = []
        done = True
        for sobject in streams:
            position = positions.get(sobject, Position())
            records, more = self._changed(sobject, position, max(1, limit))
            read, unreadable = self._read(sobject, records)
            contacts += read
            problems += unreadable
            positions[sobject] = position.advanced(
                (str(record["Id"]), stamp) for record, stamp in records
            )
            done = done and not more
        return PullPage(
            contacts=self._with_owner_emails(contacts),
            next_cursor=positions_text(positions),
            done=done,
            problems=problems,
        )

    def _fields(self, sobject: str) -> list[str]:
        mapped = [
            theirs
            for _ours, theirs in pulled_mappings(self.config.field_mappings, DEFAULT_FIELD_MAPPINGS)
        ]
        if sobject == "ContactPointTypeConsent":
            return [
                "Id",
                "SystemModstamp",
                "PartyId",
                "DataUsePurposeId",
                "PrivacyConsentStatus",
                "CaptureDate",
                "CaptureSource",
                "EffectiveFrom",
                "LastModifiedDate",
                "ContactPointType",
            ]
        if sobject == "Lead":
            leads = {LEAD_FIELDS.get(name, name) for name in mapped}
            names = {"IsConverted", "ConvertedContactId", *(leads & LEAD_STANDARD_FIELDS)}
        else:
            names = {self.external_id, "IndividualId", *mapped}
        return sorted({"Id", "Email", "SystemModstamp", "HasOptedOutOfEmail", "OwnerId", *names})

    def _changed(
        self, sobject: str, position: Position, limit: int
    ) -> tuple[list[tuple[dict[str, Any], int]], bool]:
        """Up to `limit` records of the type not applied yet, oldest first, with their stamp in
        milliseconds; and whether more wait. Read from the cursor's second (SOQL's datetime
        literals have none finer); those already applied are left out here."""
        since = datetime.fromtimestamp(position.since // 1000, tz=UTC)
        # those of the cursor's second applied already come back too: room for them
        ceiling = limit + len(position.seen) + STALE_ROOM
        # SOQL of our own field names and a formatted time: nothing the CRM or a user wrote
        soql = (
            f"SELECT {', '.join(self._fields(sobject))} FROM {sobject} "  # noqa: S608
            f"WHERE SystemModstamp >= {since.strftime('%Y-%m-%dT%H:%M:%SZ')} "
            f"ORDER BY SystemModstamp ASC LIMIT {ceiling}"
        )
        answer = self._call(lambda: self.client.query(soql))
        fresh: list[tuple[dict[str, Any], int]] = []
        returned = 0
        while True:
            returned += len(answer.get("records") or [])
            for record in answer.get("records") or []:
                moment = parsed_time(record.get("SystemModstamp"))
                stamp = milliseconds(moment) if moment else position.since
                if position.is_new(str(record.get("Id")), stamp):
                    fresh.append((record, stamp))
            if len(fresh) > limit or answer.get("done", True) or not answer.get("nextRecordsUrl"):
                break
            answer = self._call(partial(self._more, str(answer["nextRecordsUrl"])))
        more = len(fresh) > limit or not answer.get("done", True) or returned >= ceiling
        return fresh[:limit], more

    def _more(self, url: str) -> Any:
        return self.client.query_more(url, identifier_is_url=True)

    def _read(
        self, sobject: str, records: list[tuple[dict[str, Any], int]]
    ) -> tuple[list[RemoteContact], list[str]]:
        if sobject == "ContactPointTypeConsent":
            return self._consents_read(records)
        contacts, problems = self._records_read(sobject, records)
        return self._opt_outs_timed(sobject, contacts), problems

    def _records_read(
        self, sobject: str, records: list[tuple[dict[str, Any], int]]
    ) -> tuple[list[RemoteContact], list[str]]:
        mappings = pulled_mappings(self.config.field_mappings, DEFAULT_FIELD_MAPPINGS)
        contacts, problems = [], []
        for record, _stamp in records:
            modified = parsed_time(record.get("SystemModstamp"))
            if modified is None or not record.get("Id"):
                problems.append(
                    _("Salesforce %(type)s %(id)s: unreadable SystemModstamp %(value)r")
                    % {
                        "type": sobject,
                        "id": record.get("Id") or "?",
                        "value": record.get("SystemModstamp"),
                    }
                )
                continue
            fields: dict[str, Any] = {}
            for ours, theirs in mappings:
                name = LEAD_FIELDS.get(theirs, theirs) if sobject == "Lead" else theirs
                if ours != "email" and name in record:
                    value = record[name]
                    if value is not None and value != NO_LAST_NAME:
                        fields[ours] = value
            # an opt-out withdraws every mapped purpose by email; its absence proves no consent
            consents = tuple(
                RemoteConsent(purpose=purpose, granted=False, at=modified)
                for purpose in self.config.purpose_map
                if record.get("HasOptedOutOfEmail") is True
            )
            converted = (
                str(record.get("ConvertedContactId") or "") if record.get("IsConverted") else ""
            )
            contacts.append(
                RemoteContact(
                    remote_id=str(record["Id"]),
                    email=str(record.get("Email") or ""),
                    modified_at=modified,
                    # a converted lead is read-only: the Contact's record carries the fields
                    fields={} if converted else fields,
                    consents=consents,
                    our_id=str(record.get(self.external_id) or "") if sobject == "Contact" else "",
                    converted_to=converted,
                    # a converted lead's owner is the Contact's to say
                    owner_id=None if converted else str(record.get("OwnerId") or ""),
                )
            )
        return contacts, problems

    # -- owners --------------------------------------------------------------------------------
    _owner_emails: dict[str, str] | None = None

    def _with_owner_emails(self, contacts: list[RemoteContact]) -> list[RemoteContact]:
        """The records with their owner's address: one `User` query a page for the owners
        not met yet in this pull (the adapter lives as long as one pull). A lead owned by a
        queue has no User: no address, and the alerts go to their configured address."""
        if self._owner_emails is None:
            self._owner_emails = {}
        known = self._owner_emails
        wanted = sorted({c.owner_id for c in contacts if c.owner_id} - set(known))
        if wanted:
            known.update(dict.fromkeys(wanted, ""))
            known.update(self._user_emails([i for i in wanted if SALESFORCE_ID.match(i)]))
        return [
            replace(contact, owner_email=known[contact.owner_id]) if contact.owner_id else contact
            for contact in contacts
        ]

    def _user_emails(self, user_ids: list[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        # Salesforce ids, checked to be only letters and digits: nothing else reaches the SOQL
        quoted = ", ".join(f"'{user_id}'" for user_id in user_ids)
        soql = f"SELECT Id, Email FROM User WHERE Id IN ({quoted})"  # noqa: S608
        answer = self._call(lambda: self.client.query_all(soql))
        return {
            str(record["Id"]): str(record.get("Email") or "")
            for record in answer.get("records") or []
            if record.get("Id")
        }

    def _consents_read(
        self, records: list[tuple[dict[str, Any], int]]
    ) -> tuple[list[RemoteContact], list[str]]:
        """Each consent object as a status of its party's Contact (one query per party)."""
        purposes = {remote: ours for ours, remote in self.config.purpose_map.items()}
        parties: dict[str, dict[str, Any] | None] = {}
        contacts, problems = [], []
        for record, _stamp in records:
            purpose = purposes.get(str(record.get("DataUsePurposeId") or ""))
            channel = PULLED_CHANNELS.get(str(record.get("ContactPointType") or ""))
            status = record.get("PrivacyConsentStatus")
            if purpose is None or channel is None or status not in ("OptIn", "OptOut"):
                continue  # a purpose or channel not mapped here, or no consent (Seen, NotSeen)
            # the consent's own date, not the time any later edit of the object moved
            at = parsed_time(record.get("CaptureDate")) or parsed_time(record.get("EffectiveFrom"))
            at = at or parsed_time(record.get("LastModifiedDate"))
            at = at or parsed_time(record.get("SystemModstamp"))
            party = str(record.get("PartyId") or "")
            if party not in parties:
                parties[party] = self._party_contact(party) if party else None
            contact = parties[party]
            if contact is None or at is None:
                problems.append(
                    _("Salesforce consent %(id)s: no Contact for its party %(party)r, or no date")
                    % {"id": record.get("Id"), "party": party}
                )
                continue
            contacts.append(
                RemoteContact(
                    remote_id=str(contact["Id"]),
                    email=str(contact.get("Email") or ""),
                    modified_at=at,
                    consents=(
                        RemoteConsent(
                            purpose=purpose,
                            granted=status == "OptIn",
                            at=at,
                            channel=channel,
                            statement=_consent_statement(record, at),
                        ),
                    ),
                    our_id=str(contact.get(self.external_id) or ""),
                )
            )
        return contacts, problems

    def _opt_outs_timed(self, sobject: str, contacts: list[RemoteContact]) -> list[RemoteContact]:
        """Each email opt-out at the time of the field's own change: the newest history row of
        `HasOptedOutOfEmail` (ContactHistory, LeadHistory) when it says true; else, when the
        org does not track the field (or its history has a gap), the record's SystemModstamp,
        which any later edit of the record moves."""
        opted_out = [contact.remote_id for contact in contacts if contact.consents]
        if not opted_out or sobject not in HISTORY_OBJECTS:
            return contacts
        changed = self._opt_out_changes(sobject, opted_out)
        timed = []
        for contact in contacts:
            at = changed.get(contact.remote_id)
            if at is not None:
                consents = tuple(replace(consent, at=at) for consent in contact.consents)
                contact = replace(contact, consents=consents)
            timed.append(contact)
        return timed

    def _opt_out_changes(self, sobject: str, ids: list[str]) -> dict[str, datetime]:
        """Record id -> when HasOptedOutOfEmail last turned true, from the field history."""
        history, id_field = HISTORY_OBJECTS[sobject]
        newest: dict[str, tuple[datetime, Any]] = {}
        for start in range(0, len(ids), HISTORY_IDS):
            # ids are Salesforce's own (letters and digits); anything else is left out
            quoted = ", ".join(f"'{i}'" for i in ids[start : start + HISTORY_IDS] if i.isalnum())
            if not quoted:
                continue
            soql = (
                f"SELECT {id_field}, CreatedDate, NewValue FROM {history} "  # noqa: S608
                f"WHERE Field = '{OPT_OUT_FIELD}' AND {id_field} IN ({quoted})"
            )
            try:
                answer = self._call(partial(self.client.query_all, soql))
            except Refused as refusal:
                if not refusal.about_the_call:
                    raise
                return {}  # no field history readable in this org: the fallback
            for row in answer.get("records") or []:
                moment = parsed_time(row.get("CreatedDate"))
                record_id = str(row.get(id_field) or "")
                if moment and (record_id not in newest or moment > newest[record_id][0]):
                    newest[record_id] = (moment, row.get("NewValue"))
        return {
            record_id: moment
            for record_id, (moment, value) in newest.items()
            if value is True or str(value).lower() == "true"
        }

    def _party_contact(self, individual_id: str) -> dict[str, Any] | None:
        safe = individual_id.replace("\\", "").replace("'", "")
        soql = f"SELECT Id, Email, {self.external_id} FROM Contact WHERE IndividualId = '{safe}'"  # noqa: S608 - quotes taken out
        records = self._call(lambda: self.client.query(soql)).get("records") or []
        return dict(records[0]) if records else None

    # -- erasure -------------------------------------------------------------------------------
    def erase(self, target: ErasureTarget) -> None:
        """Delete the person's Contact (`options["erasure"]`: "delete", the default) or blank
        its personal fields ("anonymise", for orgs that must keep the record of a deal), and
        likewise its Individual when consent objects are on (it holds the name too); a record
        Salesforce does not hold (404: deleted already) counts as erased, so a retry after a
        partial erasure goes on where it stopped."""
        anonymise = self.config.options.get("erasure", "delete") == "anonymise"
        blanked: dict[str, Any] = {theirs: None for _ours, theirs in self.mappings}
        blanked |= {"LastName": ERASED_NAME, "HasOptedOutOfEmail": True}
        self._erase_record("Contact", target.remote_id, target, blanked if anonymise else None)
        if self.consent_objects:
            individual = {"FirstName": None, "LastName": ERASED_NAME}
            self._erase_record("Individual", "", target, individual if anonymise else None)

    def _erase_record(
        self,
        sobject: str,
        record_id: str,
        target: ErasureTarget,
        blanked: dict[str, Any] | None,
    ) -> None:
        """Delete the record (found by its id, else by our external id), or update it with
        `blanked` when given."""
        records: Any = getattr(self.client, sobject)  # an SFType (typed as a union)
        try:
            record_id = record_id or str(
                self._call(lambda: records.get_by_custom_id(self.external_id, str(target.contact)))[
                    "Id"
                ]
            )
            if blanked is None:
                self._call(lambda: records.delete(record_id))
            else:
                self._call(lambda: records.update(record_id, blanked))
        except Refused as refusal:
            if refusal.status != NOT_FOUND:
                raise

    # -- errors --------------------------------------------------------------------------------
    def _remember_retry_after(self, response: requests.Response, **kwargs: Any) -> None:
        self.retry_after = _seconds(response.headers.get("Retry-After"))

    def _call(self, call: Callable[[], Result]) -> Result:
        """Make one call to Salesforce, its failures told apart: for now (TransientError) or
        for good (Refused)."""
        self.retry_after = None
        try:
            return call()
        except requests.exceptions.SSLError as problem:
            raise TransientError(
                _("Salesforce's TLS certificate could not be verified: %s") % problem
            ) from problem
        except requests.exceptions.RequestException as problem:  # refused, reset, timed out
            raise TransientError(_("Salesforce could not be reached: %s") % problem) from problem
        except SalesforceError as problem:
            raise self._classified(problem) from problem

    def _classified(self, problem: SalesforceError) -> Exception:
        status, message, codes = (
            problem.status,
            _content_text(problem.content),
            _codes(problem.content),
        )
        if any(code in LIMIT_CODES for code in codes) or status in (429, 503):
            return TransientError(
                _("Salesforce limit reached (%(status)s): %(message)s")
                % {"status": status, "message": message},
                retry_after=self.retry_after,
            )
        if status in (401, 403):
            # a configuration problem: retried, then parked, until staff fix the session
            return TransientError(
                _("Salesforce refused the session (%(status)s): %(message)s")
                % {"status": status, "message": message}
            )
        if status >= 500:
            return TransientError(
                _("Salesforce failed (%(status)s): %(message)s")
                % {"status": status, "message": message}
            )
        # the object, the external id field or a mapped field does not exist in this org
        about_the_call = status == 404 or any(code in CALL_ERRORS for code in codes)
        return Refused(message, status=status, about_the_call=about_the_call)


def _consent_statement(record: dict[str, Any], at: datetime) -> str:
    """What a ContactPointTypeConsent says of a consent, for the ledger's evidence."""
    return _(
        "Salesforce ContactPointTypeConsent %(id)s: %(status)s captured on %(at)s "
        "(capture source: %(source)s)"
    ) % {
        "id": record.get("Id"),
        "status": record.get("PrivacyConsentStatus"),
        "at": at.isoformat(),
        "source": record.get("CaptureSource") or _("none given"),
    }


def _capture_source(change: Change) -> str:
    if change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED:
        return _("Consent Desk: unsubscribed from all marketing (event %s)") % change.id
    return _("Consent Desk ledger record %s") % change.data.get("record")


def _salesforce_time(value: str | None, default: datetime) -> str:
    """A time as Salesforce writes it (2026-11-20T09:30:00.000+0000, in UTC)."""
    moment = datetime.fromisoformat(value) if value else default
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _codes(content: Any) -> list[str]:
    if isinstance(content, list):
        return [str(item.get("errorCode", "")) for item in content if isinstance(item, dict)]
    return []


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "; ".join(
            f"{item.get('errorCode', '')}: {item.get('message', '')}"
            for item in content
            if isinstance(item, dict)
        )
    return str(content)


def _errors_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{error.get('statusCode', '')}: {error.get('message', '')}" for error in errors
    ) or _("Salesforce refused the record without saying why")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the machinery's backoff decides


def _batch_key(changes: Sequence[Change]) -> tuple[uuid.UUID, ...]:
    return tuple(change.id for change in changes)


Item = TypeVar("Item")


def _chunks(items: list[Item]) -> list[list[Item]]:
    return [items[start : start + BATCH_LIMIT] for start in range(0, len(items), BATCH_LIMIT)]

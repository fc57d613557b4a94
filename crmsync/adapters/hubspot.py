"""HubSpot: contacts by batch upsert on their email, consents as communication preferences.

Communication preferences go through the v3 status API, the one hubspot-api-client 12
offers: one call per (address, subscription type), with the legal basis and its
explanation. v3 never subscribes again an address that opted out of a subscription type;
HubSpot's refusal is then a rejected change (a dead letter) with HubSpot's message.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import urllib3
from django.utils.translation import gettext as _
from hubspot import HubSpot  # type: ignore[import-untyped] # the client ships no type hints
from hubspot.communication_preferences import (  # type: ignore[import-untyped]
    PublicUpdateSubscriptionStatusRequest,
)
from hubspot.communication_preferences.exceptions import (  # type: ignore[import-untyped]
    ApiException as PreferencesApiException,
)
from hubspot.crm.contacts import PublicGdprDeleteInput  # type: ignore[import-untyped]
from hubspot.crm.contacts.exceptions import (  # type: ignore[import-untyped]
    ApiException as ContactsApiException,
)
from hubspot.crm.owners.exceptions import (  # type: ignore[import-untyped]
    ApiException as OwnersApiException,
)

from consent.models import Channel, ConsentStatus, LegalBasis, Purpose
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

BATCH_LIMIT = 100
# a batch read asking for property histories takes at most 50 inputs (HubSpot answers 400)
HISTORY_BATCH_LIMIT = 50
# HubSpot's search: at most 200 results a page, and 10,000 in all for one query
SEARCH_PAGE_LIMIT = 200
SEARCH_TOTAL_LIMIT = 10_000
# the contact property HubSpot mirrors each email subscription's opt-out in (+ its id)
OPT_OUT_PROPERTY = "hs_email_optout_"
# the contact property naming its owner (an owner id of `GET /crm/v3/owners/{ownerId}`)
OWNER_PROPERTY = "hubspot_owner_id"
DEFAULT_FIELD_MAPPINGS = (
    ("email", "email"),
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("phone", "phone"),
    ("company", "company"),
    ("job_title", "jobtitle"),
    ("country", "country"),
    ("lifecycle_stage", "lifecyclestage"),
)
# our lifecycle stages in HubSpot's own values
LIFECYCLE_STAGES = {
    "subscriber": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
}
# our purpose's legal basis (GDPR Art. 6(1)) in HubSpot's values; the soft opt-in of similar
# products reaches existing customers (LEGITIMATE_INTEREST_CLIENT); the three bases that
# cannot carry marketing have no HubSpot value of their own and are named in the explanation
LEGAL_BASES = {
    LegalBasis.CONSENT: "CONSENT_WITH_NOTICE",
    LegalBasis.CONTRACT: "PERFORMANCE_OF_CONTRACT",
    LegalBasis.LEGITIMATE_INTERESTS: "LEGITIMATE_INTEREST_OTHER",
    LegalBasis.LEGAL_OBLIGATION: "LEGITIMATE_INTEREST_OTHER",
    LegalBasis.VITAL_INTERESTS: "LEGITIMATE_INTEREST_OTHER",
    LegalBasis.PUBLIC_TASK: "LEGITIMATE_INTEREST_OTHER",
}
SIMILAR_PRODUCTS = "LEGITIMATE_INTEREST_CLIENT"
ALREADY_DONE = re.compile(r"is already (un)?subscribed")
CALL_ERRORS = re.compile(r"PROPERTY_DOESNT_EXIST|READ_ONLY_VALUE")
LIVE_STATUSES = (ConsentStatus.GRANTED,)
CONSENT_TOPICS = (OutboxTopic.CONSENT_RECORDED, OutboxTopic.CONTACT_UNSUBSCRIBED)
ENDED_STATUSES = (ConsentStatus.WITHDRAWN, ConsentStatus.EXPIRED)

# a rate limit this short is waited out within a batch of subscription calls, up to a budget
SHORT_WAIT = 2.0
WAIT_BUDGET = 10.0

Result = TypeVar("Result")

logger = logging.getLogger(__name__)


class RateLimited(TransientError):
    """HubSpot's 429: the portal's rate limit, for now."""


@dataclass(frozen=True)
class _Subscription:
    """The status one consent change asks of one subscription type."""

    change: uuid.UUID
    email: str
    subscription_id: str
    subscribe: bool
    legal_basis: str
    explanation: str


class HubSpotAdapter:
    """Pushes our changes to a HubSpot portal through hubspot-api-client."""

    batch_size = BATCH_LIMIT

    def __init__(self, config: ConnectionConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        client = HubSpot(
            access_token=config.credentials.get("token", ""),
            host=config.base_url.rstrip("/"),
            # the push machinery owns retries (with the CRM's Retry-After and backoff)
            retry=urllib3.Retry(0),
        )
        # built once: each property access of the client builds a new connection pool
        self.contacts = client.crm.contacts.batch_api
        self.basic = client.crm.contacts.basic_api
        self.statuses = client.communication_preferences.status_api
        mappings = [
            (mapping["field"], mapping["remote"])
            for mapping in config.field_mappings
            if mapping.get("direction") in ("push", "both")
        ]
        self.mappings = mappings or list(DEFAULT_FIELD_MAPPINGS)
        # our purposes' legal bases (`prepare`): slug -> (ours, HubSpot's)
        self._bases: dict[str, tuple[str, str]] | None = None

    def push(self, changes: Sequence[Change]) -> PushResult:
        """Upsert the contacts changed, then set the subscription statuses consents ask for.

        `contact.erased` changes nothing here: erasure reaches HubSpot through its own
        propagation (GDPR delete, acknowledged on the privacy request), so it is delivered.
        So is the change of a contact without an email, which HubSpot (keyed by email here)
        does not hold."""
        result = PushResult()
        self._push_contacts(list(contact_states(changes).values()), result)
        waited = 0.0
        for subscription in self._subscriptions(changes):
            try:
                waited = self._call_waiting(partial(self._set_status, subscription), waited)
            except Refused as refusal:
                # "is already (un)subscribed": a replay finding its own work done
                if not ALREADY_DONE.search(refusal.message):
                    result.rejected[subscription.change] = refusal.message
        return result

    # -- contacts ----------------------------------------------------------------------------
    def _push_contacts(self, states: list[ContactState], result: PushResult) -> None:
        # an email changed on a contact HubSpot knows: update that record, since an upsert
        # by the new address would create a second one
        moved = [s for s in states if s.remote_id and "email" in s.changed]
        upserted = [s for s in states if s not in moved and s.data.get("email")]
        for chunk in _chunks(moved):
            outcome = send_isolating(chunk, self._update)
            # a record gone from HubSpot (deleted, merged away): the new address makes a new one
            upserted += [chunk[index] for index in sorted(outcome.missing)]
            for index in outcome.missing:
                del outcome.refused[index]
            self._record(chunk, outcome, result)
        for chunk in _chunks(upserted):
            self._record(chunk, send_isolating(chunk, self._upsert), result)

    def _record(
        self, states: Sequence[ContactState], outcome: Outcome[ContactState], result: PushResult
    ) -> None:
        for index, remote_id in outcome.accepted.items():
            result.remote_ids[states[index].contact] = remote_id
        for index, message in outcome.refused.items():
            for change in states[index].changes:
                result.rejected[change] = message

    def _properties(self, state: ContactState) -> dict[str, str]:
        """The mapped properties of a contact, as HubSpot's strings; an empty value is sent
        only when the change emptied it (so that it clears HubSpot's)."""
        properties = {}
        for ours, theirs in self.mappings:
            value = state.data.get(ours)
            if value in (None, "") and ours not in state.changed:
                continue
            if theirs == "lifecyclestage":
                value = LIFECYCLE_STAGES.get(value or "", value)
            properties[theirs] = _text(value)
        return properties

    def _upsert(self, states: Sequence[ContactState]) -> Outcome[ContactState]:
        inputs = [
            {
                "idProperty": "email",
                "id": state.data["email"],
                # the email is also the upsert's id; sent as a property, HubSpot echoes it back
                "properties": {**self._properties(state), "email": state.data["email"]},
            }
            for state in states
        ]
        answer = self._batch(self.contacts.upsert, inputs)
        index_of = {str(state.data["email"]).lower(): i for i, state in enumerate(states)}
        return _outcome(
            answer, index_of, key=lambda result: str(result["properties"].get("email", "")).lower()
        )

    def _update(self, states: Sequence[ContactState]) -> Outcome[ContactState]:
        inputs = [
            {"id": state.remote_id, "properties": self._properties(state)} for state in states
        ]
        answer = self._batch(self.contacts.update, inputs)
        index_of = {state.remote_id: i for i, state in enumerate(states)}
        return _outcome(answer, index_of, key=lambda result: str(result["id"]))

    def _batch(self, method: Callable[..., Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch call, its answer read as JSON: the client's own models cost more than the
        call itself at 100 contacts a batch (a configuration object and two date parsings
        each), and the adapter reads two fields of them."""

        def call() -> dict[str, Any]:
            response = method(
                {"inputs": inputs}, _request_timeout=self.timeout, _preload_content=False
            )
            try:
                return dict(json.loads(response.data))
            finally:
                response.release_conn()

        return self._call(call)

    # -- consents ----------------------------------------------------------------------------
    def _subscriptions(self, changes: Sequence[Change]) -> list[_Subscription]:
        """The subscription statuses to set: the last asked per (contact, subscription)."""
        wanted: dict[tuple[uuid.UUID, str], _Subscription] = {}
        legal_bases = self._legal_bases(changes)
        for change in sorted(changes, key=lambda change: change.sequence):
            email = (change.contact_data or {}).get("email")
            if not email:
                continue  # erased since: nobody to name in HubSpot
            for subscription_id, subscribe, purpose in self._asked(change):
                # a purpose gone from our side: a consent in the ledger is a consent
                basis, hubspot_basis = legal_bases.get(
                    purpose, (LegalBasis.CONSENT, LEGAL_BASES[LegalBasis.CONSENT])
                )
                wanted[(change.contact, subscription_id)] = _Subscription(
                    change=change.id,
                    email=email,
                    subscription_id=subscription_id,
                    subscribe=subscribe,
                    legal_basis=hubspot_basis,
                    explanation=_explanation(change, purpose, basis),
                )
        return list(wanted.values())

    def _asked(self, change: Change) -> list[tuple[str, bool, str]]:
        """(subscription id, subscribe?, our purpose) a change asks for; only email consents
        of mapped purposes map to HubSpot's email subscription types."""
        if change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED:
            return [(remote, False, purpose) for purpose, remote in self.config.purpose_map.items()]
        if (
            change.topic != OutboxTopic.CONSENT_RECORDED
            or change.data.get("channel") != Channel.EMAIL
        ):
            return []
        purpose = change.data.get("purpose", "")
        remote = self.config.purpose_map.get(purpose)
        status = change.data.get("status")
        if remote is None or status not in (*LIVE_STATUSES, *ENDED_STATUSES):
            return []  # unmapped, or pending a double opt-in: not a consent yet
        return [(remote, status in LIVE_STATUSES, purpose)]

    def prepare(self, changes: Sequence[Change]) -> None:
        """Read our mapped purposes' legal bases, once, when a batch changes consents: `push`
        runs where it may not use the database."""
        if self._bases is None and any(c.topic in CONSENT_TOPICS for c in changes):
            purposes = Purpose.objects.filter(slug__in=self.config.purpose_map.keys())
            self._bases = {
                slug: (basis, SIMILAR_PRODUCTS if similar else LEGAL_BASES[LegalBasis(basis)])
                for slug, basis, similar in purposes.values_list(
                    "slug", "legal_basis", "similar_products"
                )
            }

    def _legal_bases(self, changes: Sequence[Change]) -> dict[str, tuple[str, str]]:
        """Our mapped purposes' legal bases: slug -> (ours, HubSpot's)."""
        if self._bases is None:
            self.prepare(changes)  # called alone, as the erasure and the tests do
        return self._bases or {}

    def _set_status(self, subscription: _Subscription) -> Any:
        request = PublicUpdateSubscriptionStatusRequest(
            email_address=subscription.email,
            subscription_id=subscription.subscription_id,
            legal_basis=subscription.legal_basis,
            legal_basis_explanation=subscription.explanation,
        )
        method = self.statuses.subscribe if subscription.subscribe else self.statuses.unsubscribe
        return method(request, _request_timeout=self.timeout)

    # -- pull --------------------------------------------------------------------------------
    def pull(self, cursor: str | None, limit: int) -> PullPage:
        """The contacts modified since the cursor, oldest first (search on `lastmodifieddate`).

        Each page asks again from the cursor's time (`GTE`, the ids applied at that very time
        left out), so the search's 10,000-result window never ends a pull: the cursor moves
        to the last modification time seen. `after` pages on only past records the cursor
        already holds (many sharing one timestamp)."""
        position = positions_read(cursor).get("contacts", Position())
        # room for the records of the cursor's millisecond applied already, which come first
        size = max(1, min(limit + len(position.seen), SEARCH_PAGE_LIMIT))
        after = 0
        while True:
            answer = self._search(position.since, size, after)
            contacts, problems = self._remote_contacts(answer.get("results") or [])
            fresh = [
                c for c in contacts if position.is_new(c.remote_id, milliseconds(c.modified_at))
            ]
            following = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if fresh or following is None:
                break
            after = int(following)
            if after >= SEARCH_TOTAL_LIMIT:
                raise TransientError(
                    _("More than %(limit)s HubSpot contacts share the modification time %(time)s.")
                    % {"limit": SEARCH_TOTAL_LIMIT, "time": position.since}
                )
        kept = self._with_owner_emails(fresh[: max(1, limit)])
        moved = position.advanced((c.remote_id, milliseconds(c.modified_at)) for c in kept)
        return PullPage(
            contacts=self._consents_timed(kept),
            next_cursor=positions_text({"contacts": moved}),
            done=following is None and len(kept) == len(fresh),
            problems=problems,
        )

    def _search(self, since: int, size: int, after: int) -> dict[str, Any]:
        mapped = [
            theirs
            for _ours, theirs in pulled_mappings(self.config.field_mappings, DEFAULT_FIELD_MAPPINGS)
        ]
        opt_outs = [f"{OPT_OUT_PROPERTY}{remote}" for remote in self.config.purpose_map.values()]
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}
                    ]
                }
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": sorted({"email", "lastmodifieddate", OWNER_PROPERTY, *mapped, *opt_outs}),
            "limit": size,
        }
        if after:
            body["after"] = str(after)
        if self._search_api is None:
            self._search_api = HubSpot(
                access_token=self.config.credentials.get("token", ""),
                host=self.config.base_url.rstrip("/"),
                retry=urllib3.Retry(0),
            ).crm.contacts.search_api

        def call() -> dict[str, Any]:
            response = self._search_api.do_search(
                body, _request_timeout=self.timeout, _preload_content=False
            )
            try:
                return dict(json.loads(response.data))
            finally:
                response.release_conn()

        return self._call(call)

    _search_api: Any = None

    def _remote_contacts(
        self, results: list[dict[str, Any]]
    ) -> tuple[list[RemoteContact], list[str]]:
        """The search's results as remote contacts; those that cannot be read, named."""
        stages = {theirs: ours for ours, theirs in LIFECYCLE_STAGES.items()}
        mappings = pulled_mappings(self.config.field_mappings, DEFAULT_FIELD_MAPPINGS)
        contacts, problems = [], []
        for result in results:
            properties = result.get("properties") or {}
            remote_id = str(result.get("id") or "")
            modified = parsed_time(properties.get("lastmodifieddate"))
            if not remote_id or modified is None:
                problems.append(
                    _("HubSpot contact %(id)s: unreadable lastmodifieddate %(value)r")
                    % {"id": remote_id or "?", "value": properties.get("lastmodifieddate")}
                )
                continue
            fields: dict[str, Any] = {}
            for ours, theirs in mappings:
                value = properties.get(theirs)
                if value is None or ours == "email":
                    continue  # not set in HubSpot: nothing to say about ours
                fields[ours] = stages.get(value, value) if theirs == "lifecyclestage" else value
            # "Opted out of email: <type>": true is an opt-out; false may be a subscription,
            # which `_consents_timed` checks. Both at the record's modification time until
            # the property's history gives the change's own.
            consents = tuple(
                RemoteConsent(
                    purpose=purpose,
                    granted=properties.get(f"{OPT_OUT_PROPERTY}{remote}") == "false",
                    at=modified,
                )
                for purpose, remote in self.config.purpose_map.items()
                if properties.get(f"{OPT_OUT_PROPERTY}{remote}") in ("true", "false")
            )
            contacts.append(
                RemoteContact(
                    remote_id=remote_id,
                    email=str(properties.get("email") or ""),
                    modified_at=modified,
                    fields=fields,
                    consents=consents,
                    owner_id=str(properties.get(OWNER_PROPERTY) or ""),
                )
            )
        return contacts, problems

    def _consents_timed(self, contacts: list[RemoteContact]) -> list[RemoteContact]:
        """The contacts with each consent at the time of its own change, as the opt-out
        property's history says (batch read with `propertiesWithHistory`), not the record's
        modification time, which any edit of the record moves.

        An opt-out without history keeps the record's time (the fallback). A grant is kept
        only when the history shows the property set to false (a value never set reads
        "Not specified", no consent) and HubSpot's subscription status confirms it; it
        carries that status's legal basis and explanation."""
        histories = self._histories([c.remote_id for c in contacts if c.consents])
        timed = []
        for contact in contacts:
            if contact.consents:
                # a contact the read did not answer (deleted since, merged away) has no
                # history: its opt-outs keep the record's time, its grants are not proved
                history = histories.get(contact.remote_id, {})
                statuses = self._email_statuses(contact) if history else {}
                consents = (
                    self._consent_timed(contact, consent, history, statuses)
                    for consent in contact.consents
                )
                contact = replace(contact, consents=tuple(c for c in consents if c is not None))
            timed.append(contact)
        return timed

    def _histories(self, ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """HubSpot id -> opt-out property -> its history (value, timestamp, source)."""
        names = sorted(f"{OPT_OUT_PROPERTY}{remote}" for remote in self.config.purpose_map.values())
        found: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for start in range(0, len(ids), HISTORY_BATCH_LIMIT):
            chunk = ids[start : start + HISTORY_BATCH_LIMIT]
            body = {
                "inputs": [{"id": remote_id} for remote_id in chunk],
                "properties": names,
                "propertiesWithHistory": names,
            }
            answer = self._json(partial(self.contacts.read, body, archived=False))
            for result in answer.get("results") or []:
                found[str(result.get("id"))] = dict(result.get("propertiesWithHistory") or {})
        return found

    def _email_statuses(self, contact: RemoteContact) -> dict[str, dict[str, Any]]:
        """Subscription id -> HubSpot's status of it for the contact's address; read only for
        a contact whose properties show a possible grant."""
        if not contact.email or not any(c.granted for c in contact.consents):
            return {}
        answer = self._json(partial(self.statuses.get_email_status, contact.email))
        return {
            str(status.get("id")): status for status in answer.get("subscriptionStatuses") or []
        }

    def _consent_timed(
        self,
        contact: RemoteContact,
        consent: RemoteConsent,
        history: dict[str, list[dict[str, Any]]],
        statuses: dict[str, dict[str, Any]],
    ) -> RemoteConsent | None:
        remote = self.config.purpose_map[consent.purpose]
        change = _latest_change(history.get(f"{OPT_OUT_PROPERTY}{remote}") or [])
        value = "false" if consent.granted else "true"
        at = (
            parsed_time(change.get("timestamp"))
            if change and change.get("value") == value
            else None
        )
        if not consent.granted:
            return replace(consent, at=at or consent.at)
        status = statuses.get(remote) or {}
        if change is None or at is None or status.get("status") != "SUBSCRIBED":
            return None  # "not opted out" is all HubSpot says: no consent
        statement = _(
            "HubSpot contact %(id)s: subscribed to subscription type %(subscription)s "
            "(%(name)s) on %(at)s (source: %(source)s); legal basis: %(basis)s; "
            "explanation: %(explanation)s"
        ) % {
            "id": contact.remote_id,
            "subscription": remote,
            "name": status.get("name") or "",
            "at": at.isoformat(),
            "source": change.get("sourceType") or "?",
            "basis": status.get("legalBasis") or _("none given"),
            "explanation": status.get("legalBasisExplanation") or _("none given"),
        }
        return replace(consent, at=at, statement=statement)

    def _json(self, method: Callable[..., Any]) -> dict[str, Any]:
        """One call, its answer read as JSON (the client's models cost more than the call)."""

        def call() -> dict[str, Any]:
            response = method(_request_timeout=self.timeout, _preload_content=False)
            try:
                return dict(json.loads(response.data))
            finally:
                response.release_conn()

        return self._call(call)

    # -- owners ------------------------------------------------------------------------------
    _owner_emails: dict[str, str] | None = None
    _owners_api: Any = None

    def _with_owner_emails(self, contacts: list[RemoteContact]) -> list[RemoteContact]:
        """The contacts with their owner's address, one owners API call per distinct owner in
        the whole pull (the adapter lives as long as one pull: an address changed in HubSpot
        is read again at the next)."""
        if self._owner_emails is None:
            self._owner_emails = {}
        known = self._owner_emails
        for owner_id in sorted({c.owner_id for c in contacts if c.owner_id} - set(known)):
            known[owner_id] = self._owner_email(owner_id)
        return [
            replace(contact, owner_email=known[contact.owner_id]) if contact.owner_id else contact
            for contact in contacts
        ]

    def _owner_email(self, owner_id: str) -> str:
        """The owner's address (`GET /crm/v3/owners/{ownerId}`); "" for an owner HubSpot no
        longer lists (a deactivated user) or a token without the owners scope: the alerts
        then go to their configured address. A rate limit or an outage fails the page."""
        if self._owners_api is None:
            self._owners_api = HubSpot(
                access_token=self.config.credentials.get("token", ""),
                host=self.config.base_url.rstrip("/"),
                retry=urllib3.Retry(0),
            ).crm.owners.owners_api

        def call() -> dict[str, Any]:
            try:
                response = self._owners_api.get_by_id(
                    owner_id, _request_timeout=self.timeout, _preload_content=False
                )
            except OwnersApiException as problem:
                if problem.status in (403, 404):
                    logger.warning(
                        "HubSpot owner %s unreadable (%s): alerts go to the fallback address",
                        owner_id,
                        problem.status,
                    )
                    return {}
                raise _classified(problem, problem.status or 0) from problem
            try:
                return dict(json.loads(response.data))
            finally:
                response.release_conn()

        return str(self._call(call).get("email") or "")

    # -- erasure -----------------------------------------------------------------------------
    def erase(self, target: ErasureTarget) -> None:
        """GDPR delete of the person, by HubSpot's id or else by email (HubSpot then blocks the
        address too); a contact HubSpot does not hold (404: deleted already) counts as erased."""
        if target.remote_id:
            request = PublicGdprDeleteInput(object_id=target.remote_id)
        elif target.email:
            request = PublicGdprDeleteInput(object_id=target.email, id_property="email")
        else:
            return  # no email and no id: HubSpot, keyed by email here, never held them
        try:
            self._call(lambda: self.basic.purge(request, _request_timeout=self.timeout))
        except Refused as refusal:
            if refusal.status != NOT_FOUND:
                raise

    # -- errors ------------------------------------------------------------------------------
    def _call_waiting(self, call: Callable[[], Any], waited: float) -> float:
        """Make a call of the batch's many, waiting out short rate limits here; the seconds
        waited in the batch so far.

        A batch sent again replays the calls made before a rate limit (a call each), so on
        a busy portal a batch that gave up at each one might never get through; within a
        budget of waiting, it moves on."""
        while True:
            try:
                self._call(call)
                return waited
            except RateLimited as limited:
                pause = limited.retry_after if limited.retry_after is not None else 1.0
                if pause > SHORT_WAIT or waited + pause > WAIT_BUDGET:
                    raise
                time.sleep(pause)
                waited += pause

    def _call(self, call: Callable[[], Result]) -> Result:
        """Make one call to HubSpot, its failures told apart: for now (TransientError) or
        for good (Refused)."""
        try:
            return call()
        except urllib3.exceptions.HTTPError as problem:  # refused, reset, timed out
            raise TransientError(_("HubSpot could not be reached: %s") % problem) from problem
        except (ContactsApiException, PreferencesApiException) as problem:
            raise _classified(problem, problem.status or 0) from problem


def _classified(problem: Any, status: int) -> Exception:
    message = _message(problem)
    if status == 429:
        retry_after = _seconds((problem.headers or {}).get("Retry-After"))
        return RateLimited(_("HubSpot rate limit: %s") % message, retry_after=retry_after)
    if status in (401, 403):
        # a configuration problem: retried, then parked, until staff fix the token or scopes
        return TransientError(
            _("HubSpot refused the access token (%(status)s): %(message)s")
            % {"status": status, "message": message}
        )
    if status == 0 or status >= 500:
        return TransientError(
            _("HubSpot failed (%(status)s): %(message)s") % {"status": status, "message": message}
        )
    # a mapped property HubSpot lacks or will not let us write: no record of the batch passes
    about_the_call = status == 400 and bool(CALL_ERRORS.search(message))
    return Refused(message, status=status, about_the_call=about_the_call)


def _message(problem: Any) -> str:
    body: Any = getattr(problem, "body", None)
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(body or getattr(problem, "reason", "") or problem)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the machinery's backoff decides


def _outcome(
    answer: dict[str, Any], index_of: dict[str, int], key: Callable[[dict[str, Any]], str]
) -> Outcome[ContactState]:
    """The ids HubSpot gave, and the inputs a multi-status (207) answer refused."""
    outcome: Outcome[ContactState] = Outcome()
    for result in answer.get("results") or []:
        index = index_of.get(key(result))
        if index is not None:
            outcome.accepted[index] = str(result["id"])
    for error in answer.get("errors") or []:
        for value in (error.get("context") or {}).get("ids", []):
            index = index_of.get(str(value).lower(), index_of.get(str(value)))
            if index is not None:
                outcome.refused[index] = str(error.get("message"))
    return outcome


def _latest_change(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest entry of a property's history (HubSpot lists them newest first; read by
    their time all the same)."""
    dated = [(parsed_time(entry.get("timestamp")), entry) for entry in history]
    known = [(moment, entry) for moment, entry in dated if moment is not None]
    return max(known, key=lambda item: item[0])[1] if known else None


def _chunks(states: list[ContactState]) -> list[list[ContactState]]:
    return [states[start : start + BATCH_LIMIT] for start in range(0, len(states), BATCH_LIMIT)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _explanation(change: Change, purpose: str, legal_basis: str) -> str:
    """Why the status is what it is, naming the proof HubSpot's users can ask us for."""
    if change.topic == OutboxTopic.CONTACT_UNSUBSCRIBED:
        return _(
            "Consent Desk: unsubscribed from all marketing on %(when)s (event %(event)s); "
            "purpose %(purpose)s, legal basis: %(basis)s"
        ) % {
            "when": change.occurred_at.isoformat(),
            "event": change.id,
            "purpose": purpose,
            "basis": legal_basis,
        }
    return _(
        "Consent Desk ledger record %(record)s: %(purpose)s by email, %(status)s on "
        "%(given_at)s (legal basis: %(basis)s)"
    ) % {
        "record": change.data.get("record"),
        "purpose": purpose,
        "status": change.data.get("status"),
        "given_at": change.data.get("given_at"),
        "basis": legal_basis,
    }

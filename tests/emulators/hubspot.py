"""An in-memory HubSpot: the CRM v3 contact endpoints and the v3 communication preferences
that hubspot-api-client 12 calls (paths, bodies and answers as documented by HubSpot).

- `POST /crm/v3/objects/contacts/batch/upsert` (idProperty `email`, at most 100 inputs),
  `batch/read`, `search` (filters, sorts, `after` paging, at most 200 a page and 10,000 in
  all, as HubSpot limits), `GET`/`PATCH /crm/v3/objects/contacts/{id}`, `gdpr-delete`;
- `/communication-preferences/v3/status/email/{email}`, `subscribe`, `unsubscribe`,
  `definitions`: v3 never subscribes again an address that opted out of a subscription;
  each status is mirrored on the contact (`hs_email_optout_<id>`, read-only), as HubSpot does.
- `GET /crm/v3/owners/{ownerId}` (`idProperty` id or userId, `archived`) and
  `GET /crm/v3/owners` (`email`, `limit`, `after`): the portal's owners (`put_owner`); a
  contact's `hubspot_owner_id` must name one of them, as HubSpot checks.

Every property keeps its history (value, timestamp, sourceType, sourceId), newest first, which
`batch/read` serves for the properties named in `propertiesWithHistory`, as HubSpot does.

A property is only "modified" (its `lastmodifieddate` moves) when a value changes, so a
replayed upsert leaves the state identical. An invalid input fails the whole batch with 400,
as HubSpot answers validation errors; `multi_status = True` answers 207 with per-input
errors instead (the other documented shape of a batch answer).
"""

import bisect
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tests.emulators import EmulatorServer, Response, Throttle

BATCH_LIMIT = 100
# a batch read with propertiesWithHistory: at most 50 inputs
HISTORY_BATCH_LIMIT = 50
SEARCH_PAGE_LIMIT = 200
SEARCH_TOTAL_LIMIT = 10_000
LIFECYCLE_STAGES = {
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
}
WRITABLE_PROPERTIES = {
    "email",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "company",
    "jobtitle",
    "country",
    "city",
    "zip",
    "address",
    "state",
    "website",
    "hs_language",
    "lifecyclestage",
    "hubspot_owner_id",
}
READ_ONLY_PROPERTIES = {"hs_object_id", "createdate", "lastmodifieddate"}
DEFAULT_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
LEGAL_BASES = {
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "PERFORMANCE_OF_CONTRACT",
    "CONSENT_WITH_NOTICE",
    "NON_GDPR",
    "PROCESS_AND_STORE",
    "LEGITIMATE_INTEREST_OTHER",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
OPT_OUT = "hs_email_optout_"  # + subscription id
CONTACTS = "/crm/v3/objects/contacts"
PREFERENCES = "/communication-preferences/v3"
OWNERS = "/crm/v3/owners"
OWNER_PROPERTY = "hubspot_owner_id"


def iso(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def milliseconds_of(value: str) -> int:
    """A date filter's value: epoch milliseconds or ISO 8601, as HubSpot accepts both."""
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _text(flag: bool) -> str:
    return "true" if flag else "false"


def error(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return Response(status, body)


class HubSpotEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        token: str = "hubspot-test-token",  # noqa: S107 - the emulator's own
        subscriptions: dict[str, str] | None = None,
        keep_bodies: bool = True,
        clock: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(keep_bodies=keep_bodies)
        self.token = token
        # subscription type id -> name (the portal's definitions)
        self.subscriptions = dict(subscriptions or {"1001": "Newsletter", "1002": "Offers"})
        self.properties = set(WRITABLE_PROPERTIES)
        self.multi_status = False
        self.retry_after = "1"
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.contacts: dict[str, dict[str, Any]] = {}
        self.ids_by_email: dict[str, str] = {}
        # (lastmodified ms, change number, id) of every contact, sorted: search in log time
        self.modified: list[tuple[int, int, str]] = []
        self.modified_key: dict[str, tuple[int, int, str]] = {}
        # email -> subscription id -> {"status", "legalBasis", "legalBasisExplanation", "optedOut"}
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.gdpr_deleted: set[str] = set()
        # contact id -> property -> its changes (value, ms, sourceType), newest first; tuples,
        # not HubSpot's dicts, which a 100,000-contact benchmark would hold many of
        self.history: dict[str, dict[str, list[tuple[str, int, str]]]] = {}
        # owner id -> the owner as `GET /crm/v3/owners/{ownerId}` answers it
        self.owners: dict[str, dict[str, Any]] = {}
        self.owner_ids = itertools.count(41_629_001)
        self.ids = itertools.count(1001)
        self.changes = itertools.count(1)

    # -- test helpers ------------------------------------------------------------------------
    def rate_limit(
        self, *, ratio: float = 0.0, seed: int = 0, per_second: int | None = None
    ) -> None:
        """Answer 429 (with Retry-After) to a seeded share of calls and/or beyond a rate."""
        self.throttle = Throttle(ratio=ratio, seed=seed, per_second=per_second)

    def throttled(self) -> Response:
        response = error(
            429,
            "You have reached your secondly limit.",
            category="RATE_LIMITS",
            errorType="RATE_LIMIT",
            policyName="SECONDLY",
        )
        response.headers["Retry-After"] = self.retry_after
        return response

    def contact(self, email: str) -> dict[str, Any] | None:
        """The stored contact with this email (its id, properties, dates), or None."""
        with self.lock:
            contact_id = self.ids_by_email.get(email.lower())
            return None if contact_id is None else json.loads(json.dumps(self.contacts[contact_id]))

    def subscription_status(self, email: str, subscription_id: str) -> dict[str, Any] | None:
        with self.lock:
            status = self.statuses.get(email.lower(), {}).get(subscription_id)
            return dict(status) if status else None

    def snapshot(self) -> str:
        """Every stored fact, to compare the state before and after a replay."""
        with self.lock:
            return json.dumps(
                [self.contacts, self.statuses, sorted(self.gdpr_deleted)], sort_keys=True
            )

    def put_owner(
        self, email: str, *, first_name: str = "", last_name: str = "", archived: bool = False
    ) -> str:
        """Add a user of the portal who can own records (or archive one: a deactivated
        user, whom `GET /crm/v3/owners/{ownerId}` no longer finds unless `archived=true`);
        the owner's id."""
        with self.lock:
            known = [i for i, owner in self.owners.items() if owner["email"] == email.lower()]
            owner_id = known[0] if known else str(next(self.owner_ids))
            now = iso(self.clock())
            user_id = int(owner_id) + 1_000_000
            self.owners[owner_id] = {
                "id": owner_id,
                "email": email.lower(),
                "type": "PERSON",
                "firstName": first_name,
                "lastName": last_name,
                "userId": user_id,
                "userIdIncludingInactive": user_id,
                "createdAt": now,
                "updatedAt": now,
                "archived": archived,
                "teams": [],
            }
            return owner_id

    def put_contact(self, properties: dict[str, str]) -> dict[str, Any]:
        """Create or change a contact as a HubSpot user would (for pull tests)."""
        with self.lock:
            email = properties["email"].lower()
            contact_id = self.ids_by_email.get(email)
            stored, _new = self._write(contact_id, email, properties, source="CRM_UI")
            return stored

    # -- routing -----------------------------------------------------------------------------
    def authenticate(self, headers: Any) -> Response | None:
        if headers.get("Authorization") == f"Bearer {self.token}":
            return None
        return error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            category="INVALID_AUTHENTICATION",
        )

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        routes: dict[tuple[str, str], Callable[[Any], Response]] = {
            ("POST", f"{CONTACTS}/batch/upsert"): self.batch_upsert,
            ("POST", f"{CONTACTS}/batch/update"): self.batch_update,
            ("POST", f"{CONTACTS}/batch/read"): self.batch_read,
            ("POST", f"{CONTACTS}/search"): self.search,
            ("POST", f"{CONTACTS}/gdpr-delete"): self.gdpr_delete,
            ("POST", f"{PREFERENCES}/subscribe"): lambda body: self.set_status(body, True),
            ("POST", f"{PREFERENCES}/unsubscribe"): lambda body: self.set_status(body, False),
            ("GET", f"{PREFERENCES}/definitions"): lambda body: self.definitions(),
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler(body)
        if method == "GET" and path == OWNERS:
            return self.owners_page(query)
        if method == "GET" and path.startswith(f"{OWNERS}/") and path.count("/") == 4:
            return self.owner(unquote(path.rsplit("/", 1)[1]), query)
        if method == "GET" and path.startswith(f"{PREFERENCES}/status/email/"):
            return self.email_status(unquote(path.rsplit("/", 1)[1]))
        if path.startswith(f"{CONTACTS}/") and path.count("/") == 5:
            key = unquote(path.rsplit("/", 1)[1])
            id_property = (query.get("idProperty") or ["hs_object_id"])[0]
            if method == "GET":
                return self.get_one(key, id_property, query)
            if method == "PATCH":
                return self.update_one(key, id_property, body)
        return error(404, f"No route for {method} {path}", category="OBJECT_NOT_FOUND")

    # -- contacts ----------------------------------------------------------------------------
    def batch_upsert(self, body: Any) -> Response:
        inputs = (body or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return error(400, "Invalid input JSON: inputs must be a non-empty list")
        if len(inputs) > BATCH_LIMIT:
            return error(
                400,
                f"Batch input size {len(inputs)} exceeds the limit of {BATCH_LIMIT}",
                context={"limit": [str(BATCH_LIMIT)]},
            )
        keys = [str(item.get("id", "")).lower() for item in inputs]
        if len(set(keys)) != len(keys):
            return error(400, "Duplicate IDs found in batch input: each id may appear only once")
        problems = [self._input_problem(item) for item in inputs]
        if any(problems) and not self.multi_status:
            first = next(problem for problem in problems if problem)
            return error(400, f"Property values were not valid: {json.dumps([first])}")
        results, errors = [], []
        for item, problem in zip(inputs, problems, strict=True):
            if problem:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": problem["message"],
                        "context": {"ids": [str(item.get("id"))]},
                    }
                )
                continue
            email = str(item["id"]).lower()
            stored, new = self._write(
                self.ids_by_email.get(email), email, item.get("properties") or {}
            )
            results.append({**self._public(stored, None), "new": new})
        now = iso(self.clock())
        answer = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            return Response(207, {**answer, "numErrors": len(errors), "errors": errors})
        return Response(200, answer)

    def _input_problem(self, item: Any) -> dict[str, str] | None:
        """Why HubSpot would refuse this upsert input, or None."""
        if not isinstance(item, dict) or item.get("idProperty") != "email" or not item.get("id"):
            return {
                "name": "idProperty",
                "error": "INVALID_ID",
                "message": "Upserts here use idProperty email and an id",
            }
        email = str(item["id"]).lower()
        if email in self.gdpr_deleted:
            return {
                "name": "email",
                "error": "GDPR_DELETED",
                "message": f"{email} was permanently deleted (GDPR) and cannot be re-created",
            }
        for name, value in (item.get("properties") or {}).items():
            problem = self._value_problem(name, value)
            if problem:
                return problem
        if not EMAIL.match(email):
            return {
                "name": "email",
                "error": "INVALID_EMAIL",
                "message": f"Email address {email} is invalid",
            }
        return None

    def _value_problem(self, name: str, value: Any) -> dict[str, str] | None:
        if name in READ_ONLY_PROPERTIES or name.startswith(OPT_OUT):
            return {
                "name": name,
                "error": "READ_ONLY_VALUE",
                "message": f"{name} is a read only property; its value cannot be set.",
            }
        if name not in self.properties:
            return {
                "name": name,
                "error": "PROPERTY_DOESNT_EXIST",
                "message": f'Property "{name}" does not exist',
            }
        if not isinstance(value, str):
            return {"name": name, "error": "INVALID_VALUE", "message": f"{name} must be a string"}
        if name == "lifecyclestage" and value and value not in LIFECYCLE_STAGES:
            return {
                "name": name,
                "error": "INVALID_OPTION",
                "message": f"{value} was not one of the allowed options: "
                f"{sorted(LIFECYCLE_STAGES)}",
            }
        if name == OWNER_PROPERTY and value and value not in self.owners:
            return {
                "name": name,
                "error": "INVALID_OPTION",
                "message": f"{value} was not one of the allowed options: the portal's owners",
            }
        if name == "email" and value and not EMAIL.match(value):
            return {
                "name": name,
                "error": "INVALID_EMAIL",
                "message": f"Email address {value} is invalid",
            }
        return None

    def _write(
        self,
        contact_id: str | None,
        email: str,
        properties: dict[str, str],
        *,
        source: str = "API",
    ) -> tuple[dict[str, Any], bool]:
        """Create or change a contact; its dates move only when a value changes. `source`:
        the change's sourceType in the properties' history (CRM_UI: a HubSpot user)."""
        new = contact_id is None
        if contact_id is None:
            contact_id = str(next(self.ids))
            now = self.clock()
            self.contacts[contact_id] = {
                "id": contact_id,
                "properties": {"hs_object_id": contact_id, "createdate": iso(now), "email": email},
                "createdAt": iso(now),
                "updatedAt": iso(now),
                "archived": False,
            }
            self.ids_by_email[email] = contact_id
            self._touch(contact_id, now)
            self._remember(contact_id, {"email": email}, now, source)
        stored = self.contacts[contact_id]
        values = {name: value for name, value in properties.items() if name != "email"}
        changed = {
            name: value
            for name, value in values.items()
            if stored["properties"].get(name, "") != value
        }
        if changed or new:
            now = self.clock()
            stored["properties"].update(changed)
            stored["updatedAt"] = iso(now)
            self._touch(contact_id, now)
            self._remember(contact_id, changed, now, source)
        return stored, new

    def _remember(self, contact_id: str, changed: dict[str, str], now: int, source: str) -> None:
        """Add the changed values to their properties' history (newest first)."""
        history = self.history.setdefault(contact_id, {})
        for name, value in changed.items():
            history.setdefault(name, []).insert(0, (value, now, source))

    def _touch(self, contact_id: str, now: int) -> None:
        old = self.modified_key.pop(contact_id, None)
        if old is not None:
            del self.modified[bisect.bisect_left(self.modified, old)]
        key = (now, next(self.changes), contact_id)
        self.modified_key[contact_id] = key
        bisect.insort(self.modified, key)
        self.contacts[contact_id]["properties"]["lastmodifieddate"] = iso(now)

    def _public(self, stored: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
        wanted = set(names or ()) | set(DEFAULT_PROPERTIES)
        if names is None:
            wanted |= set(stored["properties"])
        properties = {name: stored["properties"].get(name) for name in sorted(wanted)}
        return {
            "id": stored["id"],
            "properties": properties,
            "createdAt": stored["createdAt"],
            "updatedAt": stored["updatedAt"],
            "archived": False,
        }

    def _find(self, key: str, id_property: str) -> dict[str, Any] | None:
        if id_property == "email":
            contact_id = self.ids_by_email.get(key.lower())
            return None if contact_id is None else self.contacts[contact_id]
        return self.contacts.get(key)

    def get_one(self, key: str, id_property: str, query: dict[str, list[str]]) -> Response:
        stored = self._find(key, id_property)
        if stored is None:
            return error(404, "resource not found", category="OBJECT_NOT_FOUND")
        names = [name for value in query.get("properties", []) for name in value.split(",")]
        return Response(200, self._public(stored, names))

    def update_one(self, key: str, id_property: str, body: Any) -> Response:
        stored = self._find(key, id_property)
        if stored is None:
            return error(404, "resource not found", category="OBJECT_NOT_FOUND")
        properties = (body or {}).get("properties") or {}
        for name, value in properties.items():
            problem = self._value_problem(name, value)
            if problem:
                return error(400, f"Property values were not valid: {json.dumps([problem])}")
        new_email = str(properties.get("email") or "").lower()
        if new_email in self.ids_by_email and self.ids_by_email[new_email] != stored["id"]:
            return error(
                409, f"A contact with the email {new_email} already exists", category="CONFLICT"
            )
        if new_email and new_email != stored["properties"]["email"]:
            # an email changed in HubSpot: same record, new address
            del self.ids_by_email[stored["properties"]["email"]]
            self.ids_by_email[properties["email"].lower()] = stored["id"]
            stored["properties"]["email"] = properties["email"].lower()
            self._touch(stored["id"], self.clock())
        self._write(stored["id"], stored["properties"]["email"], properties)
        return Response(200, self._public(stored, None))

    def batch_update(self, body: Any) -> Response:
        """Update by HubSpot id (an email may change here: the same record, a new address)."""
        inputs = (body or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return error(400, "Invalid input JSON: inputs must be a non-empty list")
        if len(inputs) > BATCH_LIMIT:
            return error(400, f"Batch input size {len(inputs)} exceeds the limit of {BATCH_LIMIT}")
        for item in inputs:
            if str(item.get("id")) not in self.contacts:
                return error(404, f"Object {item.get('id')} not found", category="OBJECT_NOT_FOUND")
        answers = [self.update_one(str(item["id"]), "hs_object_id", item) for item in inputs]
        refused = [answer for answer in answers if answer.status != 200]
        if refused:
            return refused[0]  # (the emulator does not roll back the inputs before it)
        results = [answer.body for answer in answers]
        now = iso(self.clock())
        answer = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        return Response(200, answer)

    def batch_read(self, body: Any) -> Response:
        body = body or {}
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return error(400, f"Batch input size {len(inputs)} exceeds the limit of {BATCH_LIMIT}")
        id_property = body.get("idProperty") or "hs_object_id"
        with_history = body.get("propertiesWithHistory") or []
        if with_history and len(inputs) > HISTORY_BATCH_LIMIT:
            return error(
                400,
                "The maximum number of inputs supported in a batch request for property "
                f"histories is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and try "
                "again",
            )
        found = [self._find(str(item.get("id")), id_property) for item in inputs]
        results = [
            self._with_history(self._public(stored, body.get("properties")), with_history)
            for stored in found
            if stored
        ]
        now = iso(self.clock())
        return Response(
            200, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        )

    def _with_history(self, public: dict[str, Any], names: list[str]) -> dict[str, Any]:
        """A batch read's result with the history of each property asked for (an empty list
        for a property never set)."""
        if not names:
            return public
        history = self.history.get(public["id"], {})
        public["propertiesWithHistory"] = {
            name: [
                {"value": value, "timestamp": iso(moment), "sourceType": source, "sourceId": ""}
                for value, moment, source in history.get(name, [])
            ]
            for name in names
        }
        return public

    def gdpr_delete(self, body: Any) -> Response:
        body = body or {}
        stored = self._find(str(body.get("objectId", "")), body.get("idProperty") or "hs_object_id")
        if stored is None:
            return error(404, "resource not found", category="OBJECT_NOT_FOUND")
        email = stored["properties"]["email"]
        del self.contacts[stored["id"]]
        del self.ids_by_email[email]
        key = self.modified_key.pop(stored["id"])
        del self.modified[bisect.bisect_left(self.modified, key)]
        self.statuses.pop(email, None)
        self.history.pop(stored["id"], None)
        # HubSpot blocks the address from being tracked or re-created afterwards
        self.gdpr_deleted.add(email)
        return Response(204)

    # -- search ------------------------------------------------------------------------------
    def search(self, body: Any) -> Response:
        body = body or {}
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > SEARCH_PAGE_LIMIT:
            return error(400, f"limit must be at most {SEARCH_PAGE_LIMIT}")
        if after >= SEARCH_TOTAL_LIMIT:
            # HubSpot still offers the next page, and refuses it: a pull moves its cursor
            return error(
                400,
                f"Paging beyond {SEARCH_TOTAL_LIMIT} results is not supported: narrow the filters",
            )
        limit = min(limit, SEARCH_TOTAL_LIMIT - after)
        groups = body.get("filterGroups") or []
        sorts = [{"propertyName": s} if isinstance(s, str) else s for s in body.get("sorts") or []]
        try:
            matches, total = self._matches(groups, sorts, after, limit)
        except ValueError as problem:
            return error(400, str(problem))
        results = [
            self._public(self.contacts[contact_id], body.get("properties"))
            for contact_id in matches
        ]
        answer: dict[str, Any] = {"total": total, "results": results}
        if after + len(results) < total:
            answer["paging"] = {"next": {"after": str(after + len(results))}}
        return Response(200, answer)

    def _matches(
        self, groups: list[dict[str, Any]], sorts: list[dict[str, Any]], after: int, limit: int
    ) -> tuple[list[str], int]:
        by_modified = [s.get("propertyName") for s in sorts] == ["lastmodifieddate"] and all(
            s.get("direction", "ASCENDING") == "ASCENDING" for s in sorts
        )
        if by_modified and len(groups) == 1:
            lower = [
                f
                for f in groups[0].get("filters") or []
                if f.get("propertyName") == "lastmodifieddate"
                and f.get("operator") in ("GT", "GTE")
            ]
            if lower:
                # the pull's query: from the cursor on, in modification order, without a scan
                bound = milliseconds_of(str(lower[0]["value"]))
                start = (
                    bisect.bisect_right(self.modified, (bound, float("inf"), ""))
                    if lower[0]["operator"] == "GT"
                    else bisect.bisect_left(self.modified, (bound, 0, ""))
                )
                rest = [f for f in groups[0]["filters"] if f is not lower[0]]
                if not rest:
                    page = self.modified[start + after : start + after + limit]
                    return [contact_id for _ms, _n, contact_id in page], len(self.modified) - start
                candidates = [key[2] for key in self.modified[start:]]
                found = [i for i in candidates if self._passes(self.contacts[i], rest)]
                return found[after : after + limit], len(found)
        found = [i for i, c in self.contacts.items() if self._passes_any(c, groups)]
        for order in reversed(sorts):
            name = order.get("propertyName", "")
            found.sort(
                key=lambda i, name=name: self._sort_value(self.contacts[i], name),
                reverse=order.get("direction") == "DESCENDING",
            )
        return found[after : after + limit], len(found)

    def _sort_value(self, contact: dict[str, Any], name: str) -> Any:
        if name in ("lastmodifieddate", "createdate"):
            return milliseconds_of(contact["properties"][name])
        return contact["properties"].get(name) or ""

    def _passes_any(self, contact: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        return not groups or any(self._passes(contact, g.get("filters") or []) for g in groups)

    def _passes(self, contact: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
        return all(self._passes_one(contact, f) for f in filters)

    def _passes_one(self, contact: dict[str, Any], condition: dict[str, Any]) -> bool:
        name, operator = condition.get("propertyName", ""), condition.get("operator", "EQ")
        value = contact["properties"].get(name)
        if operator == "HAS_PROPERTY":
            return bool(value)
        if operator == "NOT_HAS_PROPERTY":
            return not value
        wanted: Any = condition.get("value")
        if name in ("lastmodifieddate", "createdate"):
            value, wanted = milliseconds_of(value), milliseconds_of(str(wanted))
        elif isinstance(value, str):
            value, wanted = value.lower(), str(wanted).lower()
        comparisons: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b,
            "NEQ": lambda a, b: a != b,
            "GT": lambda a, b: a is not None and a > b,
            "GTE": lambda a, b: a is not None and a >= b,
            "LT": lambda a, b: a is not None and a < b,
            "LTE": lambda a, b: a is not None and a <= b,
        }
        if operator not in comparisons:
            raise ValueError(f"Unsupported operator {operator}")
        return comparisons[operator](value, wanted)

    # -- owners ------------------------------------------------------------------------------
    def owner(self, key: str, query: dict[str, list[str]]) -> Response:
        id_property = (query.get("idProperty") or ["id"])[0]
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        for owner in self.owners.values():
            found = owner["id"] if id_property == "id" else str(owner["userId"])
            if found == key and owner["archived"] == archived:
                return Response(200, owner)
        return error(404, f"Owner {key} not found", category="OBJECT_NOT_FOUND")

    def owners_page(self, query: dict[str, list[str]]) -> Response:
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        email = (query.get("email") or [""])[0].lower()
        limit = min(int((query.get("limit") or ["100"])[0]), 500)
        after = int((query.get("after") or ["0"])[0])
        found = [
            owner
            for owner in self.owners.values()
            if owner["archived"] == archived and (not email or owner["email"] == email)
        ]
        answer: dict[str, Any] = {"results": found[after : after + limit]}
        if after + limit < len(found):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, answer)

    # -- communication preferences (v3) --------------------------------------------------------
    def definitions(self) -> Response:
        definitions = [
            {
                "id": subscription_id,
                "name": name,
                "description": name,
                "purpose": "Marketing",
                "communicationMethod": "Email",
                "isActive": True,
                "isDefault": False,
                "isInternal": False,
                "createdAt": iso(0),
                "updatedAt": iso(0),
            }
            for subscription_id, name in self.subscriptions.items()
        ]
        return Response(200, {"subscriptionDefinitions": definitions})

    def _status(self, email: str, subscription_id: str) -> dict[str, Any]:
        status = self.statuses.get(email, {}).get(subscription_id) or {"status": "NOT_SUBSCRIBED"}
        return {
            "id": subscription_id,
            "name": self.subscriptions[subscription_id],
            "description": self.subscriptions[subscription_id],
            "status": status["status"],
            "sourceOfStatus": "SUBSCRIPTION_STATUS",
            "legalBasis": status.get("legalBasis"),
            "legalBasisExplanation": status.get("legalBasisExplanation"),
        }

    def email_status(self, email: str) -> Response:
        email = email.lower()
        statuses = [self._status(email, subscription_id) for subscription_id in self.subscriptions]
        return Response(200, {"recipient": email, "subscriptionStatuses": statuses})

    def set_status(self, body: Any, subscribe: bool) -> Response:
        body = body or {}
        email = str(body.get("emailAddress") or "").lower()
        subscription_id = str(body.get("subscriptionId") or "")
        legal_basis = body.get("legalBasis")
        if not EMAIL.match(email):
            return error(400, f"Email address {email} is invalid")
        if subscription_id not in self.subscriptions:
            return error(400, f"Subscription {subscription_id} does not exist")
        if legal_basis is not None and legal_basis not in LEGAL_BASES:
            return error(400, f"legalBasis {legal_basis} is not one of {sorted(LEGAL_BASES)}")
        if email in self.gdpr_deleted:
            return error(400, f"{email} was permanently deleted (GDPR)")
        current = self.statuses.get(email, {}).get(subscription_id) or {}
        if subscribe and current.get("status") == "SUBSCRIBED":
            return error(400, f"{email} is already subscribed to subscription {subscription_id}")
        if not subscribe and current.get("optedOut"):
            return error(
                400, f"{email} is already unsubscribed from subscription {subscription_id}"
            )
        if subscribe and current.get("optedOut"):
            # v3 cannot resubscribe a contact who opted out (v4 can)
            return error(
                400,
                f"{email} has opted out of subscription {subscription_id} "
                "and cannot be resubscribed with this API",
            )
        self.statuses.setdefault(email, {})[subscription_id] = {
            "status": "SUBSCRIBED" if subscribe else "NOT_SUBSCRIBED",
            "optedOut": not subscribe,
            "legalBasis": legal_basis,
            "legalBasisExplanation": body.get("legalBasisExplanation"),
        }
        contact_id = self.ids_by_email.get(email)
        if contact_id is not None:
            # HubSpot mirrors each opt-out in a read-only contact property, which moves the
            # contact's lastmodifieddate: how a pull sees subscription changes
            self._write(contact_id, email, {f"{OPT_OUT}{subscription_id}": _text(not subscribe)})
        return Response(200, self._status(email, subscription_id))

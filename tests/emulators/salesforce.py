"""An in-memory Salesforce REST API over TLS: what simple-salesforce 1.12 calls.

simple-salesforce only speaks https, so the emulator serves TLS with a throwaway certificate
made at start for 127.0.0.1 and localhost (`certificate`: the PEM file a client must trust,
e.g. `REQUESTS_CA_BUNDLE` or a `requests.Session` with `verify=` it). Session auth: a bearer
session id.

Under `/services/data/vXX.X/`:
- `composite/sobjects` PATCH: sObject Collections update, each record by its `Id` (at most
  200; a record gone answers ENTITY_IS_DELETED);
- `composite/sobjects/{type}/{external id field}` PATCH: sObject Collections upsert (at most
  200 records, `allOrNone`, a result per record with its errors);
- `sobjects/{type}` POST, `sobjects/{type}/{id}` GET/PATCH/DELETE,
  `sobjects/{type}/{external id field}/{value}` GET/PATCH (upsert);
- `query?q=` and `query/{locator}` (`nextRecordsUrl` paging, 2,000 a page) for the one SOQL
  shape the pull needs: `SELECT fields FROM type [WHERE field op literal]
  [ORDER BY field [ASC|DESC]] [LIMIT n]`, `op` also `IN ('a', 'b')`; anything else is
  refused (MALFORMED_QUERY).

Field history (`history_tracked`, off by default as in an org): a change of a tracked field of
a Contact or Lead adds a ContactHistory / LeadHistory row (CreatedDate, Field, OldValue,
NewValue), which `SELECT fields FROM ContactHistory WHERE Field = '...' AND ContactId IN
('...', ...) [ORDER BY CreatedDate [ASC|DESC]]` reads (LeadHistory with LeadId).

Types: Contact, Lead (both with an `OwnerId`), User, Account, Individual, DataUsePurpose and
ContactPointTypeConsent, with
their required fields, references (by id, or by external id through the relationship name,
e.g. `"Party": {"ConsentDesk_Id__c": "..."}`) and restricted picklists. `SystemModstamp`
moves only when a value changes, so a replayed upsert leaves the state identical.
"""

import bisect
import datetime as dt
import ipaddress
import itertools
import json
import re
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.emulators import EmulatorServer, Response, Throttle

COLLECTION_LIMIT = 200
QUERY_BATCH = 2000
EXTERNAL_ID = "ConsentDesk_Id__c"
COMMON = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"}
SCHEMA: dict[str, dict[str, Any]] = {
    "Contact": {
        "prefix": "003",
        "required": {"LastName"},
        "fields": {
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "MobilePhone",
            "Title",
            "Department",
            "MailingCountry",
            "MailingCity",
            "MailingPostalCode",
            "MailingStreet",
            "AccountId",
            "IndividualId",
            "HasOptedOutOfEmail",
            "DoNotCall",
            "LeadSource",
            "Description",
            EXTERNAL_ID,
            "OwnerId",
        },
        "references": {"AccountId": "Account", "IndividualId": "Individual", "OwnerId": "User"},
    },
    "Lead": {
        "prefix": "00Q",
        "required": {"LastName", "Company"},
        "fields": {
            "FirstName",
            "LastName",
            "Company",
            "Email",
            "Phone",
            "Title",
            "Country",
            "Status",
            "HasOptedOutOfEmail",
            "IsConverted",
            "ConvertedContactId",
            "ConvertedDate",
            "IndividualId",
            "LeadSource",
            EXTERNAL_ID,
            "OwnerId",
        },
        "references": {
            "ConvertedContactId": "Contact",
            "IndividualId": "Individual",
            "OwnerId": "User",
        },
    },
    # the org's users: who owns the records (OwnerId), and their addresses
    "User": {
        "prefix": "005",
        "required": {"LastName", "Email", "Username"},
        "fields": {"FirstName", "LastName", "Email", "Username", "IsActive"},
        "references": {},
    },
    "Account": {"prefix": "001", "required": {"Name"}, "fields": {"Name"}, "references": {}},
    "Individual": {
        "prefix": "0PK",
        "required": {"LastName"},
        "fields": {
            "FirstName",
            "LastName",
            "HasOptedOutTracking",
            "HasOptedOutSolicit",
            EXTERNAL_ID,
        },
        "references": {},
    },
    "DataUsePurpose": {
        "prefix": "0dP",
        "required": {"Name"},
        "fields": {"Name", "Description", "CanDataSubjectOptOut"},
        "references": {},
    },
    "ContactPointTypeConsent": {
        "prefix": "0ZY",
        "required": {"Name", "PartyId"},
        "fields": {
            "Name",
            "PartyId",
            "DataUsePurposeId",
            "PrivacyConsentStatus",
            "EffectiveFrom",
            "EffectiveTo",
            "CaptureDate",
            "CaptureSource",
            "CaptureContactPointType",
            "ContactPointType",
            "DoubleConsentCaptureDate",
            EXTERNAL_ID,
        },
        "references": {"PartyId": "Individual", "DataUsePurposeId": "DataUsePurpose"},
    },
}
PICKLISTS = {
    "PrivacyConsentStatus": {"OptIn", "OptOut", "Seen", "NotSeen"},
    "ContactPointType": {"Email", "Phone", "MailingAddress", "Web", "Social"},
    "CaptureContactPointType": {"Email", "Phone", "MailingAddress", "Web", "Social"},
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATETIME_FIELDS = {"SystemModstamp", "LastModifiedDate", "CreatedDate"}
DATETIME_INPUTS = {"EffectiveFrom", "EffectiveTo", "CaptureDate", "DoubleConsentCaptureDate"}
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:?\d\d)$")
BOOLEANS = {
    "HasOptedOutOfEmail",
    "DoNotCall",
    "IsConverted",
    "HasOptedOutTracking",
    "HasOptedOutSolicit",
    "IsActive",
}
SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<type>\w+)"
    r"(?:\s+WHERE\s+(?P<field>\w+)\s*(?P<op>>=|<=|!=|=|>|<|IN\b)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\((?:\s*'(?:[^'\\]|\\.)*'\s*,?)*\)|\S+))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<direction>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE,
)
API = re.compile(r"^/services/data/v\d+\.\d+/(?P<rest>.*)$")
# the field history objects: their parent's type and reference field
HISTORY_TYPES = {"ContactHistory": ("Contact", "ContactId"), "LeadHistory": ("Lead", "LeadId")}
HISTORY_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<type>\w+History)"
    r"\s+WHERE\s+Field\s*=\s*'(?P<field>\w+)'\s+AND\s+(?P<parent>\w+)\s+IN\s*\((?P<ids>[^)]*)\)"
    r"(?:\s+ORDER\s+BY\s+CreatedDate(?:\s+(?P<direction>ASC|DESC))?)?\s*$",
    re.IGNORECASE,
)


def stamp(milliseconds: int) -> str:
    """Salesforce's datetime format: 2026-11-26T08:00:00.000+0000."""
    moment = dt.datetime.fromtimestamp(milliseconds / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}+0000"


def milliseconds_of(value: str) -> int:
    return int(dt.datetime.fromisoformat(value).timestamp() * 1000)


def errors(status: int, message: str, code: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code}])


def wrong_type(name: str, value: Any) -> bool:
    if name in DATETIME_INPUTS:
        return value is not None and not DATETIME.match(str(value))
    return name in BOOLEANS and not isinstance(value, bool)


def record_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


class SalesforceEmulator(EmulatorServer):
    scheme = "https"

    def __init__(
        self,
        *,
        session_id: str = "00Dsalesforce!test-session",
        keep_bodies: bool = True,
        clock: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(keep_bodies=keep_bodies)
        self.session_id = session_id
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.query_batch = QUERY_BATCH
        self.throttle_status = 403
        self.retry_after = "1"
        self.api_calls = 0
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMA}
        # external id -> record id, per type: upserts and references find records at once
        self.external: dict[str, dict[Any, str]] = {name: {} for name in SCHEMA}
        self.modified: dict[str, list[tuple[int, int, str]]] = {name: [] for name in SCHEMA}
        self.modified_key: dict[str, tuple[int, int, str]] = {}
        self.cursors: dict[str, tuple[str, list[str], list[str]]] = {}
        # Setup > Field History Tracking: the fields whose changes are kept, by type
        self.history_tracked: dict[str, set[str]] = {"Contact": set(), "Lead": set()}
        self.field_history: dict[str, list[dict[str, Any]]] = {name: [] for name in HISTORY_TYPES}
        self.numbers = itertools.count(1)
        self.folder = Path(tempfile.mkdtemp(prefix="salesforce-emulator-"))
        self.certificate, self.key = self._make_certificate()

    # -- TLS ---------------------------------------------------------------------------------
    def _make_certificate(self) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        certificate_file = self.folder / "certificate.pem"
        key_file = self.folder / "key.pem"
        certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return certificate_file, key_file

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context

    # -- test helpers ------------------------------------------------------------------------
    def rate_limit(
        self, *, ratio: float = 0.0, seed: int = 0, per_second: int | None = None, status: int = 403
    ) -> None:
        """Refuse a seeded share of calls and/or those beyond a rate: 403 REQUEST_LIMIT_EXCEEDED
        (the API request limit), or 503/429 with Retry-After (too busy for now)."""
        self.throttle = Throttle(ratio=ratio, seed=seed, per_second=per_second)
        self.throttle_status = status

    def throttled(self) -> Response:
        if self.throttle_status == 403:
            return errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
        response = errors(
            self.throttle_status, "Server is busy, try again later.", "SERVER_UNAVAILABLE"
        )
        response.headers["Retry-After"] = self.retry_after
        return response

    def insert(self, sobject: str, fields: dict[str, Any]) -> str:
        """Create a record as a Salesforce user would; its id."""
        with self.lock:
            problem = self._problems(sobject, fields, creating=True)
            assert not problem, problem
            return self._write(sobject, None, fields)[0]

    def find(self, sobject: str, **where: Any) -> list[dict[str, Any]]:
        """The stored records of a type whose fields have these values."""
        with self.lock:
            return [
                dict(record)
                for record in self.records[sobject].values()
                if all(record.get(name) == value for name, value in where.items())
            ]

    def snapshot(self) -> str:
        with self.lock:
            return json.dumps(self.records, sort_keys=True)

    # -- routing -----------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
        response = super().answer(method, target, headers, raw)
        with self.lock:
            self.api_calls += 1
            response.headers.setdefault("Sforce-Limit-Info", f"api-usage={self.api_calls}/100000")
        return response

    def authenticate(self, headers: Any) -> Response | None:
        if headers.get("Authorization") == f"Bearer {self.session_id}":
            return None
        return errors(401, "Session expired or invalid", "INVALID_SESSION_ID")

    def malformed(self, message: str) -> Response:
        return errors(400, message, "JSON_PARSER_ERROR")

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        match = API.match(path)
        if match is None:
            return errors(404, "The requested resource does not exist", "NOT_FOUND")
        parts = [unquote(part) for part in match["rest"].strip("/").split("/")]
        if parts[0] == "query" and method == "GET":
            if len(parts) == 2:
                return self.query_more(parts[1])
            return self.query((query.get("q") or [""])[0])
        if parts[:2] == ["composite", "sobjects"] and len(parts) == 4 and method == "PATCH":
            return self.collection_upsert(parts[2], parts[3], body)
        if parts == ["composite", "sobjects"] and method == "PATCH":
            return self.collection_update(body)
        if parts[0] == "sobjects" and len(parts) >= 2:
            if parts[1] not in SCHEMA:
                return errors(
                    404, f"The requested resource does not exist: {parts[1]}", "NOT_FOUND"
                )
            return self.sobject(method, parts[1], parts[2:], body)
        return errors(404, "The requested resource does not exist", "NOT_FOUND")

    # -- records -----------------------------------------------------------------------------
    def _new_id(self, sobject: str) -> str:
        return f"{SCHEMA[sobject]['prefix']}{next(self.numbers):012d}AAA"

    def _problems(
        self, sobject: str, fields: dict[str, Any], *, creating: bool
    ) -> list[dict[str, Any]]:
        """What Salesforce would refuse in these fields (after references are resolved)."""
        schema = SCHEMA[sobject]
        found = []
        for name, value in fields.items():
            if name not in schema["fields"]:
                found.append(
                    record_error(
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type {sobject}",
                        [name],
                    )
                )
            elif name in PICKLISTS and value is not None and value not in PICKLISTS[name]:
                found.append(
                    record_error(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"bad value for restricted picklist field: {value}",
                        [name],
                    )
                )
            elif wrong_type(name, value):
                found.append(
                    record_error(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{name}: value not of required type: {value}",
                        [name],
                    )
                )
            elif name == "Email" and value and not EMAIL.match(str(value)):
                found.append(
                    record_error(
                        "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}", [name]
                    )
                )
            elif (
                name in schema["references"]
                and value
                and value not in self.records[schema["references"][name]]
            ):
                found.append(
                    record_error(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"invalid cross reference id: {value}",
                        [name],
                    )
                )
        missing = sorted(
            name
            for name in schema["required"]
            if fields.get(name) in (None, "") and (creating or name in fields)
        )
        if missing:
            found.append(
                record_error(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )
        return found

    def _resolve(
        self, sobject: str, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Turn relationship references by external id into ids."""
        resolved, found = {}, []
        references = {name[:-2]: target for name, target in SCHEMA[sobject]["references"].items()}
        for name, value in fields.items():
            if name == "attributes":
                continue
            if name in references and isinstance(value, dict):
                target = references[name]
                [(key, wanted)] = value.items()
                match = self._by_external_id(target, key, wanted)
                if match is None:
                    found.append(
                        record_error(
                            "INVALID_FIELD",
                            f"Foreign key external ID: {wanted} not found for field {key} "
                            f"in entity {target}",
                            [f"{name}Id"],
                        )
                    )
                    continue
                resolved[f"{name}Id"] = match
            else:
                resolved[name] = value
        return resolved, found

    def _write(
        self, sobject: str, record_id: str | None, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        """Create or change a record; its SystemModstamp moves only when a value changes."""
        created = record_id is None
        if record_id is None:
            record_id = self._new_id(sobject)
            self.records[sobject][record_id] = {
                "Id": record_id,
                "CreatedDate": stamp(self.clock()),
                "IsDeleted": False,
            }
        record = self.records[sobject][record_id]
        changed = {name: value for name, value in fields.items() if record.get(name) != value}
        if not created:
            self._track(sobject, record, changed)
        if changed or created:
            if EXTERNAL_ID in changed:
                self.external[sobject].pop(record.get(EXTERNAL_ID), None)
                self.external[sobject][changed[EXTERNAL_ID]] = record_id
            record.update(changed)
            self._touch(sobject, record_id)
        return record_id, created

    def _track(self, sobject: str, record: dict[str, Any], changed: dict[str, Any]) -> None:
        """A history row for each tracked field changed (before the record takes the values)."""
        tracked = self.history_tracked.get(sobject, set())
        for history, (parent, reference) in HISTORY_TYPES.items():
            if parent != sobject:
                continue
            for name in sorted(tracked & set(changed)):
                self.field_history[history].append(
                    {
                        "Id": f"017{next(self.numbers):012d}AAA",
                        reference: record["Id"],
                        "Field": name,
                        "OldValue": record.get(name),
                        "NewValue": changed[name],
                        "CreatedDate": stamp(self.clock()),
                    }
                )

    def _touch(self, sobject: str, record_id: str) -> None:
        now = self.clock()
        index = self.modified[sobject]
        old = self.modified_key.pop(record_id, None)
        if old is not None:
            del index[bisect.bisect_left(index, old)]
        key = (now, next(self.numbers), record_id)
        self.modified_key[record_id] = key
        bisect.insort(index, key)
        record = self.records[sobject][record_id]
        record["SystemModstamp"] = record["LastModifiedDate"] = stamp(now)

    def _by_external_id(self, sobject: str, field: str, value: Any) -> str | None:
        if field == EXTERNAL_ID:
            return self.external[sobject].get(value)
        if field == "Id":
            return value if value in self.records[sobject] else None
        for record_id, record in self.records[sobject].items():
            if record.get(field) == value:
                return record_id
        return None

    def collection_update(self, body: Any) -> Response:
        """sObject Collections update: records of any type, each by its Id (a record gone
        answers ENTITY_IS_DELETED, an external id another record holds DUPLICATE_VALUE)."""
        records = (body or {}).get("records")
        if not isinstance(records, list) or not records:
            return errors(400, "records: a non-empty list is required", "JSON_PARSER_ERROR")
        if len(records) > COLLECTION_LIMIT:
            return errors(
                400,
                f"EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than "
                f"{COLLECTION_LIMIT} records into this call",
                "EXCEEDED_ID_LIMIT",
            )
        results: list[dict[str, Any]] = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            record_id = record.get("Id")
            if sobject not in SCHEMA:
                results.append(
                    {"success": False, "errors": [record_error("INVALID_TYPE", f"{sobject}")]}
                )
                continue
            if record_id not in self.records[sobject]:
                gone = record_error("ENTITY_IS_DELETED", "entity is deleted", [])
                results.append({"id": record_id, "success": False, "errors": [gone]})
                continue
            fields, found = self._resolve(sobject, {k: v for k, v in record.items() if k != "Id"})
            found += self._problems(sobject, fields, creating=False)
            holder = self.external[sobject].get(fields.get(EXTERNAL_ID))
            if EXTERNAL_ID in fields and holder not in (None, record_id):
                found.append(
                    record_error(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {EXTERNAL_ID} duplicates value on record "
                        f"with id: {holder}",
                        [EXTERNAL_ID],
                    )
                )
            if found:
                results.append({"id": record_id, "success": False, "errors": found})
                continue
            self._write(sobject, record_id, fields)
            results.append({"id": record_id, "success": True, "errors": []})
        return Response(200, results)

    def collection_upsert(self, sobject: str, field: str, body: Any) -> Response:
        if sobject not in SCHEMA:
            return errors(404, f"The requested resource does not exist: {sobject}", "NOT_FOUND")
        # by an external id field only: Salesforce refuses record ids here
        if field not in SCHEMA[sobject]["fields"] or field != EXTERNAL_ID:
            return errors(
                404,
                f"Provided external ID field does not exist or is not accessible: {field}",
                "NOT_FOUND",
            )
        records = (body or {}).get("records")
        if not isinstance(records, list) or not records:
            return errors(400, "records: a non-empty list is required", "JSON_PARSER_ERROR")
        if len(records) > COLLECTION_LIMIT:
            return errors(
                400,
                f"EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than "
                f"{COLLECTION_LIMIT} records into this call",
                "EXCEEDED_ID_LIMIT",
            )
        keys = [record.get(field) for record in records]
        counts = Counter(keys)
        plans: list[tuple[str | None, dict[str, Any], list[dict[str, Any]]]] = []
        for record, key in zip(records, keys, strict=True):
            kind = (record.get("attributes") or {}).get("type")
            fields, found = self._resolve(sobject, record)
            if kind != sobject:
                found.append(
                    record_error("INVALID_TYPE", f"Record type {kind} does not match {sobject}")
                )
            if key in (None, ""):
                found.append(record_error("MISSING_ARGUMENT", f"{field} not specified", [field]))
            elif counts[key] > 1:
                found.append(
                    record_error(
                        "DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [field]
                    )
                )
            record_id = self._by_external_id(sobject, field, key)
            found += self._problems(sobject, fields, creating=record_id is None)
            plans.append((record_id, fields, found))
        if body.get("allOrNone") and any(found for _id, _fields, found in plans):
            rolled = record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
            )
            return Response(
                200,
                [{"success": False, "errors": found or [rolled]} for _id, _fields, found in plans],
            )
        results = []
        for record_id, fields, found in plans:
            if found:
                results.append({"success": False, "errors": found})
                continue
            written_id, created = self._write(sobject, record_id, fields)
            results.append({"id": written_id, "success": True, "errors": [], "created": created})
        return Response(200, results)

    def sobject(self, method: str, sobject: str, rest: list[str], body: Any) -> Response:
        if not rest and method == "POST":
            fields, found = self._resolve(sobject, body or {})
            found += self._problems(sobject, fields, creating=True)
            if found:
                return Response(
                    400,
                    [
                        {
                            "message": e["message"],
                            "errorCode": e["statusCode"],
                            "fields": e["fields"],
                        }
                        for e in found
                    ],
                )
            record_id, _created = self._write(sobject, None, fields)
            return Response(201, {"id": record_id, "success": True, "errors": []})
        if len(rest) == 2:  # by external id
            field, value = rest
            record_id = self._by_external_id(sobject, field, value)
            if method == "GET":
                return self._get(sobject, record_id)
            if method == "PATCH":
                fields, found = self._resolve(sobject, {**(body or {}), field: value})
                found += self._problems(sobject, fields, creating=record_id is None)
                if found:
                    return Response(
                        400,
                        [
                            {
                                "message": e["message"],
                                "errorCode": e["statusCode"],
                                "fields": e["fields"],
                            }
                            for e in found
                        ],
                    )
                written_id, created = self._write(sobject, record_id, fields)
                return Response(
                    201 if created else 200,
                    {"id": written_id, "success": True, "errors": [], "created": created},
                )
        if len(rest) == 1:
            record_id = rest[0] if rest[0] in self.records[sobject] else None
            if method == "GET":
                return self._get(sobject, record_id)
            if record_id is None:
                return errors(404, "The requested resource does not exist", "NOT_FOUND")
            if method == "DELETE":
                removed = self.records[sobject].pop(record_id)
                self.external[sobject].pop(removed.get(EXTERNAL_ID), None)
                key = self.modified_key.pop(record_id)
                del self.modified[sobject][bisect.bisect_left(self.modified[sobject], key)]
                return Response(204)
            if method == "PATCH":
                fields, found = self._resolve(sobject, body or {})
                found += self._problems(sobject, fields, creating=False)
                if found:
                    return Response(
                        400,
                        [
                            {
                                "message": e["message"],
                                "errorCode": e["statusCode"],
                                "fields": e["fields"],
                            }
                            for e in found
                        ],
                    )
                self._write(sobject, record_id, fields)
                return Response(204)
        return errors(405, f"HTTP Method '{method}' not allowed here", "METHOD_NOT_ALLOWED")

    def _get(self, sobject: str, record_id: str | None) -> Response:
        if record_id is None:
            return errors(404, "The requested resource does not exist", "NOT_FOUND")
        return Response(200, self._shaped(sobject, self.records[sobject][record_id], None))

    def _shaped(
        self, sobject: str, record: dict[str, Any], names: list[str] | None
    ) -> dict[str, Any]:
        attributes = {
            "type": sobject,
            "url": f"/services/data/v59.0/sobjects/{sobject}/{record['Id']}",
        }
        if names is None:
            names = sorted(COMMON | SCHEMA[sobject]["fields"])
        return {"attributes": attributes, **{name: record.get(name) for name in names}}

    # -- SOQL --------------------------------------------------------------------------------
    def query(self, soql: str) -> Response:
        history = HISTORY_SOQL.match(soql)
        if history is not None:
            return self.history_query(history)
        match = SOQL.match(soql)
        if match is None:
            return errors(
                400,
                "This emulator reads only SELECT fields FROM type [WHERE field op literal] "
                "[ORDER BY field [ASC|DESC]] [LIMIT n]",
                "MALFORMED_QUERY",
            )
        sobject = next((name for name in SCHEMA if name.lower() == match["type"].lower()), None)
        if sobject is None:
            return errors(400, f"sObject type '{match['type']}' is not supported.", "INVALID_TYPE")
        known = COMMON | SCHEMA[sobject]["fields"]
        names = [name.strip() for name in match["fields"].split(",")]
        for name in [*names, match["field"], match["order"]]:
            if name and name not in known:
                return errors(
                    400, f"No such column '{name}' on entity '{sobject}'.", "INVALID_FIELD"
                )
        try:
            ids = self._select(sobject, match)
        except ValueError as problem:
            return errors(400, str(problem), "MALFORMED_QUERY")
        return self._page(sobject, names, ids, len(ids), f"01g{next(self.numbers):015d}")

    def history_query(self, match: re.Match[str]) -> Response:
        """The field history rows of some records for one field, in one page."""
        history = next(
            (name for name in HISTORY_TYPES if name.lower() == match["type"].lower()), None
        )
        if history is None:
            return errors(400, f"sObject type '{match['type']}' is not supported.", "INVALID_TYPE")
        reference = HISTORY_TYPES[history][1]
        known = {"Id", reference, "Field", "OldValue", "NewValue", "CreatedDate"}
        names = [name.strip() for name in match["fields"].split(",")]
        for name in [*names, match["parent"]]:
            if name not in known:
                return errors(
                    400, f"No such column '{name}' on entity '{history}'.", "INVALID_FIELD"
                )
        ids = {part.strip().strip("'") for part in match["ids"].split(",") if part.strip()}
        rows = [
            row
            for row in self.field_history[history]
            if row["Field"] == match["field"] and row[match["parent"]] in ids
        ]
        rows.sort(
            key=lambda row: milliseconds_of(row["CreatedDate"]),
            reverse=(match["direction"] or "").upper() == "DESC",
        )
        records = [
            {
                "attributes": {
                    "type": history,
                    "url": f"/services/data/v59.0/sobjects/{history}/{row['Id']}",
                },
                **{name: row.get(name) for name in names},
            }
            for row in rows
        ]
        return Response(200, {"totalSize": len(records), "done": True, "records": records})

    def _select(self, sobject: str, match: re.Match[str]) -> list[str]:
        field, op, literal = match["field"], match["op"], match["value"]
        order, descending = match["order"], (match["direction"] or "").upper() == "DESC"
        limit = int(match["limit"]) if match["limit"] else None
        if (
            field == "SystemModstamp"
            and op in (">", ">=")
            and order in (None, "SystemModstamp")
            and not descending
        ):
            # the pull's query: from the cursor on, in modification order, without a scan
            bound = milliseconds_of(literal)
            index = self.modified[sobject]
            start = (
                bisect.bisect_right(index, (bound, float("inf"), ""))
                if op == ">"
                else bisect.bisect_left(index, (bound, 0, ""))
            )
            stop = len(index) if limit is None else start + limit
            return [record_id for _ms, _n, record_id in index[start:stop]]
        records = self.records[sobject]
        ids = [
            i
            for i, record in records.items()
            if field is None or self._compare(record.get(field), op, literal, field)
        ]
        if order:
            ids.sort(
                key=lambda i: (records[i].get(order) is None, records[i].get(order) or ""),
                reverse=descending,
            )
        return ids[:limit] if limit is not None else ids

    def _compare(self, value: Any, op: str, literal: str, field: str) -> bool:
        wanted: Any
        if op.upper() == "IN":
            if not literal.startswith("("):
                raise ValueError(f"IN needs a list of literals, not {literal}")
            listed = re.findall(r"'((?:[^'\\]|\\.)*)'", literal)
            return value in [item.replace("\\'", "'") for item in listed]
        if literal.startswith("'"):
            wanted = literal[1:-1].replace("\\'", "'")
        elif literal.lower() in ("true", "false", "null"):
            wanted = {"true": True, "false": False, "null": None}[literal.lower()]
        elif field in DATETIME_FIELDS:
            wanted, value = milliseconds_of(literal), milliseconds_of(value) if value else None
        else:
            raise ValueError(f"unexpected literal {literal}")
        if op in ("=", "!="):
            return (value == wanted) is (op == "=")
        if value is None or wanted is None:
            return False
        return {
            ">": value > wanted,
            ">=": value >= wanted,
            "<": value < wanted,
            "<=": value <= wanted,
        }[op]

    def _page(
        self, sobject: str, names: list[str], ids: list[str], total: int, locator: str
    ) -> Response:
        page, rest = ids[: self.query_batch], ids[self.query_batch :]
        records = [
            self._shaped(sobject, self.records[sobject][i], names)
            for i in page
            if i in self.records[sobject]
        ]
        answer: dict[str, Any] = {"totalSize": total, "done": not rest, "records": records}
        if rest:
            offset = total - len(rest)
            self.cursors[f"{locator}-{offset}"] = (sobject, names, rest)
            answer["nextRecordsUrl"] = f"/services/data/v59.0/query/{locator}-{offset}"
        return Response(200, answer)

    def query_more(self, cursor: str) -> Response:
        found = self.cursors.pop(cursor, None)
        if found is None:
            return errors(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
        sobject, names, ids = found
        locator = cursor.rsplit("-", 1)[0]
        total = int(cursor.rsplit("-", 1)[1]) + len(ids)
        return self._page(sobject, names, ids, total, locator)

"""Contact imports (SPEC §3 contacts): CSV or XLSX lists loaded in batches, resumable.

`contacts_import` checks a list and its declared consent up front and queues it;
`contact_import_run` (the worker's task, or the command synchronously) loads it in batches of
`BATCH_SIZE` rows, each batch in one transaction with the import's counters and its resume
position, so that a killed worker is resumed exactly where it stopped.

Rules, per row (the line is the file's: the header is line 1):
- the email is normalised; every row is checked (fields, interests, consent evidence) and a bad
  row is rejected with its line and reason, without holding back the others;
- a suppressed email or phone is rejected with the reason (an import never lifts a
  suppression, so an erased person is never re-created), and so is an erased contact;
- existing contacts are updated, never duplicated; an empty cell changes nothing; interests
  listed are added to the contact's own (an import never removes a choice);
- one email on several lines of the file is one contact: the later line's values win, as an
  update of the earlier one, and each line's consent is recorded (once per date and wording);
- a consent import (a declared purpose and channel) needs, for every row, the date the person
  consented and the wording they were shown, with its source: from the row's columns or from
  the declaration; a declaration with neither wording nor source is refused up front
  (purchased lists without proof are refused);
- grants are recorded through `consents_record_many` (source kind `import`); on a double
  opt-in purpose they are pending and each contact gets its confirmation email from its own
  task, queued on commit;
- re-importing a file creates nothing new: contacts match by email, and a grant the ledger
  already holds from an import (same contact, purpose, channel, date and wording) is skipped.

On PostgreSQL a batch's contacts go through `COPY` into a temporary staging table and two
set-based statements (`INSERT ... ON CONFLICT`, `UPDATE ... FROM`); elsewhere they go through
`bulk_create` / `bulk_update`. The rows written are computed once, in Python, for both.
"""

import codecs
import csv
import functools
import hashlib
import io
import re
import unicodedata
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import islice
from typing import IO, Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from consent.models import (
    ConsentAction,
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    Purpose,
    SourceKind,
)
from consent.selectors import purposes_with_versions
from consent.services import ConsentWrite, Evidence, consents_record_many
from consent.services.consents import ConsentWriteErrors, consent_grant_check
from contacts.models import (
    Contact,
    ContactImport,
    ContactStatus,
    ImportRejection,
    ImportStatus,
    Interest,
    Suppression,
    SuppressionKind,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.normalization import normalize_email, suppression_digests_normalized_many
from contacts.services import (
    EDITABLE_FIELDS,
    contact_fields_clean,
    contact_payload,
    creations_record,
    creations_record_sql,
    relationship_errors,
    timeline_add_many,
)
from core.bulk import copy_rows, insert_select_sql
from core.storage import private_storage
from crmsync.models import OutboxEvent, OutboxTopic
from crmsync.services import outbox_emit_many

# Rows per transaction: large enough for set-based statements to pay, small enough for a
# killed worker to lose little (the batch it was in is rolled back and done again) and for a
# batch to stay a few megabytes.
BATCH_SIZE = 10_000
# Values per `IN (...)` list of a look-up (SQLite allows 32,766 parameters in a statement).
LOOKUP_CHUNK = 5000
READ_CHUNK = 1 << 20
XLSX_MAGIC = b"PK\x03\x04"
# The contact fields a list may set: those the API and the admin edit, but the person's own
# choice of frequency (set in the preference center).
CONTACT_FIELDS = tuple(name for name in EDITABLE_FIELDS if name != "frequency")
CONSENT_FIELDS = ("given_at", "consent_wording", "consent_source")
IMPORT_FIELDS = ("email", *CONTACT_FIELDS, "interests", *CONSENT_FIELDS)
DECLARATION_KEYS = ("purpose", "channel", "source_reference", "wording", "given_at_column")
# Headers recognised without a mapping, once lower-cased, unaccented and joined by "_".
ALIASES: dict[str, str] = {
    **{name: name for name in IMPORT_FIELDS},
    **dict.fromkeys(
        ("e_mail", "mail", "courriel", "email_address", "adresse_email", "adresse_e_mail"),
        "email",
    ),
    **dict.fromkeys(("firstname", "prenom", "given_name"), "first_name"),
    **dict.fromkeys(("lastname", "nom", "nom_de_famille", "surname", "family_name"), "last_name"),
    **dict.fromkeys(
        ("telephone", "tel", "mobile", "portable", "phone_number", "numero_de_telephone"),
        "phone",
    ),
    **dict.fromkeys(("societe", "entreprise", "organisation", "organization"), "company"),
    **dict.fromkeys(("title", "fonction", "poste"), "job_title"),
    **dict.fromkeys(
        ("address", "adresse", "address_1", "address_line_1", "adresse_1", "line1"),
        "address_line1",
    ),
    **dict.fromkeys(
        ("address_2", "address_line_2", "adresse_2", "complement_d_adresse", "line2"),
        "address_line2",
    ),
    **dict.fromkeys(("postcode", "zip", "zip_code", "code_postal", "cp"), "postal_code"),
    **dict.fromkeys(("ville", "town"), "city"),
    **dict.fromkeys(("pays", "country_code"), "country"),
    **dict.fromkeys(("langue", "lang"), "language"),
    **dict.fromkeys(("stage", "cycle_de_vie"), "lifecycle_stage"),
    **dict.fromkeys(("origine",), "source"),
    **dict.fromkeys(("professionnel", "professional", "btob"), "b2b"),
    **dict.fromkeys(("relation", "relation_commerciale", "type_de_relation"), "relationship"),
    **dict.fromkeys(("client_depuis", "date_debut_client", "debut_contrat"), "customer_since"),
    **dict.fromkeys(("client_jusqu_au", "date_fin_client", "fin_contrat"), "customer_until"),
    **dict.fromkeys(("centres_d_interet", "interets", "interet"), "interests"),
    **dict.fromkeys(
        (
            "consent_date",
            "consented_at",
            "opt_in_date",
            "date_consentement",
            "date_du_consentement",
            "date_optin",
        ),
        "given_at",
    ),
    **dict.fromkeys(("wording", "texte_du_consentement", "texte_consentement"), "consent_wording"),
    **dict.fromkeys(("consent_reference", "source_du_consentement"), "consent_source"),
}
# A relationship as a French list writes it.
RELATIONSHIP_WORDS = {"client": "customer", "cliente": "customer"}
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")
INTEREST_SEPARATORS = re.compile(r"[,;|]")
PROOF_REQUIRED = gettext_noop(
    "A consent import must carry its proof for every row: the wording shown to the person "
    "and the source of the consent, as columns or in the declaration (purchased lists "
    "without proof are refused)."
)


Records = Generator[tuple[int, list[str]], None, None]
M = TypeVar("M", bound=models.Model)
# The length limit of each contact field an import may fill (the API's serializers check it).
MAX_LENGTHS = {
    name: model_field.max_length
    for name in CONTACT_FIELDS
    if isinstance(model_field := Contact._meta.get_field(name), models.CharField)
    and model_field.max_length is not None
}


@dataclass
class _Inspection:
    sha256: str
    file_format: str
    encoding: str
    delimiter: str


@dataclass
class _Plan:
    """What a run needs, loaded once: columns, the declared consent, the known interests."""

    columns: list[tuple[int, str]]
    purpose: Purpose | None
    channel: str
    wording: str
    source_reference: str
    interests: dict[str, int]
    use_copy: bool = False


@dataclass
class _Row:
    line: int
    email: str
    fields: dict[str, Any]
    interests: list[int]
    consent: tuple[datetime, str, str] | None  # given_at, wording, source


@dataclass
class _Person:
    """The rows of one email in a batch, merged (later values win)."""

    email: str
    rows: list[_Row] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    interests: list[int] = field(default_factory=list)
    # suppression keys of the email and of the phone, computed once for the screening
    email_digests: list[str] = field(default_factory=list)
    phone_digests: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    created: int = 0
    updated: int = 0
    consents: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)


# --- the service: check a list, store it and queue it ----------------------------------------


def contacts_import(
    *,
    file: IO[bytes] | File,
    file_name: str,
    mapping: Mapping[str, str] | None = None,
    consent: Mapping[str, Any] | None = None,
    created_by: Any = None,
    api_client: Any = None,
    queue: bool = True,
) -> ContactImport:
    """Check a CSV or XLSX list with its mapping and declared consent, store it (private
    storage) and, with `queue`, have the worker load it once the transaction commits.

    Refuses up front (ValidationError naming `file`, `mapping` or `consent`) an unreadable
    file, a mapping naming unknown columns or fields, a list without an email column, and a
    consent declared without its proof (wording and source, per row or declared once) or
    without the date each person consented.
    """
    declared, purpose = _declared_consent(consent or {})
    contact_import = ContactImport(
        file_name=(file_name or "")[:255],
        consent=declared,
        language=translation.get_language() or "",
        created_by=created_by,
        api_client=api_client,
    )
    contact_import.file.save(file_name or "import.csv", File(file), save=False)
    try:
        inspection = _inspect(contact_import)
        contact_import.file_sha256 = inspection.sha256
        contact_import.file_format = inspection.file_format
        contact_import.encoding = inspection.encoding
        contact_import.delimiter = inspection.delimiter
        header, rows = _header_and_count(contact_import)
        contact_import.mapping = _resolve_mapping(header, mapping, declared, purpose)
        contact_import.rows = rows
        with transaction.atomic():
            contact_import.save()
            if queue:
                transaction.on_commit(lambda: _queue(contact_import.pk))
    except Exception:
        contact_import.file.delete(save=False)
        raise
    return contact_import


def _queue(contact_import_id: int) -> None:
    from contacts.tasks import run_contact_import

    run_contact_import.delay(contact_import_id)


def _declared_consent(consent: Mapping[str, Any]) -> tuple[dict[str, str], Purpose | None]:
    unknown = sorted(set(consent) - set(DECLARATION_KEYS))
    if unknown:
        raise ValidationError({"consent": [_("Unknown key: %s") % ", ".join(unknown)]})
    declared = {key: str(consent.get(key) or "").strip() for key in DECLARATION_KEYS}
    if not any(declared.values()):
        return {}, None
    errors = []
    if not declared["purpose"] or not declared["channel"]:
        errors.append(_("A declared consent names its purpose and channel."))
        raise ValidationError({"consent": errors})
    purpose = purposes_with_versions().filter(slug=declared["purpose"]).first()
    if purpose is None:
        raise ValidationError({"consent": [_("Unknown purpose: %s") % declared["purpose"]]})
    try:
        consent_grant_check(
            purpose=purpose,
            channel=declared["channel"],
            source_kind=SourceKind.IMPORT,
            # the declaration's own source may be left to a column: checked per row then
            evidence=Evidence(
                wording=declared["wording"] or "-",
                collection_reference=declared["source_reference"] or "-",
            ),
            given_at=timezone.now(),
        )
    except ValidationError as error:
        raise ValidationError({"consent": _messages(error)}) from error
    return declared, purpose


def _inspect(contact_import: ContactImport) -> _Inspection:
    """The file's SHA-256, format, and for a CSV its encoding (UTF-8 with or without BOM,
    else Windows-1252) and delimiter (`;` or `,`, whichever the header line holds more of)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, head, size = True, b"", 0
    with contact_import.file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            if len(head) < 65536:
                head += chunk[:65536]
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if not size:
        raise ValidationError({"file": [_("The file is empty.")]})
    if head.startswith(XLSX_MAGIC):
        return _Inspection(digest.hexdigest(), "xlsx", "", "")
    encoding = "utf-8-sig" if utf8 else "cp1252"
    first_line = head.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()[0:1]
    line = first_line[0] if first_line else ""
    delimiter = ";" if line.count(";") > line.count(",") else ","
    return _Inspection(digest.hexdigest(), "csv", encoding, delimiter)


def _header_and_count(contact_import: ContactImport) -> tuple[list[str], int]:
    with closing(_records(contact_import)) as records:
        first = next(records, None)
        if first is None:
            raise ValidationError({"file": [_("The file has no header line.")]})
        return first[1], sum(1 for _record in records)


def _records(contact_import: ContactImport) -> Records:
    """(line, cells) of every non-blank record, the header first; the line is the file's
    (where the record starts, for a CSV cell spanning lines), the header being line 1."""
    if contact_import.file_format == "xlsx":
        yield from _xlsx_records(contact_import)
        return
    with contact_import.file.open("rb") as handle:
        text = io.TextIOWrapper(
            handle, encoding=contact_import.encoding or "utf-8-sig", errors="replace", newline=""
        )
        reader = csv.reader(text, delimiter=contact_import.delimiter or ",")
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise ValidationError(
                    {"file": [_("Line %(line)d: %(error)s") % {"line": line, "error": error}]}
                ) from error
            if any(cell.strip() for cell in cells):
                yield line, cells


def _xlsx_records(contact_import: ContactImport) -> Records:
    import openpyxl

    with contact_import.file.open("rb") as handle:
        try:
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except Exception as error:  # a zip that is not a workbook fails in many ways
            raise ValidationError({"file": [_("This is not a readable XLSX file.")]}) from error
        try:
            sheet = workbook.worksheets[0]
            for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells = [_cell_text(value) for value in values]
                if any(cell.strip() for cell in cells):
                    yield line, cells
        finally:
            workbook.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number or a postal code typed as a number
    return str(value)


def _header_key(header: str) -> str:
    plain = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def import_mapping_guess(header: Sequence[str]) -> dict[str, str]:
    """{column: field} for the headers named like a field, in French or English (the first
    column of a field wins)."""
    guessed: dict[str, str] = {}
    for column in (cell.strip() for cell in header):
        target = ALIASES.get(_header_key(column))
        if target and column not in guessed and target not in guessed.values():
            guessed[column] = target
    return guessed


@dataclass
class ImportPreview:
    """An uploaded list before its mapping is chosen: its headers and first rows."""

    upload: str  # its name in the private storage
    header: list[str]
    rows: list[list[str]]
    guessed: dict[str, str]


# Lists uploaded in the admin wait here while staff choose their mapping.
UPLOADS = "imports/uploads"


def import_uploads_purge(*, now: datetime | None = None) -> int:
    """Delete the uploads kept for a mapping that nobody finished (older than
    `IMPORT_UPLOAD_TTL`): they hold personal data that serves nothing any more, which an
    erasure could not reach. The number deleted."""
    storage = private_storage()
    cutoff = (now or timezone.now()) - settings.IMPORT_UPLOAD_TTL
    try:
        _folders, names = storage.listdir(UPLOADS)
    except FileNotFoundError:
        return 0
    purged = 0
    for name in names:
        path = f"{UPLOADS}/{name}"
        try:
            if storage.get_modified_time(path) < cutoff:
                storage.delete(path)
                purged += 1
        except FileNotFoundError:  # chosen and imported meanwhile
            continue
    return purged


def import_upload_preview(
    *, file: IO[bytes] | File, file_name: str, rows: int = 5
) -> ImportPreview:
    """Keep an upload (private storage) while staff choose its mapping, with a preview."""
    suffix = ".xlsx" if file_name.lower().endswith(".xlsx") else ".csv"
    upload = private_storage().save(f"{UPLOADS}/{uuid.uuid4()}{suffix}", File(file))
    draft = ContactImport(file=upload)
    try:
        inspection = _inspect(draft)
        draft.file_format, draft.encoding = inspection.file_format, inspection.encoding
        draft.delimiter = inspection.delimiter
        with closing(_records(draft)) as records:
            first = next(records, None)
            if first is None:
                raise ValidationError({"file": [_("The file has no header line.")]})
            header = [cell.strip() for cell in first[1]]
            preview = [cells for _line, cells in islice(records, rows)]
    except Exception:
        private_storage().delete(upload)
        raise
    return ImportPreview(upload, header, preview, import_mapping_guess(header))


def contacts_import_upload(
    *,
    upload: str,
    file_name: str,
    mapping: Mapping[str, str] | None,
    consent: Mapping[str, Any] | None,
    created_by: Any = None,
) -> ContactImport:
    """`contacts_import` of a list kept by `import_upload_preview`, which is then forgotten."""
    storage = private_storage()
    with storage.open(upload, "rb") as handle:
        contact_import = contacts_import(
            file=handle,
            file_name=file_name,
            mapping=mapping,
            consent=consent,
            created_by=created_by,
        )
    storage.delete(upload)
    return contact_import


def _resolve_mapping(
    header: list[str],
    mapping: Mapping[str, str] | None,
    declared: Mapping[str, str],
    purpose: Purpose | None,
) -> dict[str, str]:
    """{column: field} from the given mapping, or guessed from the headers."""
    columns = [cell.strip() for cell in header]
    errors: list[str] = []
    resolved: dict[str, str] = {}
    if mapping:
        for column, target in mapping.items():
            if column not in columns:
                errors.append(_("There is no column “%s” in the file.") % column)
            elif target and target not in IMPORT_FIELDS:
                errors.append(
                    _("Column “%(column)s”: unknown field “%(field)s”.")
                    % {"column": column, "field": target}
                )
            elif target:
                resolved[column] = target
    else:
        resolved = import_mapping_guess(columns)
    given_at_column = declared.get("given_at_column", "")
    if given_at_column:
        if given_at_column not in columns:
            errors.append(_("There is no column “%s” in the file.") % given_at_column)
        resolved = {col: f for col, f in resolved.items() if f != "given_at"}
        resolved[given_at_column] = "given_at"
    targets = list(resolved.values())
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        errors.append(_("The field “%s” is mapped from several columns.") % target)
    if "email" not in targets:
        errors.append(_("No column holds the email address."))
    if errors:
        raise ValidationError({"mapping": errors})
    consent_columns = [t for t in targets if t in CONSENT_FIELDS]
    if purpose is None and consent_columns:
        raise ValidationError(
            {"consent": [_("Consent columns need a declared purpose and channel.")]}
        )
    if purpose is not None:
        proof = []
        if (
            not declared.get("wording")
            and "consent_wording" not in targets
            or not declared.get("source_reference")
            and "consent_source" not in targets
        ):
            proof.append(_(PROOF_REQUIRED))
        if "given_at" not in targets:
            proof.append(
                _("Name the column holding the date each person consented (given_at_column).")
            )
        if proof:
            raise ValidationError({"consent": proof})
    return resolved


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [
            f"{name}: {message}"
            for name, messages in error.message_dict.items()
            for message in messages
        ]
    return list(error.messages)


def _reason(error: ValidationError) -> str:
    return "; ".join(_messages(error))


# --- the run: batches, each in one transaction with the resume position ----------------------


def contact_import_run(
    *,
    contact_import_id: int,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[ContactImport], None] | None = None,
    use_copy: bool | None = None,
) -> ContactImport:
    """Load an import from where it stopped, batch after batch; safe to run twice, even at once
    (a second runner finds the position moved under the import's row lock and leaves).
    `use_copy`: write contacts with COPY and set-based SQL (default: on PostgreSQL) or with
    the portable ORM path.

    Each batch commits its contacts, timeline, outbox events, consents, rejected rows, counters
    and the new position together. An unexpected error marks the import failed with it.
    """
    contact_import = _claim(contact_import_id)
    if contact_import is None:
        return ContactImport.objects.get(pk=contact_import_id)
    with translation.override(contact_import.language or None):
        return _run(contact_import, batch_size, on_batch, use_copy)


def _run(
    contact_import: ContactImport,
    batch_size: int,
    on_batch: Callable[[ContactImport], None] | None,
    use_copy: bool | None,
) -> ContactImport:
    contact_import_id = contact_import.pk
    try:
        plan = _plan(contact_import)
        plan.use_copy = connection.vendor == "postgresql" if use_copy is None else use_copy
        position = contact_import.position
        with closing(_records(contact_import)) as records:
            next(records, None)  # the header
            for _skipped in islice(records, position):
                pass
            while batch := list(islice(records, batch_size)):
                loaded = _load_batch(contact_import.pk, position, plan, batch)
                if loaded is None:
                    return ContactImport.objects.get(pk=contact_import_id)
                contact_import, position = loaded, loaded.position
                if on_batch is not None:
                    on_batch(contact_import)
    except OperationalError:
        # a deadlock, a lost connection: the batch rolled back, the import stays running with
        # its file, and the task's retry resumes it from its position
        raise
    except Exception as error:
        contact_import_fail(contact_import_id=contact_import_id, error=error)
        raise
    done = _finish(contact_import_id, ImportStatus.DONE)
    _statistics_refresh(done)
    return done


def _statistics_refresh(contact_import: ContactImport) -> None:
    """After a large import on PostgreSQL, refresh the planner's statistics of the tables it
    grew: until autovacuum comes by, a planner that believes a table small may read a whole
    one (an audience count, a campaign send, an erasure right after the import)."""
    written = contact_import.created + contact_import.updated + contact_import.consents_recorded
    if connection.vendor != "postgresql" or written < BATCH_SIZE:
        return
    models_grown: list[type[models.Model]] = [Contact, TimelineEvent, OutboxEvent]
    if contact_import.consents_recorded:
        models_grown += [ConsentRecord, ConsentEvidence, ConsentState]
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models_grown)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def contact_import_fail(*, contact_import_id: int, error: Exception) -> ContactImport:
    """Mark a running import failed with its error (its file deleted)."""
    return _finish(contact_import_id, ImportStatus.FAILED, error=_failure_text(error))


def _failure_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return _reason(error)
    return f"{type(error).__name__}: {error}"[:2000]


def _claim(contact_import_id: int) -> ContactImport | None:
    with transaction.atomic():
        contact_import = (
            ContactImport.objects.select_for_update().filter(pk=contact_import_id).first()
        )
        if contact_import is None or contact_import.status in (
            ImportStatus.DONE,
            ImportStatus.FAILED,
        ):
            return None
        if contact_import.status == ImportStatus.QUEUED:
            contact_import.status = ImportStatus.RUNNING
            contact_import.started_at = timezone.now()
            contact_import.save(update_fields=["status", "started_at"])
    return contact_import


def _finish(contact_import_id: int, status: str, *, error: str = "") -> ContactImport:
    """Mark the import over. Its file is then deleted (once this commits): it holds personal
    data that no longer serves, which an erasure could not reach; its SHA-256 stays."""
    with transaction.atomic():
        contact_import = ContactImport.objects.select_for_update().get(pk=contact_import_id)
        if contact_import.status == ImportStatus.RUNNING:
            stored, storage = contact_import.file.name, contact_import.file.storage
            contact_import.status = status
            contact_import.error = error
            contact_import.finished_at = timezone.now()
            contact_import.file.name = ""
            contact_import.save(update_fields=["status", "error", "finished_at", "file"])
            if stored:
                transaction.on_commit(lambda: storage.delete(stored))
    return contact_import


def _plan(contact_import: ContactImport) -> _Plan:
    with closing(_records(contact_import)) as records:
        first = next(records, None)
    header = [cell.strip() for cell in (first[1] if first else [])]
    index: dict[str, int] = {}
    for position, column in enumerate(header):
        index.setdefault(column, position)
    columns = [(index[column], target) for column, target in contact_import.mapping.items()]
    declared = contact_import.consent or {}
    purpose = None
    if declared.get("purpose"):
        purpose = purposes_with_versions().get(slug=declared["purpose"])
    return _Plan(
        columns=columns,
        purpose=purpose,
        channel=declared.get("channel", ""),
        wording=declared.get("wording", ""),
        source_reference=declared.get("source_reference", ""),
        interests=dict(Interest.objects.values_list("slug", "id")),
    )


def _load_batch(
    contact_import_id: int, position: int, plan: _Plan, batch: list[tuple[int, list[str]]]
) -> ContactImport | None:
    """One batch in one transaction; None when another runner moved the import on. A contact
    inserted concurrently by someone else (a unique email) makes the batch start over once."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                contact_import = ContactImport.objects.select_for_update().get(pk=contact_import_id)
                if (
                    contact_import.position != position
                    or contact_import.status != ImportStatus.RUNNING
                ):
                    return None
                outcome = _load_rows(contact_import, plan, batch)
                ImportRejection.objects.bulk_create(
                    ImportRejection(contact_import=contact_import, line=line, reason=reason)
                    for line, reason in outcome.rejections
                )
                contact_import.position += len(batch)
                contact_import.processed += len(batch)
                contact_import.created += outcome.created
                contact_import.updated += outcome.updated
                contact_import.consents_recorded += outcome.consents
                contact_import.rejected += len(outcome.rejections)
                contact_import.save(
                    update_fields=[
                        "position",
                        "processed",
                        "created",
                        "updated",
                        "consents_recorded",
                        "rejected",
                    ]
                )
                return contact_import
        except IntegrityError:
            if attempt == 2:
                raise
    return None


def _load_rows(
    contact_import: ContactImport, plan: _Plan, batch: list[tuple[int, list[str]]]
) -> _Outcome:
    outcome = _Outcome()
    people: dict[str, _Person] = {}
    for line, cells in batch:
        parsed = _parse_row(plan, line, cells)
        if isinstance(parsed, str):
            outcome.rejections.append((line, parsed))
            continue
        person = people.setdefault(parsed.email, _Person(parsed.email))
        person.rows.append(parsed)
        person.fields.update(parsed.fields)
        person.interests += [i for i in parsed.interests if i not in person.interests]
    accepted, existing = _screen(people, outcome)
    now = timezone.now()
    created_rows: list[dict[str, Any]] = []
    updated: list[tuple[Contact, list[str]]] = []
    for person in accepted:
        contact = existing.get(person.email)
        if contact is None:
            created_rows.append(_new_row(person, now))
            continue
        changed = [name for name, value in person.fields.items() if getattr(contact, name) != value]
        for name in changed:
            setattr(contact, name, person.fields[name])
        if "phone" in changed:
            _set_suppression_digests(contact, person.email_digests, person.phone_digests)
        updated.append((contact, changed))
    changed_contacts = [c for c, changed in updated if changed]
    created: list[Contact] = []  # the new contacts as instances, where something needs them
    if plan.use_copy:
        # the new contacts' timeline moments and outbox events written with them
        new_ids = _write_contacts_copy(created_rows, changed_contacts, now)
        if plan.purpose is not None:
            created = [_new_contact(row, new_ids[row["email"]]) for row in created_rows]
    else:
        created = _write_contacts_orm(created_rows, changed_contacts, now)
        new_ids = {contact.email: contact.pk for contact in created}
        creations_record(created)
    contacts = {contact.email: contact for contact in created}
    contacts.update({contact.email: contact for contact, _changed in updated})
    ids = {contact.email: contact.pk for contact, _changed in updated} | new_ids
    added = _add_interests([(ids[p.email], p.interests) for p in accepted if p.interests])
    updated = [
        (contact, [*changed, "interests"] if contact.pk in added else changed)
        for contact, changed in updated
    ]
    updated = [(contact, changed) for contact, changed in updated if changed]
    _record_updates(updated, now)
    outcome.created, outcome.updated = len(new_ids), len(updated)
    if plan.purpose is not None:
        outcome.consents = _record_consents(contact_import, plan, accepted, contacts, outcome)
    return outcome


def _parse_row(plan: _Plan, line: int, cells: list[str]) -> _Row | str:
    """The row checked and normalised, or the reason it is rejected."""
    values: dict[str, str] = {}
    for index, target in plan.columns:
        value = cells[index].strip() if index < len(cells) else ""
        if value:
            values[target] = value
    errors: dict[str, list[str]] = {}
    email = ""
    try:
        email = normalize_email(values.get("email", ""))
    except ValidationError as error:
        errors["email"] = list(error.messages)
    raw_fields = {name: values[name] for name in CONTACT_FIELDS if name in values}
    for name in ("language", "lifecycle_stage", "relationship"):
        if name in raw_fields:
            raw_fields[name] = raw_fields[name].lower()
    if "relationship" in raw_fields:
        raw_fields["relationship"] = RELATIONSHIP_WORDS.get(
            raw_fields["relationship"], raw_fields["relationship"]
        )
    fields: dict[str, Any] = {}
    try:
        fields = contact_fields_clean(fields=raw_fields)
    except ValidationError as error:
        errors.update(error.message_dict)
    for name, value in fields.items():
        limit = MAX_LENGTHS.get(name)
        if limit is not None and len(value) > limit:
            errors.setdefault(name, []).append(
                _("Use %(limit)d characters at most (it has %(length)d).")
                % {"limit": limit, "length": len(value)}
            )
    interests = []
    for slug in INTEREST_SEPARATORS.split(values.get("interests", "")):
        slug = slug.strip().lower()
        if slug and slug not in plan.interests:
            errors.setdefault("interests", []).append(_("Unknown interest: %s") % slug)
        elif slug and plan.interests[slug] not in interests:
            interests.append(plan.interests[slug])
    consent = None
    if plan.purpose is not None:
        consent = _row_consent(plan, values, errors)
    if errors:
        return "; ".join(
            f"{name}: {message}" for name, messages in errors.items() for message in messages
        )
    return _Row(line=line, email=email, fields=fields, interests=interests, consent=consent)


def _row_consent(
    plan: _Plan, values: Mapping[str, str], errors: dict[str, list[str]]
) -> tuple[datetime, str, str] | None:
    assert plan.purpose is not None
    wording = values.get("consent_wording") or plan.wording
    source = values.get("consent_source") or plan.source_reference
    if not wording:
        errors.setdefault("consent_wording", []).append(_("The wording shown is required."))
    if not source:
        errors.setdefault("consent_source", []).append(_("The source of the consent is required."))
    raw_date = values.get("given_at", "")
    given_at = _parse_given_at(raw_date)
    if given_at is None:
        message = (
            _("Enter the date the person consented.")
            if not raw_date
            else _("Not a date: “%s” (use YYYY-MM-DD or DD/MM/YYYY, with an optional time).")
            % raw_date
        )
        errors.setdefault("given_at", []).append(message)
    if given_at is None or not wording or not source:
        return None
    try:
        consent_grant_check(
            purpose=plan.purpose,
            channel=plan.channel,
            source_kind=SourceKind.IMPORT,
            evidence=Evidence(wording=wording, collection_reference=source),
            given_at=given_at,
        )
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            errors.setdefault(name, []).extend(messages)
        return None
    return given_at, wording, source


def _parse_given_at(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    parsed: datetime | None = None
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime.combine(day, time()) if day else None
    except ValueError:
        return None
    for pattern in DATE_FORMATS if parsed is None else ():
        try:
            parsed = datetime.strptime(value, pattern)
            break
        except ValueError:
            continue
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _screen(
    people: dict[str, _Person], outcome: _Outcome
) -> tuple[list[_Person], dict[str, Contact]]:
    """The people that may be loaded, and the contacts they already are; the others' lines
    rejected: a suppressed email or phone (never lifted by a list), an erased contact."""
    # the email and the phone were normalised by `_parse_row`: not normalised again here
    emails = suppression_digests_normalized_many(
        kind=SuppressionKind.EMAIL, normalized_values=list(people)
    )
    phones = suppression_digests_normalized_many(
        kind=SuppressionKind.PHONE,
        normalized_values=[person.fields.get("phone", "") for person in people.values()],
    )
    for person, email_digests, phone_digests in zip(people.values(), emails, phones, strict=True):
        person.email_digests, person.phone_digests = email_digests, phone_digests
    wanted = [d for person in people.values() for d in person.email_digests + person.phone_digests]
    listed: dict[str, str] = {}
    for chunk in _chunks(wanted):
        found = _among(Suppression.objects.all(), "digest", chunk)
        listed.update(found.values_list("digest", "reason"))
    # The contacts already there, locked in id order (as every batched writer locks them: no
    # deadlock with an API array or another import) and read under their lock (a change made
    # meanwhile is not written back over).
    ids = sorted(
        pk
        for chunk in _chunks(list(people))
        for pk in _among(Contact.objects.all(), "email", chunk).values_list("pk", flat=True)
    )
    existing = {
        contact.email: contact
        for chunk in _chunks(ids)
        for contact in _among(
            Contact.objects.select_for_update(of=("self",)).order_by("pk"), "id", chunk
        )
    }
    accepted = []
    for email, person in people.items():
        contact = existing.get(email)
        reason = ""
        email_listed = [listed[d] for d in person.email_digests if d in listed]
        phone_listed = [listed[d] for d in person.phone_digests if d in listed]
        if email_listed:
            reason = _suppressed("email", email_listed[0])
        elif contact is not None and contact.status == ContactStatus.ERASED:
            reason = "email: " + _("This contact was erased.")
        elif contact is not None and contact.status == ContactStatus.MERGED:
            reason = "email: " + _(
                "This address belongs to a contact merged into another one; import the person "
                "under that contact's address."
            )
        elif phone_listed and (contact is None or contact.phone != person.fields["phone"]):
            reason = _suppressed("phone", phone_listed[0])
        else:
            # the customer dates against the relationship the contact has once loaded
            errors = relationship_errors(fields=person.fields, contact=contact)
            reason = "; ".join(
                f"{name}: {message}" for name, messages in errors.items() for message in messages
            )
        if reason:
            outcome.rejections += [(row.line, reason) for row in person.rows]
        else:
            accepted.append(person)
    return accepted, existing


def _among(queryset: QuerySet[M], name: str, values: list[str]) -> QuerySet[M]:
    """`queryset.filter(<name>__in=values)`; on PostgreSQL as `= ANY(array)`, one parameter
    rather than thousands for Django to prepare one by one."""
    if connection.vendor != "postgresql":
        return queryset.filter(**{f"{name}__in": values})
    column = connection.ops.quote_name(_field(queryset.model, name).column)
    return queryset.extra(where=[f"{column} = ANY(%s)"], params=[values])  # noqa: S610


def _field(model: type[models.Model], name: str) -> "models.Field[Any, Any]":
    """The model's concrete field of that name."""
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    return model_field


def _chunks(values: list[Any]) -> Generator[list[Any], None, None]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


def _suppressed(name: str, reason: str) -> str:
    return f"{name}: " + _(
        "This person is on the suppression list (%(reason)s); an import cannot re-add them. "
        "Only their own confirmed consent lifts it."
    ) % {"reason": SuppressionReason(reason).label}


def _new_row(person: _Person, now: datetime) -> dict[str, Any]:
    """The values of a new contact that are not its fields' defaults: its email and fields,
    the suppression digests `Contact.save` would store, its public id and dates."""
    return {
        "email": person.email,
        **person.fields,
        "email_digest": person.email_digests[0],
        "email_quoted_digest": person.email_digests[1],
        "phone_digest": person.phone_digests[0] if person.fields.get("phone") else None,
        "public_id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
    }


def _new_contact(row: Mapping[str, Any], pk: int | None = None) -> Contact:
    """`Contact(**row)` with every other field at its default, built by position (Django's
    fast path: no per-field default lookup for each of a million rows)."""
    values = [
        row[name] if name in row else (factory() if factory else default)
        for name, factory, default in _contact_defaults()
    ]
    values[0] = pk
    model: Any = Contact  # positional fields, which the stubs do not describe
    contact: Contact = model(*values)
    if pk is not None:
        contact._state.adding = False
        contact._state.db = connection.alias
    return contact


@functools.cache
def _contact_defaults() -> list[tuple[str, Callable[[], Any] | None, Any]]:
    """(attname, default factory or None, constant default) of each concrete field, in order
    (the primary key first)."""
    defaults: list[tuple[str, Callable[[], Any] | None, Any]] = []
    for model_field in Contact._meta.concrete_fields:
        if model_field.primary_key:
            defaults.append((model_field.attname, None, None))
        elif model_field.has_default() and callable(model_field.default):
            defaults.append((model_field.attname, model_field.default, None))
        else:
            defaults.append((model_field.attname, None, model_field.get_default()))
    return defaults


def _set_suppression_digests(
    contact: Contact, email_keys: list[str], phone_keys: list[str]
) -> None:
    """The digests `Contact.save` stores, from `suppression_digests` of the contact's email
    and phone (computed once per batch for the screening; no save per row here)."""
    contact.email_digest, contact.email_quoted_digest = (email_keys + [None, None])[:2]
    contact.phone_digest = (phone_keys + [None])[0] if contact.phone else None


UPDATED_COLUMNS = (*CONTACT_FIELDS, "phone_digest", "updated_at")
# The columns a new contact's row gives (`_new_row`); the others get their default.
STAGED_COLUMNS = (
    "email",
    *CONTACT_FIELDS,
    "email_digest",
    "email_quoted_digest",
    "phone_digest",
    "public_id",
    "created_at",
    "updated_at",
)


def _write_contacts_orm(
    created_rows: list[dict[str, Any]], changed: list[Contact], now: datetime
) -> list[Contact]:
    """The portable path (SQLite): `bulk_create` and `bulk_update`; the new contacts."""
    created = Contact.objects.bulk_create([_new_contact(row) for row in created_rows])
    for contact in changed:
        contact.updated_at = now
    if changed:
        Contact.objects.bulk_update(changed, fields=list(UPDATED_COLUMNS))
    return created


def _write_contacts_copy(
    created_rows: list[dict[str, Any]], changed: list[Contact], now: datetime
) -> dict[str, int]:
    """PostgreSQL: `COPY` into a staging table, then one statement inserting the new contacts
    (the columns not staged at their default) with their timeline moments and outbox events,
    and one `UPDATE ... FROM` for the changed ones. The new contacts' ids, by email."""
    for contact in changed:
        contact.updated_at = now
    quote = connection.ops.quote_name
    staged = [_field(Contact, name) for name in STAGED_COLUMNS]
    defaults = _staged_defaults()
    # Only model metadata (quoted column and table names) is formatted into the statements.
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE contacts_import_staging ON COMMIT DROP AS "  # noqa: S608
            f"SELECT id, {', '.join(quote(f.column) for f in staged)} "
            f"FROM {Contact._meta.db_table} WITH NO DATA"
        )
        rows: list[Sequence[Any]] = [
            (None, *[row.get(name, defaults.get(name)) for name in STAGED_COLUMNS])
            for row in created_rows
        ]
        rows += [(c.pk, *[getattr(c, f.attname) for f in staged]) for c in changed]
        copy_rows(cursor, "contacts_import_staging", [Contact._meta.pk, *staged], rows)
        ids: dict[str, int] = {}
        if created_rows:
            insert, params = insert_select_sql(
                Contact, {f.attname: quote(f.column) for f in staged}, "contacts_import_staging"
            )
            events = creations_record_sql("new", now)
            cursor.execute(
                f"WITH new AS ({insert} WHERE id IS NULL "  # noqa: S608
                f"ON CONFLICT (email) DO NOTHING RETURNING *), "
                + ", ".join(f"events{n} AS ({sql})" for n, (sql, _p) in enumerate(events))
                + " SELECT email, id FROM new",
                [*params, *[param for _sql, event_params in events for param in event_params]],
            )
            ids = dict(cursor.fetchall())
            if len(ids) != len(created_rows):
                raise IntegrityError("a contact of the batch was inserted concurrently")
        if changed:
            updates = ", ".join(f"{quote(name)} = s.{quote(name)}" for name in UPDATED_COLUMNS)
            cursor.execute(
                f"UPDATE {Contact._meta.db_table} AS c SET {updates} "  # noqa: S608
                f"FROM contacts_import_staging AS s "
                # an erasure or a merge that committed since the rows were screened stands
                f"WHERE s.id IS NOT NULL AND c.id = s.id AND c.status NOT IN (%s, %s)",
                [ContactStatus.ERASED, ContactStatus.MERGED],
            )
        cursor.execute("DROP TABLE contacts_import_staging")
    return ids


@functools.cache
def _staged_defaults() -> dict[str, Any]:
    """The default of each staged column a new row may leave out (a contact field)."""
    return {name: _field(Contact, name).get_default() for name in CONTACT_FIELDS}


def _add_interests(chosen: list[tuple[int, list[int]]]) -> set[int]:
    """Add the listed interests to each contact, given as (id, interest ids), never removing
    one; the ids of the contacts that gained one."""
    if not chosen:
        return set()
    through = Contact.interests.through
    held = set(
        through.objects.filter(contact_id__in=[pk for pk, _ids in chosen]).values_list(
            "contact_id", "interest_id"
        )
    )
    links = [
        (pk, interest)
        for pk, interests in chosen
        for interest in interests
        if (pk, interest) not in held
    ]
    through.objects.bulk_create(
        [through(contact_id=pk, interest_id=interest) for pk, interest in links]
    )
    return {pk for pk, _interest in links}


def _record_updates(updated: list[tuple[Contact, list[str]]], now: datetime) -> None:
    """The timeline moment and outbox event `contact_update` writes, for each changed contact
    of the batch (with what changed)."""
    timeline_add_many(
        events=[
            {
                "contact_id": c.pk,
                "kind": TimelineKind.UPDATED.value,
                "summary": ", ".join(changed),
                "data": {"fields": changed},
                "occurred_at": now,
            }
            for c, changed in updated
        ]
    )
    outbox_emit_many(
        events=[
            (OutboxTopic.CONTACT_UPDATED, c, {**contact_payload(c), "changed": changed})
            for c, changed in updated
        ]
    )


def _record_consents(
    contact_import: ContactImport,
    plan: _Plan,
    accepted: list[_Person],
    contacts: dict[str, Contact],
    outcome: _Outcome,
) -> int:
    """Grant each row's consent through `consents_record_many`, skipping what the ledger
    already holds from an import (same contact, purpose, channel, date and wording)."""
    assert plan.purpose is not None
    ids = [contacts[person.email].pk for person in accepted]
    # read by contact (a few records each), filtered here: a filter on the purpose could
    # make the database walk every record of the purpose when its statistics are stale
    held = {
        (contact_id, given_at, wording)
        for contact_id, purpose_id, channel, action, source_kind, given_at, wording in (
            ConsentRecord.objects.filter(contact_id__in=ids).values_list(
                "contact_id",
                "purpose_id",
                "channel",
                "action",
                "source_kind",
                "given_at",
                "wording",
            )
        )
        if (purpose_id, channel, action, source_kind)
        == (plan.purpose.pk, plan.channel, ConsentAction.GRANT, SourceKind.IMPORT)
    }
    lines: list[int] = []
    writes: list[ConsentWrite] = []
    for person in accepted:
        contact = contacts[person.email]
        for row in person.rows:
            if row.consent is None:
                continue
            given_at, wording, source = row.consent
            key = (contact.pk, given_at, wording)
            if key in held:
                continue
            held.add(key)
            lines.append(row.line)
            writes.append(
                ConsentWrite(
                    contact=contact,
                    purpose=plan.purpose,
                    channel=plan.channel,
                    action=ConsentAction.GRANT,
                    source_kind=SourceKind.IMPORT,
                    source_reference=(
                        f"{source} (import {contact_import.public_id}, line {row.line})"
                    )[:500],
                    evidence=Evidence(wording=wording, collection_reference=source),
                    given_at=given_at,
                )
            )
    order = sorted(range(len(writes)), key=lambda i: lines[i])
    lines, writes = [lines[i] for i in order], [writes[i] for i in order]
    if not writes:
        return 0
    try:
        with transaction.atomic():
            return len(consents_record_many(writes=writes))
    except ValidationError:
        pass  # one write is refused (a change since the rows were checked): find which
    recorded = 0
    for line, write in zip(lines, writes, strict=True):
        try:
            with transaction.atomic():
                recorded += len(consents_record_many(writes=[write]))
        except ConsentWriteErrors as error:  # the one write's own refusal, not the wrapper's
            outcome.rejections.append((line, _reason(error.errors.get(0, error))))
        except ValidationError as error:
            outcome.rejections.append((line, _reason(error)))
    return recorded

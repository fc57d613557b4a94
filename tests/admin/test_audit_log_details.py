"""The audit log's details in words: every key the project writes has a translatable label, and
a value that is a known choice is shown by its label, not its code."""

import ast
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from core.admin import DETAIL_LABELS, detail_in_words
from core.models import AuditAction, AuditEvent
from privacy.admin import PrivacyRequestHandleForm

pytestmark = pytest.mark.django_db

AUDIT_LOG = reverse("admin:core_auditevent_changelist")


def written_detail_keys() -> set[str]:
    """The keys of every `audit_record(details={...})` in the project's own code, and of the
    dicts a `..._details()` helper builds for it."""
    root = Path(settings.BASE_DIR)
    keys: set[str] = set()
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).parts
        if relative[0] in {".venv", "tests", "bench"} or "migrations" in relative:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_details"):
                for returned in ast.walk(node):
                    if isinstance(returned, ast.Return) and isinstance(returned.value, ast.Dict):
                        keys |= _constant_keys(returned.value)
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            for keyword in node.keywords if name == "audit_record" else []:
                if keyword.arg == "details" and isinstance(keyword.value, ast.Dict):
                    keys |= _constant_keys(keyword.value)
    return keys


def _constant_keys(node: ast.Dict) -> set[str]:
    return {
        key.value
        for key in node.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def test_the_scan_finds_the_details_the_project_writes() -> None:
    # guards the test below against a scan that finds nothing
    keys = written_detail_keys()
    assert {"search", "merged", "categories", "comment", "account"} <= keys
    assert {"given_at", "document_sha256"} <= keys  # contacts.admin._offline_consent_details


def test_every_detail_the_project_writes_has_a_label() -> None:
    # a privacy request's handling writes its form's fields
    keys = written_detail_keys() | set(PrivacyRequestHandleForm.declared_fields)

    assert sorted(keys - set(DETAIL_LABELS)) == []


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("source", "paper_form", "Paper form"),
        ("action", "withdraw", "Withdraw"),
        ("status", "held", "Held for review"),
        ("categories", ["health", "religion"], "health, religious beliefs"),
        ("filed", "erasure", "Erasure (Art. 17)"),
        ("comment", "held_for_nothing", "held_for_nothing"),  # free text stays as typed
        ("source", "no_such_kind", "no_such_kind"),  # an old code is shown as stored
    ],
)
def test_a_choice_is_shown_by_its_label(key: str, value: object, words: str) -> None:
    assert detail_in_words(key, value) == words


def test_the_audit_log_shows_an_offline_consent_and_a_review_in_words(as_dpo: Client) -> None:
    AuditEvent.objects.create(
        username="someone",
        action=AuditAction.OFFLINE_CONSENT,
        details={"source": "paper_form", "given_at": "2026-03-02", "document_sha256": "ab12"},
    )
    AuditEvent.objects.create(
        username="someone",
        action=AuditAction.NOTE_RELEASED,
        details={"categories": ["health"], "comment": "a diet, not a diagnosis"},
    )

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert "source: Paper form" in page
    assert "given at: 2026-03-02" in page
    assert "signed document fingerprint (SHA-256): ab12" in page
    assert "special categories: health" in page
    assert "comment: a diet, not a diagnosis" in page
    assert "given_at" not in page and "document_sha256" not in page

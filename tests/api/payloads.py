"""Request bodies shared by the API tests: what a web form or a CRM would send."""

from typing import Any

from consent.models import Purpose

FORM_URL = "https://example.fr/newsletter"
# where a CRM's or an import's consent was collected (the original form)
LIST_SOURCE_REFERENCE = "https://example.fr/salon-2026/inscription"


def evidence_body(purpose: Purpose, **overrides: Any) -> dict[str, Any]:
    """Complete evidence of a grant: the wording shown, an unticked box, IP and user agent."""
    return {
        "wording": purpose.current_version.wording_fr,
        "unticked_by_default": True,
        "policy_version": "2026-01",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (test)",
        **overrides,
    }


def consent_body(
    purpose: Purpose,
    *,
    email: str | None = None,
    contact: str | None = None,
    channel: str = "email",
    action: str = "grant",
    kind: str = "web_form",
    **overrides: Any,
) -> dict[str, Any]:
    """One item of `POST /api/v1/consents/`."""
    body: dict[str, Any] = {
        "purpose": purpose.slug,
        "channel": channel,
        "action": action,
        "source": {"kind": kind, "reference": FORM_URL},
        "evidence": evidence_body(purpose),
    }
    if kind in ("crm", "import"):
        # a list relays a consent given elsewhere: when and where the person gave it
        body["given_at"] = "2026-01-15T10:00:00+01:00"
        body["source"]["reference"] = LIST_SOURCE_REFERENCE
    if email is not None:
        body["email"] = email
    if contact is not None:
        body["contact"] = contact
    body.update(overrides)
    return body


def form_body(*, email: str, boxes: list[dict[str, Any]], **contact_fields: Any) -> dict[str, Any]:
    """A `POST /api/v1/forms/submissions/` body."""
    return {
        "form": FORM_URL,
        "contact": {"email": email, **contact_fields},
        "consents": boxes,
        "evidence": {
            "unticked_by_default": True,
            "policy_version": "2026-01",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (test)",
        },
    }


def box(purpose: Purpose, *, granted: bool = True, channel: str = "email") -> dict[str, Any]:
    """One consent box of a web form, with the wording shown next to it."""
    return {
        "purpose": purpose.slug,
        "channel": channel,
        "granted": granted,
        "wording": purpose.current_version.wording_fr,
    }

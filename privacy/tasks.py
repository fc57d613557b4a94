"""Celery tasks for privacy requests, exports and retention: thin adapters over the services.

Each keeps the name it was registered under before the privacy app existed (in consent and
preferences): beat's schedule, in the settings and in the periodic-task rows of existing
databases, and messages already queued name tasks by that name.
"""

from celery import shared_task

from core.tasks import RETRY_ON_NETWORK_ERRORS
from privacy.acknowledgements import erasure_acknowledgements_send
from privacy.breaches import breach_reminders_send
from privacy.proof import proof_archives_expire
from privacy.registers import registers_sync
from privacy.services import (
    deadline_reminders_send,
    privacy_exports_purge,
    privacy_request_carry_out,
    privacy_request_decision_send,
    privacy_requests_carry_out_pending,
    retention_apply,
)


@shared_task(name="consent.tasks.carry_out_privacy_request", **RETRY_ON_NETWORK_ERRORS)
def carry_out_privacy_request(request_id: str) -> bool:
    """Carry out one verified data-subject request (queued when it is filed or verified)."""
    return privacy_request_carry_out(request_id=request_id) is not None


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_privacy_request_decision(event_id: int, kind: str, reason: str) -> bool:
    """Email the person an extension or a rejection of their request (GDPR Art. 12(3)-(4))."""
    return privacy_request_decision_send(event_id=event_id, kind=kind, reason=reason)


@shared_task(name="consent.tasks.carry_out_pending_privacy_requests")
def carry_out_pending_privacy_requests() -> int:
    """Carry out every verified request still to do (beat job; catches lost messages)."""
    return privacy_requests_carry_out_pending()


@shared_task(name="consent.tasks.send_deadline_reminders", **RETRY_ON_NETWORK_ERRORS)
def send_deadline_reminders() -> bool:
    """Email the DPO group the late and soon-due privacy requests, once a day (beat job)."""
    return deadline_reminders_send()


@shared_task(name="consent.tasks.purge_privacy_exports")
def purge_privacy_exports() -> int:
    """Delete access exports past their availability (beat job)."""
    return privacy_exports_purge()


@shared_task(name="preferences.tasks.apply_retention", **RETRY_ON_NETWORK_ERRORS)
def apply_retention() -> list[int]:
    """Retention: re-permission emails, then anonymisation of the silent (beat job)."""
    return list(retention_apply())


@shared_task(name="privacy.tasks.expire_proof_archive")
def expire_proof_archive() -> int:
    """Delete the proof archive entries past their period, and their people's ledger records
    (beat job, daily; GDPR Art. 5(1)(e))."""
    return proof_archives_expire()


@shared_task
def send_erasure_acknowledgements(contact_ids: list[int]) -> int:
    """Tell every connected CRM to erase these people (queued after their erasure commits;
    GDPR Art. 17(2), 19). Answers how many CRMs acknowledged."""
    return erasure_acknowledgements_send(contact_ids=contact_ids)


@shared_task
def retry_erasure_acknowledgements() -> int:
    """Send again the CRM erasures due after a failure, or lost (beat job, every minute)."""
    return erasure_acknowledgements_send()


@shared_task
def sync_registers() -> int:
    """Bring the register of processing activities and the processor register in step with
    the purposes, the CRM connections and the settings (beat job, daily; GDPR Art. 28, 30)."""
    return registers_sync()


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_breach_reminders() -> int:
    """Remind the DPO of breaches 24 and 48 hours after awareness while the authority
    decision is pending, each reminder once (beat job, every 15 minutes; GDPR Art. 33(1))."""
    return breach_reminders_send()

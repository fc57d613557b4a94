"""Celery tasks for consent: thin adapters over the services, safe to run twice."""

import logging

from celery import shared_task

from consent.ledger import (
    ledger_seal,
    ledger_verification_record,
    ledger_verify,
    seal_head_send,
)
from consent.rates import consent_rates_snapshot
from consent.services import double_opt_in_send, pending_grants_expire
from consent.services.signups import signup_confirmation_send
from contacts.services import pauses_end
from core.tasks import RETRY_ON_NETWORK_ERRORS

logger = logging.getLogger(__name__)


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_double_opt_in_confirmation(contact_id: int) -> bool:
    """Send the double opt-in confirmation email for a contact's pending grants."""
    return double_opt_in_send(contact_id=contact_id)


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_signup_confirmation(token: str) -> bool:
    """Email a suppressed address the link that records its grants (at most one a day)."""
    return signup_confirmation_send(token=token)


@shared_task
def expire_pending_grants() -> int:
    """Expire pending double opt-in grants past their delay (beat job)."""
    return pending_grants_expire()


@shared_task
def verify_ledger() -> int:
    """Check the consent ledger's hash chain, log every broken record and keep the outcome
    for the DPO's dashboard (beat job)."""
    report = ledger_verify()
    for problem in report:
        logger.error("Consent ledger tampering detected: %s", problem)
    ledger_verification_record(report=report)
    return report.problem_count


@shared_task
def seal_ledger() -> int:
    """Seal what was recorded since the previous seal (beat job, every minute); answers the
    number of seals written. Two runs at once queue on the sealer's lock: one chain."""
    return len(ledger_seal())


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_seal_head() -> bool:
    """Email the DPO group yesterday's last seal head, once a day (beat job)."""
    return seal_head_send()


@shared_task
def end_pauses() -> int:
    """Resume contacts whose pause is over (beat job)."""
    return pauses_end()


@shared_task
def snapshot_consent_rates() -> int:
    """Write today's consent rates per purpose and channel (beat job, daily; the DPO's
    dashboard draws their history): answers the number of rows written."""
    return consent_rates_snapshot()

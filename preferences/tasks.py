"""Celery tasks of the preference center: they take ids and call one service."""

from celery import shared_task

from preferences.services import action_link_send, retention_apply


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_action_link(contact_id: int, action: str, new_email: str = "") -> bool:
    """Email the confirmation link of an email change, a data download or an erasure."""
    return action_link_send(contact_id=contact_id, action=action, new_email=new_email)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def apply_retention() -> list[int]:
    """Retention: re-permission emails, then anonymisation of the silent (beat job)."""
    return list(retention_apply())

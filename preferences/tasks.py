"""Celery tasks of the preference center: they take ids and call one service."""

from celery import shared_task

from contacts.services import previous_emails_forget
from core.tasks import RETRY_ON_NETWORK_ERRORS
from preferences.services import action_link_send, email_changed_notice_send, preference_link_send


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_action_link(contact_id: int, action: str, new_email: str = "") -> bool:
    """Email the confirmation link of an email change, a data download or an erasure."""
    return action_link_send(contact_id=contact_id, action=action, new_email=new_email)


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_preference_link(contact_id: int) -> bool:
    """Email a new preference link to the person (a link renewed from the admin)."""
    return preference_link_send(contact_id=contact_id)


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_email_changed_notice(contact_id: int, old_email: str) -> bool:
    """Tell the replaced address that the contact's email address changed."""
    return email_changed_notice_send(contact_id=contact_id, old_email=old_email)


@shared_task
def forget_previous_emails() -> int:
    """Forget the addresses replaced more than 7 days ago (beat job)."""
    return previous_emails_forget()

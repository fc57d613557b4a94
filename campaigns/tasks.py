"""Celery tasks of campaigns: thin adapters over `campaigns.sending`."""

from celery import Task, shared_task

from campaigns.sending import campaign_advance, campaigns_advance, step_batch_send
from core.tasks import RETRY_ON_NETWORK_ERRORS


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def advance_campaign(campaign_id: int) -> bool:
    """Start, step on and close one campaign (queued when it is sent, and by beat)."""
    return campaign_advance(campaign_id=campaign_id) is not None


@shared_task
def advance_campaigns() -> int:
    """Advance every campaign due or sending (beat, every minute): starts the scheduled ones,
    begins the steps whose delay has passed, sends the SMS that waited for their hours, and
    queues again what a lost message or a dead worker left behind."""
    return campaigns_advance()


@shared_task(bind=True, **RETRY_ON_NETWORK_ERRORS)
def send_step_batch(self: Task, step_id: int) -> int:
    """Claim and send one batch of a step under this task's id (kept when the message is
    delivered again after a worker died), then queue the next batch while rows are left, or
    else advance the campaign (the step may be over, and the next one due at once)."""
    result = step_batch_send(step_id=step_id, batch=str(self.request.id or ""))
    if result.more:
        send_step_batch.delay(step_id)
    elif result.campaign_id is not None:
        advance_campaign.delay(result.campaign_id)
    return result.sent


@shared_task
def apply_repermission_deadlines() -> int:
    """Withdraw the purpose from those a re-permission request asked who did not confirm by
    its deadline (beat, hourly; `campaigns.repermission`); answers how many were withdrawn."""
    from campaigns.repermission import repermission_deadlines_apply

    return repermission_deadlines_apply()

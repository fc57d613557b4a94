"""Running a campaign in the test process, as the workers would: start it with what it
queues held back, then run the batches of a step until none is left."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.test import TestCase

from campaigns.models import Campaign, CampaignStep
from campaigns.sending import BatchResult, campaign_advance, campaign_send, step_batch_send
from campaigns.tasks import advance_campaign, send_step_batch
from tests.queued import held_back


@contextmanager
def queued_after_commit() -> Iterator[list[tuple[Any, ...]]]:
    """The batch tasks queued once the transaction commits (inside a test's transaction the
    commit callbacks are run at the end of the block), held back for the test to run."""
    with (
        held_back(advance_campaign),
        held_back(send_step_batch) as batches,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        yield batches


def campaign_started(campaign: Campaign, now: datetime | None = None) -> list[tuple]:
    """Send the campaign now and advance it once (its first step begins); answers the batch
    tasks that advancing queued (held back: the test runs them)."""
    with queued_after_commit() as batches:
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk, now=now)
    return batches


def advanced(campaign: Campaign, now: datetime | None = None) -> list[tuple]:
    """Advance the campaign once at `now`, as beat does; answers the batch tasks it queued."""
    with queued_after_commit() as batches:
        campaign_advance(campaign_id=campaign.pk, now=now)
    return batches


def step_run(
    step: CampaignStep, now: datetime | None = None, prefix: str = "batch"
) -> list[BatchResult]:
    """Run the step's batches one after the other until one says nothing more is left."""
    results: list[BatchResult] = []
    while True:
        result = step_batch_send(step_id=step.pk, batch=f"{prefix}-{len(results)}", now=now)
        results.append(result)
        if not result.more:
            return results


def campaign_sent_now(campaign: Campaign) -> list[BatchResult]:
    """Start the campaign and send its first step here."""
    campaign_started(campaign)
    return step_run(campaign.steps.get(position=1))

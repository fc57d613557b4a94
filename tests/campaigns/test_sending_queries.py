"""What the send benchmark (bench/campaigns.py) found costly stays out: a batch reads what its
messages are personalised with once for the whole batch, not once per message, and a step's
rows are written without sorting its audience."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Recipient
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from contacts.models import Interest
from tests.factories import ContactFactory, PurposeFactory, campaign_make, email_step, grant
from tests.queued import held_back

pytestmark = pytest.mark.django_db


def test_a_batch_reads_its_contacts_interests_in_one_query_and_personalises_with_them() -> None:
    from campaigns.tasks import advance_campaign, send_step_batch

    purpose = PurposeFactory()
    hiking = Interest.objects.create(slug="hiking", name_fr="Randonnée", name_en="Hiking")
    cycling = Interest.objects.create(slug="cycling", name_fr="Vélo", name_en="Cycling")
    for index in range(4):
        contact = ContactFactory(language="fr")
        contact.interests.set([hiking, cycling][: index % 3])
        grant(contact, purpose, "email")
    campaign = campaign_make(
        purpose, steps=[email_step(body_text_fr="Pour vous : {{ interests }}.")]
    )
    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
    mail.outbox.clear()

    with CaptureQueriesContext(connection) as queries:
        result = step_batch_send(step_id=campaign.steps.get().pk, batch="b")

    assert result.sent == 4
    reads = [q["sql"] for q in queries.captured_queries if "contacts_contact_interests" in q["sql"]]
    assert len(reads) == 1
    bodies = sorted(message.body.split("\n")[0] for message in mail.outbox)
    assert bodies == [
        "Pour vous : .",
        "Pour vous : .",
        "Pour vous : Randonnée, Vélo.",
        "Pour vous : Randonnée.",
    ]


def test_a_steps_rows_are_written_without_sorting_its_audience() -> None:
    from campaigns.tasks import advance_campaign, send_step_batch

    purpose = PurposeFactory()
    for _index in range(3):
        grant(ContactFactory(), purpose, "email")
    campaign = campaign_make(purpose)
    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        with CaptureQueriesContext(connection) as queries:
            campaign_advance(campaign_id=campaign.pk)

    (insert,) = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert "ORDER BY" not in insert
    assert Recipient.objects.filter(campaign=campaign, status="queued").count() == 3

"""Campaign statistics per campaign and per step (SPEC §3 campaigns "Stats", §4; issue 13 point
8): targeted, sent, delivered, bounced, complained, unsubscribed (attributed) and excluded per
reason, counted in two queries whatever the number of steps, in the API and as a chart."""

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from campaigns.charts import PLOT_HEIGHT, SERIES, stats_chart_svg
from campaigns.models import Campaign
from campaigns.selectors import campaign_stats
from contacts.deliverability import deliverability_event_apply
from tests.campaigns.test_feedback_attribution import sent
from tests.factories import ContactFactory, PurposeFactory, campaign_make, email_step, grant

pytestmark = pytest.mark.django_db

ADDRESS = {"address_line1": "1 rue de la Paix", "postal_code": "75002", "city": "Paris"}
STEP_ONE = {
    "position": 1,
    "channel": "email",
    "targeted": 4,
    "sent": 3,
    "delivered": 1,
    "bounced": 1,
    "complained": 1,
    "unsubscribed": 1,
    "excluded": {"no_consent": 1},
}
STEP_TWO = {
    "position": 2,
    "channel": "postal",
    "targeted": 1,
    "sent": 1,
    "delivered": 0,
    "bounced": 0,
    "complained": 0,
    "unsubscribed": 0,
    "excluded": {},
}


def campaign_with_feedback() -> Campaign:
    """An email to four people (one without consent), then a letter to those it did not
    reach: Anne's email delivered, Bruno's bounced (he gets the letter), Chloé complained."""
    purpose = PurposeFactory(slug="offers", channels=["email", "postal"])
    anne, bruno, chloe = (ContactFactory(first_name=name, **ADDRESS) for name in "ABC")
    for contact in (anne, bruno, chloe):
        grant(contact, purpose, "email")
        grant(contact, purpose, "postal")
    ContactFactory(**ADDRESS)  # no consent
    letter = {"channel": "postal", "body_text_fr": "Lettre", "condition": "previous_not_delivered"}
    campaign = campaign_make(purpose, steps=[email_step(), letter])
    mail.outbox.clear()
    sent(campaign)
    public_id = str(campaign.public_id)
    for contact, event in ((anne, "delivered"), (bruno, "hard_bounce"), (chloe, "complaint")):
        deliverability_event_apply(type=event, email=contact.email, campaign=public_id)
    sent(campaign, position=2)
    return campaign


def test_each_step_has_its_counts_and_the_campaign_their_sums() -> None:
    campaign = campaign_with_feedback()

    stats = campaign_stats(campaign)

    assert stats["steps"] == [STEP_ONE, STEP_TWO]
    assert {name: stats[name] for name in STEP_ONE if name in stats} == {
        "targeted": 5,
        "sent": 4,
        "delivered": 1,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 1,
        "excluded": {"no_consent": 1},
    }


@pytest.mark.parametrize("channels", [["email"], ["email", "sms", "postal", "email", "sms"]])
def test_statistics_take_two_queries_whatever_the_number_of_steps(
    channels: list[str], django_assert_num_queries: Any
) -> None:
    content = {"email": email_step(), "sms": {"sms_text_fr": "Offres"}, "postal": {}}
    steps = [
        {**content[channel], "channel": channel, "body_text_fr": "Texte", "delay_hours": 1}
        for channel in channels
    ]
    steps[0]["delay_hours"] = 0
    campaign = campaign_make(PurposeFactory(channels=["email", "sms", "postal"]), steps=steps)

    with django_assert_num_queries(2):
        stats = campaign_stats(campaign)

    assert [step["channel"] for step in stats["steps"]] == channels  # in order, zeros
    assert {step["targeted"] for step in stats["steps"]} == {0}


def test_the_api_gives_the_statistics_of_each_step(api) -> None:
    campaign = campaign_with_feedback()

    response = api(["campaigns:read"]).get(f"/api/v1/campaigns/{campaign.public_id}/")

    assert response.status_code == 200
    stats = response.json()["stats"]
    assert stats["steps"] == [STEP_ONE, STEP_TWO]
    assert (stats["targeted"], stats["sent"], stats["unsubscribed"]) == (5, 4, 1)


def test_the_schema_documents_the_steps_of_the_statistics() -> None:
    schema = Client().get("/api/schema/", {"format": "json"}).json()

    stats = schema["components"]["schemas"]["Stats"]
    assert stats["properties"]["steps"]["items"] == {"$ref": "#/components/schemas/StepStats"}
    step = schema["components"]["schemas"]["StepStats"]["properties"]
    assert set(step) == set(STEP_ONE)


# --- the chart ----------------------------------------------------------------------------------


def test_the_chart_is_an_accessible_image_with_a_bar_per_count_of_each_step() -> None:
    svg = str(stats_chart_svg([STEP_ONE, STEP_TWO]))

    assert svg.startswith("<svg") and 'role="img"' in svg
    assert re.search(r'aria-labelledby="([^"]+)".*<title id="\1">', svg)
    bars = re.findall(r'<rect [^>]*height="(\d+)"[^>]*><title>([^<]+)</title>', svg)
    assert len(bars) == 2 * len(SERIES)
    assert (str(PLOT_HEIGHT), "targeted: 4") in bars  # the highest count fills the plot
    assert (str(PLOT_HEIGHT // 4), "sent: 1") in bars
    assert ("0", "bounced: 0") in bars
    assert "Step 2 (Postal mail)" in svg
    assert "<script" not in svg


def test_the_chart_escapes_what_it_writes() -> None:
    step = {**STEP_ONE, "channel": '<script>alert("x")</script>'}

    svg = str(stats_chart_svg([step]))

    assert "<script" not in svg
    assert "&lt;script&gt;" in svg

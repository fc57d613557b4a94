"""The campaign's page in the admin shows its statistics per step as a chart drawn on the
server (an SVG image, no script, nothing from elsewhere) and as the table of the same numbers
(SPEC §3 campaigns "Stats"; issue 13 point 8)."""

import re
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from tests.campaigns.test_stats import campaign_with_feedback
from tests.factories import PurposeFactory, campaign_make

pytestmark = pytest.mark.django_db


def cells(row: str) -> list[str]:
    return [
        unescape(re.sub(r"<[^>]+>", "", cell)).strip()
        for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    ]


def stats_table(text: str) -> list[list[str]]:
    table = re.search(r'<table class="campaign-stats-table">(.*?)</table>', text, re.S)
    assert table, "the statistics table"
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


def test_the_campaign_page_shows_each_step_s_numbers_as_a_chart_and_a_table(
    as_marketer: Client,
) -> None:
    campaign = campaign_with_feedback()

    page = as_marketer.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    # the chart: an image with its title, a bar per count, each naming its number
    svg = re.search(r'<svg [^>]*class="campaign-stats-chart".*?</svg>', text, re.S)
    assert svg, "the chart"
    assert 'role="img"' in svg.group(0)
    assert "<title id=" in svg.group(0)
    for bar in ("targeted: 4", "sent: 3", "delivered: 1", "bounced: 1", "complained: 1"):
        assert f"<title>{bar}</title>" in svg.group(0)
    assert "<title>targeted: 1</title>" in svg.group(0)  # the letter
    # the table behind it: a caption, headers, a row per step and the campaign's totals
    assert "<caption>" in text
    assert stats_table(text) == [
        [
            "step",
            "targeted",
            "sent",
            "delivered",
            "bounced",
            "complained",
            "unsubscribed",
            "excluded, per reason",
        ],
        ["Step 1 (Email)", "4", "3", "1", "1", "1", "1", "no consent: 1"],
        ["Step 2 (Postal mail)", "1", "1", "0", "0", "0", "0", "-"],
        ["campaign", "5", "4", "1", "1", "1", "1", "no consent: 1"],
    ]
    assert '<th scope="row">Step 1 (Email)</th>' in text


def test_a_draft_s_chart_has_zero_bars_and_loads_nothing_from_elsewhere(
    as_marketer: Client,
) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))

    page = as_marketer.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    text = page.content.decode()
    svg = re.search(r'<svg [^>]*class="campaign-stats-chart".*?</svg>', text, re.S)
    assert svg
    assert "<title>targeted: 0</title>" in svg.group(0)
    assert "http" not in svg.group(0).replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert stats_table(text)[1] == ["Step 1 (Email)", "0", "0", "0", "0", "0", "0", "-"]

"""The admin's server-drawn charts (core/charts.py): accessible SVG images, no style attribute,
every text escaped, and the numbers they draw as a table."""

import re

from django.utils import translation

from core.charts import PLOT_HEIGHT, TOP, Chart, ChartKind, Series

WEEKS = ["2 Nov", "9 Nov", "16 Nov"]


def test_a_line_chart_is_an_image_naming_each_point_and_breaking_where_a_value_is_missing() -> None:
    chart = Chart(
        title="Consent rate: offers",
        axis_label="Week of",
        labels=WEEKS,
        series=[Series("Email", [50.0, None, 62.5]), Series("SMS", [10.0, 20.0, 30.0])],
        unit="%",
    )

    svg = str(chart.svg)

    assert svg.startswith("<svg ")
    assert 'role="img"' in svg and 'aria-label="Consent rate: offers"' in svg
    assert "style=" not in svg
    assert "<title>Email, 2 Nov: 50.0 %</title>" in svg
    assert "<title>Email, 16 Nov: 62.5 %</title>" in svg
    assert "Email, 9 Nov" not in svg  # no point where there is no value
    # SMS is one line of three points; Email's two points stand apart, with no line between
    assert len(re.findall(r"<polyline ", svg)) == 1
    assert chart.rows == [
        ("2 Nov", ["50.0 %", "10.0 %"]),
        ("9 Nov", ["—", "20.0 %"]),
        ("16 Nov", ["62.5 %", "30.0 %"]),
    ]


def test_a_bar_is_as_high_as_its_share_of_the_highest_value() -> None:
    chart = Chart(
        title="Growth",
        axis_label="Week of",
        labels=WEEKS,
        series=[Series("granted", [4, 2, 0])],
        kind=ChartKind.BAR,
    )

    heights = [
        float(height) for height in re.findall(r'<rect [^>]*height="([\d.]+)" fill', chart.svg)
    ]

    assert heights[-3:] == [PLOT_HEIGHT, PLOT_HEIGHT / 2, 0.0]
    tops = re.findall(
        r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" fill', chart.svg
    )
    assert float(tops[-3]) == TOP


def test_every_text_of_a_chart_is_escaped() -> None:
    chart = Chart(
        title='<script>alert("x")</script>',
        axis_label="Reason",
        labels=["<b>bold</b>"],
        series=[Series("a & b", [1])],
        kind=ChartKind.BAR,
    )

    svg = str(chart.svg)

    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg and "a &amp; b" in svg


def test_numbers_are_written_in_the_reader_s_language() -> None:
    chart = Chart(
        title="Rate",
        axis_label="Week",
        labels=["1"],
        series=[Series("Email", [62.5])],
        unit="%",
    )
    counts = Chart(title="Counts", axis_label="Week", labels=["1"], series=[Series("n", [1234])])

    with translation.override("fr"):
        assert chart.format(62.5) == "62,5 %"
        assert counts.rows == [("1", ["1\xa0234"])]  # a no-break space groups the thousands

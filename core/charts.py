"""Line and bar charts for the admin, drawn on the server as SVG markup.

No script and no third-party request (the admin's Content-Security-Policy forbids both), and
presentation attributes only, never a `style` attribute. Each chart is an accessible image
(`role="img"`, an `aria-label`, a `<title>` on every point or bar naming its value) and
carries the numbers it draws (`Chart.rows`), which the template shows as the table behind it
(`admin/dashboard_chart.html`). Every text is escaped. `campaigns.charts` keeps its own chart.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Okabe-Ito hues told apart by colour-blind readers, darkened where needed so that each has a
# contrast of at least 3:1 on white (WCAG 1.4.11); lines also differ by their dashes.
COLOURS = ("#0072B2", "#C25400", "#007A5E", "#A4509A", "#5E5E5E", "#8A6D00")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
WIDTH = 560
PLOT_HEIGHT = 160
LEFT = 64  # room for the scale's numbers
TOP = 30  # room for the legend
BOTTOM = 24  # room for the labels under the plot
LEGEND_ITEM_WIDTH = 130

Value = float | int | None


class ChartKind(StrEnum):
    LINE = "line"
    BAR = "bar"


@dataclass(frozen=True)
class Series:
    """One line, or one bar in each group, with its name."""

    label: str
    values: Sequence[Value]


@dataclass(frozen=True)
class Chart:
    """A chart's numbers: a label per point (a week, a reason), one or more series, and the
    unit of the values ("%" scales 0 to 100). `svg` draws it, `rows` is its table."""

    title: str
    axis_label: str
    labels: Sequence[str]
    series: Sequence[Series]
    kind: ChartKind = ChartKind.LINE
    unit: str = ""

    @property
    def svg(self) -> SafeString:
        return line_chart_svg(self) if self.kind == ChartKind.LINE else bar_chart_svg(self)

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        """A row per label: the label and each series' value, written out ("—" when none)."""
        return [
            (label, [self.format(series.values[index]) for series in self.series])
            for index, label in enumerate(self.labels)
        ]

    def format(self, value: Value, scale: bool = False) -> str:
        """A value as the table writes it; on the scale, a percentage without decimals."""
        if value is None:
            return "—"
        if self.unit == "%":
            return number_format(value, decimal_pos=0 if scale else 1) + " %"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return number_format(value, force_grouping=True)

    def highest(self) -> float:
        if self.unit == "%":
            return 100.0
        values = [value for series in self.series for value in series.values if value is not None]
        return float(max([*values, 1]))


def _frame(chart: Chart, body: SafeString) -> SafeString:
    height = TOP + PLOT_HEIGHT + BOTTOM
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" class="dashboard-chart"><title>{}</title>{}{}{}</svg>',
        chart.title,
        WIDTH,
        height,
        chart.title,
        _legend(chart),
        _scale(chart),
        body,
    )


def _legend(chart: Chart) -> SafeString:
    return format_html_join(
        "",
        '<rect x="{}" y="6" width="12" height="12" fill="{}"/>'
        '<text x="{}" y="16" font-size="12" fill="#1a1a1a">{}</text>',
        (
            (
                LEFT + index * LEGEND_ITEM_WIDTH,
                COLOURS[index % len(COLOURS)],
                LEFT + index * LEGEND_ITEM_WIDTH + 16,
                series.label[:20],
            )
            for index, series in enumerate(chart.series)
        ),
    )


def _scale(chart: Chart) -> SafeString:
    """The base line, the highest value's line with its number, and every other label."""
    base = TOP + PLOT_HEIGHT
    step = _step(chart)
    every = max(1, (len(chart.labels) + 5) // 6)  # at most about six labels under the plot
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="#1a1a1a">{}</text>',
        (
            (round(_x(chart, index, step)), base + 16, label)
            for index, label in enumerate(chart.labels)
            if index % every == 0
        ),
    )
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#767676"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d0d0d0"/>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#1a1a1a">0</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#1a1a1a">{}</text>{}',
        LEFT,
        base,
        WIDTH,
        base,
        LEFT,
        TOP,
        WIDTH,
        TOP,
        LEFT - 6,
        base + 4,
        LEFT - 6,
        TOP + 4,
        chart.format(chart.highest(), scale=True),
        labels,
    )


def _step(chart: Chart) -> float:
    return (WIDTH - LEFT) / max(len(chart.labels), 1)


def _x(chart: Chart, index: int, step: float) -> float:
    """The middle of the label's slot."""
    return LEFT + step * index + step / 2


def _y(chart: Chart, value: float) -> float:
    return TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / chart.highest()


def line_chart_svg(chart: Chart) -> SafeString:
    """A line per series, a point per label; a missing value breaks the line."""
    step = _step(chart)
    drawn = []
    for number, series in enumerate(chart.series):
        colour, dashes = COLOURS[number % len(COLOURS)], DASHES[number % len(DASHES)]
        points = [
            (
                round(_x(chart, index, step), 1),
                round(_y(chart, value or 0), 1),
                label,
                value,
            )
            for index, (label, value) in enumerate(zip(chart.labels, series.values, strict=True))
        ]
        for run in _runs(points):
            drawn.append(
                format_html(
                    '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"{}/>',
                    colour,
                    " ".join(f"{x},{y}" for x, y, _label, _value in run),
                    format_html(' stroke-dasharray="{}"', dashes) if dashes else "",
                )
            )
        drawn.append(
            format_html_join(
                "",
                '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}</title></circle>',
                (
                    (x, y, colour, f"{series.label}, {label}: {chart.format(value)}")
                    for x, y, label, value in points
                    if value is not None
                ),
            )
        )
    return _frame(chart, format_html_join("", "{}", ((part,) for part in drawn)))


def _runs(
    points: list[tuple[float, float, str, Value]],
) -> list[list[tuple[float, float, str, Value]]]:
    """The stretches of consecutive points that have a value (a line needs two)."""
    runs: list[list[tuple[float, float, str, Value]]] = [[]]
    for point in points:
        if point[3] is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if len(run) > 1]


def bar_chart_svg(chart: Chart) -> SafeString:
    """A group per label, a bar per series in it."""
    step = _step(chart)
    count = max(len(chart.series), 1)
    bar_width = max(2.0, min(24.0, (step - 6) / count))
    bars = []
    for number, series in enumerate(chart.series):
        colour = COLOURS[number % len(COLOURS)]
        for index, (label, value) in enumerate(zip(chart.labels, series.values, strict=True)):
            amount = value or 0
            top = _y(chart, amount)
            left = _x(chart, index, step) - bar_width * count / 2 + number * bar_width
            bars.append(
                (
                    round(left, 1),
                    round(top, 1),
                    round(bar_width - 1, 1),
                    round(TOP + PLOT_HEIGHT - top, 1),
                    colour,
                    f"{series.label}, {label}: {chart.format(value)}",
                )
            )
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        bars,
    )
    return _frame(chart, body)

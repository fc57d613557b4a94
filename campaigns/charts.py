"""The campaign statistics chart of the admin (SPEC §3 campaigns, "Stats"): grouped bars per
step, drawn on the server as SVG markup (no script, no third-party request; presentation
attributes only, which the admin's Content-Security-Policy allows), with the table of the same
numbers beside it for those who do not see the drawing.

Pure functions from `campaigns.selectors.campaign_stats` to markup: every text escaped.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import StepChannel

# The bars of each step, in order, with their colour (Okabe-Ito: told apart by colour-blind
# readers too).
SERIES: tuple[tuple[str, Any, str], ...] = (
    ("targeted", _("targeted"), "#0072B2"),
    ("sent", _("sent"), "#56B4E9"),
    ("delivered", _("delivered"), "#009E73"),
    ("bounced", _("bounced"), "#E69F00"),
    ("complained", _("complained"), "#D55E00"),
    ("unsubscribed", _("unsubscribed"), "#CC79A7"),
)
BAR_WIDTH = 16
GROUP_GAP = 40
PLOT_HEIGHT = 180
LEFT = 48  # room for the scale's numbers
TOP = 36  # room for the legend
BOTTOM = 28  # room for the steps' names
LEGEND_ITEM_WIDTH = 100
TITLE_ID = "campaign-stats-title"


def step_label(step: Mapping[str, Any]) -> str:
    """ "Step 1 (Email)": a step's name in the chart and the table."""
    channel = step["channel"]
    name = StepChannel(channel).label if channel in StepChannel.values else channel
    return gettext("Step %(position)s (%(channel)s)") % {
        "position": step["position"],
        "channel": name,
    }


def stats_chart_svg(steps: Sequence[Mapping[str, Any]]) -> SafeString:
    """The grouped bar chart of `step_stats` (one group per step, one bar per count), an
    accessible image: `role="img"`, its title and a description naming every number."""
    group_width = len(SERIES) * BAR_WIDTH + GROUP_GAP
    width = max(LEFT + len(steps) * group_width, LEFT + len(SERIES) * LEGEND_ITEM_WIDTH)
    height = TOP + PLOT_HEIGHT + BOTTOM
    highest = max([step[name] for step in steps for name, _label, _colour in SERIES] + [1])
    title = gettext("Campaign statistics per step")
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{}" '
        'width="{}" height="{}" viewBox="0 0 {} {}" class="campaign-stats-chart">'
        '<title id="{}">{}</title><desc>{}</desc>{}{}{}</svg>',
        TITLE_ID,
        width,
        height,
        width,
        height,
        TITLE_ID,
        title,
        _description(steps),
        _legend(),
        _scale(highest, width),
        format_html_join(
            "",
            "{}",
            ((_group(step, index, group_width, highest),) for index, step in enumerate(steps)),
        ),
    )


def _description(steps: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(
        "{}: {}".format(
            step_label(step),
            ", ".join(f"{label!s} {step[name]}" for name, label, _colour in SERIES),
        )
        for step in steps
    ) or gettext("No step yet.")


def _legend() -> SafeString:
    return format_html_join(
        "",
        '<rect x="{}" y="8" width="12" height="12" fill="{}"/>'
        '<text x="{}" y="18" font-size="12">{}</text>',
        (
            (
                LEFT + index * LEGEND_ITEM_WIDTH,
                colour,
                LEFT + index * LEGEND_ITEM_WIDTH + 16,
                label,
            )
            for index, (_name, label, colour) in enumerate(SERIES)
        ),
    )


def _scale(highest: int, width: int) -> SafeString:
    """The base line, and the highest value's line with its number."""
    base = TOP + PLOT_HEIGHT
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#767676"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d0d0d0"/>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end">0</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>',
        LEFT,
        base,
        width,
        base,
        LEFT,
        TOP,
        width,
        TOP,
        LEFT - 6,
        base + 4,
        LEFT - 6,
        TOP + 4,
        highest,
    )


def _group(step: Mapping[str, Any], index: int, group_width: int, highest: int) -> SafeString:
    left = LEFT + GROUP_GAP // 2 + index * group_width
    base = TOP + PLOT_HEIGHT
    bars = []
    for position, (name, label, colour) in enumerate(SERIES):
        value = int(step[name])
        bar_height = round(PLOT_HEIGHT * value / highest)
        bars.append(
            (
                left + position * BAR_WIDTH,
                base - bar_height,
                BAR_WIDTH - 2,
                bar_height,
                colour,
                f"{label!s}: {value}",
            )
        )
    return format_html(
        '<g class="step">{}<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text></g>',
        format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
            bars,
        ),
        left + len(SERIES) * BAR_WIDTH // 2,
        base + 18,
        step_label(step),
    )


def stats_context(
    stats: Mapping[str, Any], reason_label: Callable[[str], str] = str
) -> dict[str, Any]:
    """What `admin/campaigns/campaign/stats.html` shows: the chart, and its numbers as a table
    (a row per step, the campaign's totals below, the exclusions per reason in words)."""
    steps: Sequence[Mapping[str, Any]] = stats["steps"]

    def excluded(counts: Mapping[str, int]) -> str:
        return ", ".join(
            gettext("%(reason)s: %(count)d") % {"reason": reason_label(reason), "count": count}
            for reason, count in counts.items()
        )

    return {
        "chart": stats_chart_svg(steps),
        "headers": [label for _name, label, _colour in SERIES],
        "rows": [
            {
                "label": step_label(step),
                "values": [step[name] for name, _label, _colour in SERIES],
                "excluded": excluded(step["excluded"]),
            }
            for step in steps
        ],
        "total": {
            "values": [stats[name] for name, _label, _colour in SERIES],
            "excluded": excluded(stats["excluded"]),
        },
    }

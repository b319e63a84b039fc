"""The HTML statement's charts: matplotlib figures as self-contained SVG data URIs (no JavaScript, nothing
fetched when the page is viewed).

Pure: figures are built with matplotlib's object API (no pyplot, no global state, no display), and the
SVG is byte-identical for identical input (fixed id salt, no creation date), so a re-run republishes the
same statement bytes. Each chart is its own SVG document in an `<img>`, so its ids and styles cannot
clash with the page's or another chart's. The bars are drawn from floats: the figures a reader relies
on are the exact amounts in the tables beside them.
"""

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

# matplotlib (about 30 MiB) is imported by the functions that draw, not with the module: the hourly and
# daily runs, which import every asset's module, never draw.

# Colours of the cost types (colour-blind-safe Okabe-Ito), in stacking order.
COST_TYPE_COLOURS = {"PTU usage": "#0072B2", "Unused PTU capacity": "#E69F00", "Pay-as-you-go": "#009E73"}
PRODUCT_COLOUR = "#0072B2"
# Text stays text (the viewer's sans-serif font: searchable, small); a short font list keeps the SVG small.
SVG_SETTINGS = {
    "svg.hashsalt": "chargeback-statement",
    "svg.fonttype": "none",
    "font.size": 8,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial"],
}
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
MAX_BARS = 15  # products drawn in the cost-by-product chart; the rest are one bar
# A product id is whatever the logs said: control characters have no glyph (drawn as a space) and a pair
# of `$` would be parsed as mathtext (escaped). The exact id is in the table beside the chart.
LABEL_TEXT = {code: " " for code in (*range(32), 127)} | {ord("$"): r"\$"}


def daily_cost_chart(days: Sequence[date], series: Mapping[str, Sequence[Decimal | None]], currency: str) -> str:
    """Stacked bars of each day's cost by cost type (`series`: a cost type's amount per day, None for a
    day without a chargeback, drawn as no bar); an SVG data URI."""
    import matplotlib

    with matplotlib.rc_context(SVG_SETTINGS):
        return _daily_cost_chart(days, series, currency)


def _daily_cost_chart(days, series, currency) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 2.6))
    axes = figure.add_subplot()
    positions = list(range(len(days)))
    bottom = [0.0] * len(days)
    for name, amounts in series.items():
        values = [float(a) if a is not None else 0.0 for a in amounts]
        axes.bar(positions, values, bottom=bottom, label=name, color=COST_TYPE_COLOURS.get(name), width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(positions, [f"{day.day}" for day in days])
    axes.set_xlabel(f"day of {days[0]:%B %Y}" if days else "day")
    axes.set_ylabel(currency)
    axes.legend(loc="upper left", frameon=False, ncols=len(series), fontsize=7)
    axes.set_ylim(0, max(bottom, default=0) * 1.25 or 1)
    _tidy(axes)
    # Fixed margins (the labels here have a known size): tight_layout would draw every daily chart twice.
    figure.subplots_adjust(left=0.09, right=0.98, top=0.97, bottom=0.17)
    return _svg(figure, tight=False)


def cost_by_product_chart(costs: Mapping[str, Decimal], currency: str) -> str:
    """Horizontal bars of each product's cost, largest first (beyond MAX_BARS the rest are one bar)."""
    import matplotlib

    with matplotlib.rc_context(SVG_SETTINGS):
        return _cost_by_product_chart(costs, currency)


def _cost_by_product_chart(costs, currency) -> str:
    ranked = sorted(costs.items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) > MAX_BARS:
        rest = ranked[MAX_BARS - 1 :]
        ranked = [*ranked[: MAX_BARS - 1], (f"{len(rest)} other products", sum((c for _, c in rest), Decimal(0)))]
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 0.35 * len(ranked) + 0.8))
    axes = figure.add_subplot()
    # Positions, not categories: two ids that print alike stay two bars.
    positions = range(len(ranked))
    axes.barh(positions, [float(cost) for _, cost in ranked][::-1], color=PRODUCT_COLOUR)
    axes.set_yticks(positions, [name.translate(LABEL_TEXT) for name, _ in ranked][::-1])
    axes.set_xlabel(currency)
    _tidy(axes)
    return _svg(figure)


def _tidy(axes) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.grid(axis="y" if axes.get_xlabel().startswith("day") else "x", color="#dddddd", linewidth=0.5)
    axes.set_axisbelow(True)


def _svg(figure, tight: bool = True) -> str:
    buffer = io.BytesIO()
    if tight:
        figure.tight_layout()
    figure.savefig(buffer, format="svg", metadata=NO_METADATA)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

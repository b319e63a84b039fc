"""The monthly statement people read: one self-contained HTML file (an overview, then a page a product),
and the same figures as a markdown preview for the asset's metadata.

Pure (no Dagster, no data I/O: it reads only its own template, package data). Every amount comes
from the statement table as published (its Parquet read back) or from the breakdowns by day and by
model summed from the same daily lines; `statement_view` refuses breakdowns that do not add up to their
statement row to the last digit, so the pages cannot disagree with the Parquet. Money is shown at its
currency's minor unit (ISO 4217), as in the CSVs. The template is autoescaped (a product id is text,
never markup), its CSS inline, its charts SVG data URIs: the file fetches nothing when opened, from
Blob, a mail attachment or a disk.
"""

from datetime import date
from decimal import Decimal
from importlib import resources

import jinja2
import pyarrow as pa

from chargeback_pipeline.core.billing import statement_charts
from chargeback_pipeline.core.billing.pricing import ISO_4217_MINOR_UNITS
from chargeback_pipeline.core.billing.schemas import RESERVED_PRODUCTS
from chargeback_pipeline.core.billing.statements import NO_CHARGEBACK
from chargeback_pipeline.core.periods import days_of_month, month_start

TEMPLATE = "statement.html.j2"
COST_TYPES = {"ptu_usage_cost": "PTU usage", "ptu_unused_cost": "Unused PTU capacity", "paygo_cost": "Pay-as-you-go"}
COST_TYPE_NAMES = {"ptu": "PTU usage", "ptu_unused": "Unused PTU capacity", "paygo": "Pay-as-you-go"}
MONEY_COLUMNS = ("total_cost", *COST_TYPES)
PREVIEW_PRODUCT_COLUMNS = (
    "product_id", "currency", "total_cost", "ptu_usage_cost", "ptu_share",
    "ptu_unused_cost", "paygo_cost", "total_tokens",
)  # fmt: skip


class StatementMismatch(ValueError):
    """A breakdown that does not add up to its statement row (a bug: both sum the same lines)."""


def money_text(amount: Decimal | None, currency: str) -> str:
    """`1,234.50`: at the currency's minor unit (every digit kept if it has more, never rounded)."""
    if amount is None:
        return ""
    minor_unit = ISO_4217_MINOR_UNITS.get(currency)
    if minor_unit is None:
        return f"{amount.normalize():,f}"
    quantum = Decimal(1).scaleb(-minor_unit)
    shown = amount.quantize(quantum)
    return f"{shown if shown == amount else amount:,}"


def percent_text(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole * 100:.1f} %" if whole else ""


def statement_view(
    month: date | str,
    statement: pa.Table,
    days: pa.Table,
    models: pa.Table,
    statuses: list[dict],
    callers: pa.Table | None = None,
) -> dict:
    """Everything the page and the preview show, formatted: the overview (totals per currency, products,
    each day's reconciliation status) and a page per statement row (product and currency); with `callers`
    (statements.statement_callers, months charged back with callers) each page splits by caller too."""
    start = month_start(month)
    month_days = days_of_month(start)
    rows = statement.to_pylist()
    day_rows, model_rows = days.to_pylist(), models.to_pylist()
    _check_adds_up(rows, day_rows, model_rows)
    currencies = sorted({row["currency"] for row in rows})
    totals = {currency: _totals([r for r in rows if r["currency"] == currency]) for currency in currencies}
    products = []
    for index, row in enumerate(sorted(rows, key=lambda r: (r["currency"], -r["total_cost"], r["product_id"]))):
        key = (row["product_id"], row["currency"])
        own_days = {d["usage_date"]: d for d in day_rows if (d["product_id"], d["currency"]) == key}
        products.append(
            _product(index, row, totals[row["currency"]], own_days, month_days, statuses, model_rows, start)
            | {"callers": _callers(row, callers)}
        )
    day_costs = {
        day: {c: sum((d["total_cost"] for d in day_rows if d["usage_date"] == day and d["currency"] == c), Decimal(0))
              for c in currencies}
        for day in month_days
    }  # fmt: skip
    return {
        "month": f"{start:%Y-%m}",
        "month_name": f"{start:%B %Y}",
        "days_in_month": len(month_days),
        "days_covered": max((r["days_covered"] for r in rows), default=0),
        "currencies": [
            {"currency": c, **_formatted(totals[c], c), "unused_share": _unused_share(totals[c])} for c in currencies
        ],
        "products": products,
        "days": _grouped([_day(status, day_costs.get(status["usage_date"], {})) for status in statuses]),
        "issues": sum(1 for s in statuses if s["status"] not in ("reconciled", NO_CHARGEBACK)),
        "charts": {
            currency: statement_charts.cost_by_product_chart(
                {p["product_id"]: p["raw"]["total_cost"] for p in products if p["currency"] == currency}, currency
            )
            for currency in currencies
        },
        "daily_charts": {
            currency: statement_charts.daily_cost_chart(
                month_days,
                {
                    name: _day_sums([d for d in day_rows if d["currency"] == currency], month_days, column)
                    for column, name in COST_TYPES.items()
                },
                currency,
            )
            for currency in currencies
        },
    }


def _day_sums(day_rows: list[dict], month_days: list[date], column: str) -> list[Decimal | None]:
    """Per day, `column` summed over products; None for a day no product has (drawn as no bar)."""
    sums: dict[date, Decimal] = {}
    for row in day_rows:
        sums[row["usage_date"]] = sums.get(row["usage_date"], Decimal(0)) + row[column]
    return [sums.get(day) for day in month_days]


def _check_adds_up(rows: list[dict], day_rows: list[dict], model_rows: list[dict]) -> None:
    for row in rows:
        key = (row["product_id"], row["currency"])
        for name, parts in (("days", day_rows), ("models", model_rows)):
            summed = sum((p["total_cost"] for p in parts if (p["product_id"], p["currency"]) == key), Decimal(0))
            if summed != row["total_cost"]:
                raise StatementMismatch(
                    f"{row['product_id']} ({row['currency']}): its {name} add up to {summed}, "
                    f"its statement row says {row['total_cost']}"
                )


def _totals(rows: list[dict]) -> dict:
    sums = {c: sum((r[c] for r in rows), Decimal(0)) for c in MONEY_COLUMNS}
    for column in ("calls", "prompt_tokens", "completion_tokens", "total_tokens"):
        sums[column] = sum(r[column] for r in rows)
    sums["weighted_tokens"] = sum((r["weighted_tokens"] for r in rows), Decimal(0))
    return sums


def _formatted(figures: dict, currency: str) -> dict:
    """Money at the minor unit, counts with thousands separators; the exact values under `raw`."""
    shown = {c: money_text(figures[c], currency) for c in MONEY_COLUMNS if c in figures}
    for column in ("calls", "prompt_tokens", "completion_tokens", "total_tokens"):
        if column in figures:
            shown[column] = f"{figures[column]:,}"
    return shown | {"raw": figures}


def _unused_share(totals: dict) -> str:
    return percent_text(totals["ptu_unused_cost"], totals["ptu_usage_cost"] + totals["ptu_unused_cost"])


def _product(index, row, totals, own_days, month_days, statuses, model_rows, start) -> dict:
    currency = row["currency"]
    status_of = {s["usage_date"]: s["status"] for s in statuses}
    days = [
        {"usage_date": day, "status": status_of.get(day, ""), **_formatted(own_days[day], currency)}
        if day in own_days
        else {"usage_date": day, "status": status_of.get(day, ""), "raw": None}
        for day in month_days
    ]
    models = [
        {
            "model_name": m["model_name"] or "",
            "cost_type": COST_TYPE_NAMES.get(m["cost_type"], m["cost_type"]),
            **_formatted(m, currency),
        }
        for m in model_rows
        if (m["product_id"], m["currency"]) == (row["product_id"], currency)
    ]
    series = {
        name: [own_days[day][column] if day in own_days else None for day in month_days]
        for column, name in COST_TYPES.items()
    }
    return {
        "index": index,
        "product_id": row["product_id"],
        "currency": currency,
        "reserved": row["product_id"] in RESERVED_PRODUCTS,
        **_formatted(row, currency),
        "weighted_tokens": f"{row['weighted_tokens'].normalize():,f}",
        "ptu_share": percent_text(row["ptu_usage_cost"], totals["ptu_usage_cost"]),
        "cost_share": percent_text(row["total_cost"], totals["total_cost"]),
        "days_covered": row["days_covered"],
        "days_in_month": row["days_in_month"],
        "days": _grouped(days),
        "models": models,
        "chart": statement_charts.daily_cost_chart(month_days, series, currency),
        "month_name": f"{start:%B %Y}",
    }


def _callers(row: dict, callers: pa.Table | None) -> list[dict]:
    """The product's callers, costliest first (none without callers: the page is then as it was)."""
    if callers is None:
        return []
    own = [c for c in callers.to_pylist() if (c["product_id"], c["currency"]) == (row["product_id"], row["currency"])]
    own.sort(key=lambda c: (-c["total_cost"], c["caller_id"] or ""))
    return [{"caller_id": c["caller_id"] or "", **_formatted(c, row["currency"])} for c in own]


def _day(status: dict, costs: dict[str, Decimal]) -> dict:
    percent = status["worst_unattributed_percent"]
    tokens = status["unattributed_tokens"]
    return {
        **status,
        "cost": ""
        if status["status"] == NO_CHARGEBACK
        else ", ".join(f"{money_text(a, c)} {c}" for c, a in costs.items()),
        "unattributed": "" if tokens is None else f"{tokens:,}",
        "percent": "" if percent is None else f"{percent:.2f} %",
    }


def _grouped(days: list[dict]) -> list[dict]:
    """Consecutive days without a chargeback as one row (`2026-11-03 to 2026-11-30, 28 days`)."""
    grouped: list[dict] = []
    for day in days:
        previous = grouped[-1] if grouped else None
        if previous and day["status"] == previous["status"] == NO_CHARGEBACK:
            previous["last_date"] = day["usage_date"]
            previous["count"] += 1
            previous["label"] = f"{previous['usage_date']} to {day['usage_date']}, {previous['count']} days"
        else:
            grouped.append(day | {"last_date": day["usage_date"], "count": 1, "label": str(day["usage_date"])})
    return grouped


def render_html(view: dict) -> str:
    """The statement as one self-contained HTML page (UTF-8)."""
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt figure fails the render, never shows as blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE).render(view)


def _template(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_markdown(view: dict, product_limit: int = 20) -> str:
    """The overview's figures as markdown (the asset's metadata preview): totals, products, days."""
    totals = _markdown_table(
        ["currency", "total", "PTU usage", "unused PTU", "pay-as-you-go", "unused share of PTU"],
        [
            [
                c["currency"],
                c["total_cost"],
                c["ptu_usage_cost"],
                c["ptu_unused_cost"],
                c["paygo_cost"],
                c["unused_share"],
            ]
            for c in view["currencies"]
        ],
    )
    products = _markdown_table(
        ["product", "currency", "total", "PTU usage", "PTU share", "unused PTU", "pay-as-you-go", "tokens", "days"],
        [[p[c] for c in PREVIEW_PRODUCT_COLUMNS] + [str(p["days_covered"])] for p in view["products"][:product_limit]],
    )
    if len(view["products"]) > product_limit:
        products += f"\n\n_{len(view['products']) - product_limit:,} more products in the HTML statement_"
    days = _markdown_table(
        ["day", "reconciliation", "unattributed tokens", "worst gap", "cost", "note"],
        [[d["label"], d["status"], d["unattributed"], d["percent"], d["cost"], d["note"]] for d in view["days"]],
    )
    covered = f"**Statement {view['month']}**: {view['days_covered']} of {view['days_in_month']} days covered"
    return "\n\n".join([covered, totals, products, days])


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Text columns left, figures right (the first two are text), pipes and newlines escaped."""
    align = [
        "---" if i < 2 or headers[i] == "note" or headers[i] == "reconciliation" else "---:"
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

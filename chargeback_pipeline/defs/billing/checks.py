"""Checks of the money assets: each recomputes a total independently and shows both numbers.

These only judge; the assets measure while they build, and judge each day (or month) on its own numbers
(`defs/partition_checks.py`). Amounts are at the currency's minor unit, with the currency beside them.
"""

from collections import Counter
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.allocation import daily_totals_by_deployment
from chargeback_pipeline.core.billing.money import ptu_hourly_costs
from chargeback_pipeline.core.billing.pricing import BackendKind, Pricing
from chargeback_pipeline.defs.metadata import markdown_rows, money_text, money_value

COSTS_ADD_UP = "costs_add_up"
PAYGO_MATCHES_METERED = "paygo_matches_metered_tokens"
NO_NEGATIVE_LINES = "no_negative_lines"
STATEMENT_MATCHES_DAYS = "statement_matches_daily_chargeback"
FOCUS_MATCHES_CHARGEBACK = "focus_matches_chargeback"
NUMERIC_COLUMNS = ("calls", "prompt_tokens", "completion_tokens", "weighted_tokens", "ptu_cost", "paygo_cost")


def ptu_cost_comparison(pricing: Pricing, day: date, lines: pa.Table) -> list[dict]:
    """Per PTU deployment: the day's 24 hour costs from the pricing file, and what its lines charge."""
    charged = daily_totals_by_deployment(lines)
    rows = []
    for backend_id, backend in sorted(pricing.backends.items()):
        if backend.kind != BackendKind.ptu:
            continue
        for name in sorted(backend.deployments):
            hours = sum(ptu_hourly_costs(pricing, backend_id, name, day), Decimal(0))
            lines_sum = charged.get((backend_id, name), Decimal(0))
            rows.append(
                {
                    "usage_date": day,
                    "deployment_name": name,
                    "backend_id": backend_id,
                    "hours_cost": hours,
                    "lines_sum": lines_sum,
                    "difference": lines_sum - hours,
                }
            )
    return rows


def paygo_cost_comparison(pricing: Pricing, day: date, lines: pa.Table, reconciliation: pa.Table) -> list[dict]:
    """Per pay-as-you-go backend (resource) and deployment with metrics: what Azure invoices (the day's
    metered tokens at the model's prices, rounded once to the minor unit, half to even) and what the
    chargeback's lines charge. Independent of the allocation: priced here from the daily reconciliation."""
    charged = daily_totals_by_deployment(lines)
    quantum = Decimal(1).scaleb(-pricing.currency_minor_unit)
    rows = []
    for row in reconciliation.filter(reconciliation["has_metrics"]).to_pylist():
        backend = pricing.backends.get(row["backend_id"])
        if backend is None or backend.kind != BackendKind.paygo:
            continue
        prices = pricing.token_prices_on(pricing.deployment(row["backend_id"], row["deployment_name"]).model, day)
        exact = (
            row["metric_prompt_tokens"] * prices.input_per_1k + row["metric_completion_tokens"] * prices.output_per_1k
        ) / 1000
        invoiced = exact.quantize(quantum, rounding=ROUND_HALF_EVEN)
        lines_sum = charged.get((row["backend_id"], row["deployment_name"]), Decimal(0))
        rows.append(
            {
                "usage_date": day,
                "deployment_name": row["deployment_name"],
                "backend_id": row["backend_id"],
                "metered_tokens": row["metric_prompt_tokens"] + row["metric_completion_tokens"],
                "metered_cost": invoiced,
                "lines_sum": lines_sum,
                "difference": lines_sum - invoiced,
            }
        )
    return rows


def _currency(currency: str | None) -> dict:
    return {"currency": currency} if currency else {}


def paygo_matches_metered(
    asset: dg.AssetKey, comparison: list[dict], currency: str | None = None
) -> dg.AssetCheckResult:
    wrong = [row for row in comparison if row["difference"] != 0]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=PAYGO_MATCHES_METERED,
        passed=not wrong,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "A difference comes from tokens APIM logged (or billed) above what the deployment metered, which no "
            "line can charge: see the chargeback's logged_above_metrics metadata"
            if wrong
            else None
        ),
        metadata={
            "paygo_deployment_days_checked": len(comparison),
            "paygo_deployment_days_off": len(wrong),
            "metered_cost": money_value(sum((r["metered_cost"] for r in comparison), Decimal(0)), currency),
            "paygo_lines_sum": money_value(sum((r["lines_sum"] for r in comparison), Decimal(0)), currency),
            **_currency(currency),
            "per_deployment_day": markdown_rows(
                wrong or comparison, limit=30, empty="_no pay-as-you-go deployments_", currency=currency
            ),
        },
    )


def costs_add_up(asset: dg.AssetKey, comparison: list[dict], currency: str | None = None) -> dg.AssetCheckResult:
    wrong = [row for row in comparison if row["difference"] != 0]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=COSTS_ADD_UP,
        passed=not wrong,
        metadata={
            "ptu_deployment_days_checked": len(comparison),
            "ptu_deployment_days_off": len(wrong),
            "ptu_hours_cost": money_value(sum((r["hours_cost"] for r in comparison), Decimal(0)), currency),
            "ptu_lines_sum": money_value(sum((r["lines_sum"] for r in comparison), Decimal(0)), currency),
            **_currency(currency),
            "per_deployment_day": markdown_rows(
                wrong or comparison, limit=30, empty="_no PTU deployments_", currency=currency
            ),
        },
    )


def no_negative_lines(asset: dg.AssetKey, lines: pa.Table) -> dg.AssetCheckResult:
    negative = [row for row in lines.to_pylist() if any((row[column] or 0) < 0 for column in NUMERIC_COLUMNS)]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=NO_NEGATIVE_LINES,
        passed=not negative,
        metadata={
            "lines_checked": lines.num_rows,
            "negative_lines": len(negative),
            "columns_checked": list(NUMERIC_COLUMNS),
            "examples": markdown_rows(negative[:10], empty="_none_"),
        },
    )


def cost_per_product(table: pa.Table, period: date, product_column: str, cost_column: str) -> Counter:
    """{(period, product): cost} of a table: chargeback or statement (product_id, total_cost), FOCUS
    (SubAccountId, BilledCost). Add them up with Counter.update, which, unlike +, keeps zeros and negatives."""
    totals: Counter = Counter()
    for product, cost in zip(table[product_column].to_pylist(), table[cost_column].to_pylist(), strict=True):
        totals[(str(period), product)] += cost
    return totals


def _mismatched(published: dict, expected: dict) -> list:
    return sorted(key for key in expected.keys() | published.keys() if published.get(key) != expected.get(key))


def totals_match(
    asset: dg.AssetKey,
    check_name: str,
    published: dict,
    expected: dict,
    currency: str | None = None,
    by_caller: dict | None = None,
) -> dg.AssetCheckResult:
    """Published totals (read back from the file) against totals recomputed from the daily lines; and, for
    a month charged back with callers, the statement by caller (read back) against the same totals: each
    product's callers add up to it."""
    wrong = _mismatched(published, expected)
    metadata = {
        "published_total_cost": money_value(sum(published.values(), Decimal(0)), currency),
        "daily_lines_total_cost": money_value(sum(expected.values(), Decimal(0)), currency),
        **_currency(currency),
        "keys_checked": len(expected),
        "mismatches": [f"{key}: published {published.get(key)}, daily lines {expected.get(key)}" for key in wrong],
    }
    wrong_by_caller = [] if by_caller is None else _mismatched(by_caller, expected)
    if by_caller is not None:
        metadata["by_caller_total_cost"] = money_value(sum(by_caller.values(), Decimal(0)), currency)
        metadata["by_caller_mismatches"] = [
            f"{key}: by caller {by_caller.get(key)}, daily lines {expected.get(key)}" for key in wrong_by_caller
        ]
    return dg.AssetCheckResult(
        asset_key=asset, check_name=check_name, passed=not wrong and not wrong_by_caller, metadata=metadata
    )


# The kinds of row a FOCUS export is checked by, each against its own reference, never summed together.
PRODUCT_ROWS, ORIGIN_CHARGES, HUBS_COPY = "product_rows", "origin_charges", "hubs_copy"
PRODUCT_EFFECTIVE = "product_effective_cost"  # EffectiveCost per product (product_rows: BilledCost)
_KIND_REFERENCE = {
    PRODUCT_ROWS: "the day's chargeback, per product",
    PRODUCT_EFFECTIVE: "the day's chargeback's amortized cost (total_cost), per product",
    ORIGIN_CHARGES: "each origin charge's cost (the split the chargeback persisted)",
    HUBS_COPY: "the day's chargeback total (billed)",
}


def totals_match_by_kind(
    asset: dg.AssetKey, check_name: str, published: dict, expected: dict, currency: str, minor_unit: int = 2
) -> dg.AssetCheckResult:
    """Published totals against their references, keyed (period, kind, name): each kind of row (the
    export's per-product rows, its rows per origin charge, the hubs copy) is summed and compared on its
    own. Summing them together would count the day once per kind."""
    wrong = sorted(key for key in expected.keys() | published.keys() if published.get(key) != expected.get(key))
    kinds = sorted({key[1] for key in expected.keys() | published.keys()}, key=list(_KIND_REFERENCE).index)
    rows, per_kind = [], {}
    for kind in kinds:
        kind_published = sum((v for k, v in published.items() if k[1] == kind), Decimal(0))
        kind_expected = sum((v for k, v in expected.items() if k[1] == kind), Decimal(0))
        per_kind[f"{kind}_cost"] = money_value(kind_published, currency, minor_unit)
        per_kind[f"{kind}_reference_cost"] = money_value(kind_expected, currency, minor_unit)
        rows.append(
            {
                "kind": kind,
                "published": money_text(kind_published, currency, minor_unit),
                "reference": money_text(kind_expected, currency, minor_unit),
                "reference_is": _KIND_REFERENCE[kind],
                "keys": sum(1 for k in expected if k[1] == kind),
                "mismatched_keys": sum(1 for k in wrong if k[1] == kind),
            }
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check_name,
        passed=not wrong,
        metadata={
            **per_kind,
            "currency": currency,
            "by_kind": markdown_rows(rows, limit=10),
            "mismatches": [
                f"{key[1]} {key[2]}: published {published.get(key)}, reference {expected.get(key)}" for key in wrong
            ],
        },
    )

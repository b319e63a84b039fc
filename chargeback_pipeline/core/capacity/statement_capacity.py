"""The statement's PTU capacity part, formatted: per PTU deployment its count, rate, cost, utilisation,
unused capacity (amount and share) and effective price per 1,000 tokens (`capacity_month`), and per
currency the month's unused capacity, shown under every unused-capacity policy.

Pure: it formats the published `ptu_capacity` rows; `statement_html` puts them on the page.
"""

from decimal import Decimal

import pyarrow as pa

POLICY_WORDS = {
    "proportional": "spread over the products' PTU usage, in proportion to their weighted tokens",
    "unallocated": "billed apart, on the platform-unallocated line",
    "fixed": "billed apart, split by the pricing file's fixed shares",
}


def capacity_view(capacity: pa.Table | None, money_text) -> dict:
    """{"deployments": [...], "totals": {currency: {...}}}; empty when no PTU deployment was measured."""
    rows = capacity.to_pylist() if capacity is not None else []
    deployments = [
        {
            "deployment": f"{r['backend_id']}/{r['deployment_name']}",
            "model_name": r["model_name"],
            "ptu_count": r["ptu_count"],
            "rate": r["rate"],
            "ptu_cost": money_text(r["ptu_cost"], r["currency"]),
            "utilization": f"{r['utilization_percent']:.1f} %",
            "unused_cost": money_text(r["unused_cost"], r["currency"]),
            "unused_share": f"{r['unused_share_percent']:.1f} %",
            "effective_price": (
                ""
                if r["effective_price_per_1k_tokens"] is None
                else f"{r['effective_price_per_1k_tokens'].normalize():f} {r['currency']}"
            ),
            "saturated_minutes": "" if r["saturated_minutes"] is None else f"{r['saturated_minutes']:,}",
            "currency": r["currency"],
            "hours": r["hours"],
        }
        for r in rows
    ]
    totals = {}
    for currency in sorted({r["currency"] for r in rows}):
        own = [r for r in rows if r["currency"] == currency]
        cost = sum((r["ptu_cost"] for r in own), Decimal(0))
        unused = sum((r["unused_cost"] for r in own), Decimal(0))
        totals[currency] = {
            "ptu_cost": money_text(cost, currency),
            "unused_cost": money_text(unused, currency),
            "unused_share": f"{unused / cost * 100:.1f} %" if cost else "0.0 %",
            "raw_unused_cost": unused,
            "policy": own[0]["unused_capacity_policy"],
            "policy_words": POLICY_WORDS.get(own[0]["unused_capacity_policy"], own[0]["unused_capacity_policy"]),
        }
    return {"deployments": deployments, "totals": totals}

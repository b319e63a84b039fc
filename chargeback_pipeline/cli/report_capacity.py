"""`chargeback report`'s PTU capacity lines: per PTU deployment the period's utilisation and unused
capacity (amount and share of its PTU cost) and effective price per 1,000 tokens. A MONTH reads them from
the published `ptu_capacity` file; a DAY (no daily capacity file is published) computes them with the same
function from the lake's hourly `ptu_utilization` rows of that day and the pricing file. Shown under every
unused-capacity policy: the policy decides who pays for idle capacity, never whether there was any."""

from datetime import date

import pyarrow as pa


def capacity_rows(store, month: date) -> list[dict]:
    """The month's published PTU capacity rows; none when the month has no PTU deployment measured."""
    from chargeback_pipeline.storage import keys
    from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes

    key = keys.ptu_capacity_key(month, "parquet")
    if not store.exists(key):
        return []
    table: pa.Table = read_parquet_bytes(store.read_bytes(key))
    return table.to_pylist()


def day_capacity_rows(lake, pricing, day: date) -> list[dict]:
    """The day's PTU capacity rows (PTU_CAPACITY_SCHEMA, its hours only) from the lake's measured hours of
    `ptu_utilization`; none without a pricing file or a measured hour."""
    from chargeback_pipeline.core.capacity.capacity_month import month_capacity
    from chargeback_pipeline.core.capacity.utilisation import PTU_UTILIZATION_SCHEMA
    from chargeback_pipeline.core.periods import day_hours
    from chargeback_pipeline.storage import keys

    if not pricing.path:
        return []
    store = lake.lake()
    measured = [keys.hour_key(keys.PTU_UTILIZATION, h) for h in day_hours(day)]
    measured = [key for key in measured if store.store.exists(key)]
    if not measured:
        return []
    return month_capacity(store.read_many(measured, PTU_UTILIZATION_SCHEMA), pricing.pricing(), day).to_pylist()


def capacity_lines(rows: list[dict]) -> list[str]:
    """Aligned lines for the terminal, then the month's unused capacity per currency and the policy."""
    if not rows:
        return []
    cells = [
        [
            f"{r['backend_id']}/{r['deployment_name']}",
            f"{r['ptu_count']} PTU",
            f"utilisation {r['utilization_percent']:.1f} %",
            f"unused {r['unused_cost']:,.2f} {r['currency']} "
            f"({r['unused_share_percent']:.1f} % of {r['ptu_cost']:,.2f})",
            ""
            if r["effective_price_per_1k_tokens"] is None
            else f"{r['effective_price_per_1k_tokens'].normalize():f} {r['currency']} per 1K tokens",
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    hours = max(r["hours"] for r in rows)
    lines = [
        "",
        f"PTU capacity, {hours} hours measured, at the pricing file's PTU rates (an estimate, not Azure's bill; "
        "unused capacity is paid under every policy):",
    ]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    for currency in sorted({r["currency"] for r in rows}):
        own = [r for r in rows if r["currency"] == currency]
        cost, unused = sum(r["ptu_cost"] for r in own), sum(r["unused_cost"] for r in own)
        share = f"{unused / cost * 100:.1f} %" if cost else "0.0 %"
        lines.append(
            f"  unused PTU capacity: {unused:,.2f} {currency} ({share} of {cost:,.2f} {currency} PTU cost); "
            f"policy {own[0]['unused_capacity_policy']} decides who pays it"
        )
    return lines

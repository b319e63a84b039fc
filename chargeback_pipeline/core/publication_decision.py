"""The publication decision of a day (or a month): all its staged outputs replace the published ones, or none.

Each output is measured (`OutputSize`: rows, products, total) by its `OutputRule`, and compared with what
the publication manifest says was published before. An output shrinks when it would lose a product that
was published (even when another one appears with the same totals), fewer counted rows, or a smaller
total: what lost source data looks like (a re-pull that found half the logs, an export cut short).
Lines that legitimately shrink as late rows arrive (pseudo-products such as `unattributed`, usage rows
without billable calls) are not counted. One shrinking output holds the whole day, unless the day is
published by an override with a reason, which the manifest records.

Money outputs also carry their cost basis (README "Actual cost"): `estimate`, or `actual:<export runs>`.
A new basis (a day turning actual, a new export run restating it) changes the money and the rows on
purpose: then only a lost product holds the day, the total and rows are the export's. An actual output
is never replaced by an estimate.
"""

from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.core.billing.schemas import RESERVED_PRODUCTS
from chargeback_pipeline.core.reports import RECONCILIATION_LINES

PSEUDO_PRODUCTS = frozenset(RESERVED_PRODUCTS) | frozenset(RECONCILIATION_LINES)
# How many products a manifest lists by name (beyond, only their count and a digest of the names).
PRODUCTS_LISTED = 10_000


@dataclass(frozen=True)
class OutputRule:
    """How an output is measured: its product column (the first present of `product_columns`; none:
    only rows and total), its total column, and the column whose positive rows alone count."""

    product_columns: tuple[str, ...] = ()
    total_column: str | None = None
    usage_column: str | None = None
    basis_columns: tuple[str, str] | None = None  # (cost basis, export run) columns of a money output


# Per output (its file name without extension, or `finops_hubs`).
RULES = {
    "product_usage": OutputRule(("product_id",), "total_tokens", "calls"),
    "chargeback": OutputRule(("product_id",), "total_cost", basis_columns=("cost_basis", "export_run_id")),
    "focus": OutputRule(
        ("x_ApiManagementProductId", "SubAccountId"), "BilledCost", basis_columns=("x_CostBasis", "x_ExportRunId")
    ),
    "finops_hubs": OutputRule(("SubAccountId",), "BilledCost", basis_columns=("x_CostBasis", "x_ExportRunId")),
    "cost_anomalies": OutputRule(("product_id",), "cost"),
    "budget_status": OutputRule(("product_id",), "spend_to_date"),
    "statement": OutputRule(("product_id",), "total_cost"),
    "ptu_rightsizing": OutputRule((), "current_cost"),
    "ptu_what_if": OutputRule(()),
}


@dataclass(frozen=True)
class OutputSize:
    rows: int  # counted rows: of real products (and with usage, where the rule says so)
    products: tuple[str, ...]
    total: Decimal
    basis: str | None = None  # a money output's cost basis: `estimate` or `actual:<export run ids>`

    def record(self) -> dict:
        record = {"rows": self.rows, "products": list(self.products), "total": str(self.total)}
        return record | ({"basis": self.basis} if self.basis is not None else {})

    @classmethod
    def from_record(cls, record: dict) -> "OutputSize":
        return cls(
            int(record["rows"]),
            tuple(record.get("products", ())),
            Decimal(record.get("total", "0")),
            record.get("basis"),
        )


def measure(rule: OutputRule, table: pa.Table) -> OutputSize:
    column = next((c for c in rule.product_columns if c in table.column_names), None)
    if column is not None:
        pseudo = pa.array(sorted(PSEUDO_PRODUCTS), pa.string())
        is_pseudo = pc.fill_null(pc.is_in(table[column].cast(pa.string()), value_set=pseudo), False)
        table = table.filter(pc.invert(is_pseudo))
    if rule.usage_column is not None and rule.usage_column in table.column_names:
        table = table.filter(pc.fill_null(pc.greater(table[rule.usage_column], 0), False))
    products = () if column is None else tuple(sorted({p for p in table[column].to_pylist() if p is not None}))
    total = Decimal(0)
    if rule.total_column is not None and rule.total_column in table.column_names:
        total = sum((Decimal(str(v)) for v in table[rule.total_column].to_pylist() if v is not None), Decimal(0))
    return OutputSize(table.num_rows, products, total, _basis(rule, table))


def _basis(rule: OutputRule, table: pa.Table) -> str | None:
    if rule.basis_columns is None:
        return None
    basis_column, run_column = rule.basis_columns
    bases = set(table[basis_column].to_pylist()) if basis_column in table.column_names else set()
    if "actual" not in bases:
        return "estimate"  # also a file from before the cost basis was kept
    runs = set(table[run_column].to_pylist()) - {None} if run_column in table.column_names else set()
    return f"actual:{','.join(sorted(runs))}"


def shrink(name: str, previous: OutputSize, new: OutputSize) -> str | None:
    """Why `new` may not replace `previous` without an override; None when it may."""
    lost = sorted(set(previous.products) - set(new.products))
    if (previous.basis or "").startswith("actual") and new.basis == "estimate":
        return f"{name}: would replace the actual cost ({previous.basis}) with an estimate"
    rebased = previous.basis != new.basis and (new.basis or "").startswith("actual")
    if not lost and (rebased or (new.rows >= previous.rows and new.total >= previous.total)):
        return None
    parts = []
    if lost:
        shown = ", ".join(repr(p) for p in lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
        parts.append(f"products lost: {shown}")
    parts.append(f"rows {previous.rows:,} -> {new.rows:,}")
    parts.append(f"total {previous.total:,} -> {new.total:,}")
    return f"{name}: {', '.join(parts)}"

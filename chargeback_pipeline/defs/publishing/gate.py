"""The gate that every published daily file passes (usage report, chargeback).

Two rules, each with an explicit override that is recorded:

- A day whose reconciliation is blocked is not published: its previously published files, if any, stay
  untouched, and the step fails naming the deployment-days. The override (run config
  `publish_despite_blocked_reconciliation` with an `override_reason`, or the CLI flag of the same name)
  publishes anyway and records that it did, beside the files (`reconciliation_override.json`) and in the
  run's metadata.
- A day never replaces its published file with a smaller one: fewer rows of real products, or a smaller
  total (attributed tokens for the usage report, cost for the chargeback), is what lost source data looks
  like (a re-pull that found half the logs, an export cut short). Such a day is held like a blocked one,
  the step fails naming the numbers. Rows that late data legitimately removes are not counted:
  pseudo-product lines (`unattributed`, `logged-not-billable`, `platform-unallocated`), whose tokens move
  to products as late rows arrive, and usage rows without billable calls (a failed request's row with
  model `unknown` merges into its model's row once its LLM record arrives). The override (run config
  `publish_despite_shrink: true` with a non-empty `override_reason`) publishes anyway and appends the
  numbers, reason and run id to `<report>_shrink_override.json` beside the files, kept across later runs
  as the day's audit trail, and lists the day in the metadata (`published_despite_shrink`).
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.core.reconciliation import BLOCK, where
from chargeback_pipeline.storage.keys import override_key, shrink_override_key
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes


class PublishConfig(dg.Config):
    publish_despite_blocked_reconciliation: bool = False
    # Replace a day's published file even with fewer product rows or a smaller total (needs override_reason).
    publish_despite_shrink: bool = False
    override_reason: str = ""


def blocked_reasons(reconciliation: pa.Table) -> list[str]:
    """One message per blocked resource-deployment-day, naming it, the worst hour and the numbers."""
    reasons = []
    for r in reconciliation.to_pylist():
        if BLOCK not in (r["day_verdict"], r["worst_hour_verdict"]):
            continue
        metric = r["metric_prompt_tokens"] + r["metric_completion_tokens"]
        logged = r["logged_prompt_tokens"] + r["logged_completion_tokens"]
        hour_gap = r["worst_hour_metric_tokens"] - r["worst_hour_logged_tokens"]
        reasons.append(
            f"{where(r)} on {r['usage_date']}: metrics {metric:,} tokens, APIM logged {logged:,}, "
            f"unattributed {metric - logged:,} ({r['unattributed_percent']}%, {r['day_verdict']}); worst hour "
            f"{r['worst_hour']:%H:00}: metrics {r['worst_hour_metric_tokens']:,}, logged "
            f"{r['worst_hour_logged_tokens']:,}, unattributed {hour_gap:,} "
            f"({r['worst_hour_unattributed_percent']}%, {r['worst_hour_verdict']})"
        )
    return reasons


@dataclass(frozen=True)
class ReportSize:
    """What a report must not lose when it replaces the published one."""

    product_rows: int  # rows of real products (pseudo-product lines, and rows without usage, not counted)
    total: int | Decimal  # their total: tokens or cost
    rows: int  # every row, pseudo-products included (for the message)

    def record(self) -> dict:
        return {name: str(value) if isinstance(value, Decimal) else value for name, value in asdict(self).items()}


@dataclass(frozen=True)
class ShrinkGuard:
    """How a report is compared with the one already published for the same day."""

    report: str  # its file name: `product_usage`, `chargeback`
    parquet_key: Callable[[date], str]  # where the published Parquet of a day is
    total_column: str  # `total_tokens`, `total_cost`
    pseudo_products: frozenset[str]  # lines that shrink as late data arrives: not counted
    usage_column: str | None = None  # when set, only rows where it is > 0 count as rows (`calls`)

    def size(self, table: pa.Table) -> ReportSize:
        pseudo = pa.array(sorted(self.pseudo_products), pa.string())
        is_pseudo = pc.fill_null(pc.is_in(table["product_id"], value_set=pseudo), False)
        real = table.filter(pc.invert(is_pseudo))
        total = sum(value for value in real[self.total_column].to_pylist() if value is not None)
        counted = real if self.usage_column is None else real.filter(pc.greater(real[self.usage_column], 0))
        return ReportSize(product_rows=counted.num_rows, total=total, rows=table.num_rows)


@dataclass(frozen=True)
class Shrink:
    day: date
    previous: ReportSize
    new: ReportSize

    def message(self, report: str, total_column: str) -> str:
        p, n = self.previous, self.new
        return (
            f"{report} of {self.day} would replace the published one with a smaller one: "
            f"{p.product_rows:,} product rows -> {n.product_rows:,}, {total_column} {p.total:,} -> {n.total:,} "
            f"(all rows {p.rows:,} -> {n.rows:,})"
        )


class PublicationGate:
    """Decides day by day whether `what` may be published to `target`; fails the step if a day was held.

    `guard`: compare each day's new report with its published file (`admits(..., report)`); without it,
    only the reconciliation is judged."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        target: ObjectStore,
        what: str,
        guard: ShrinkGuard | None = None,
    ):
        self.context, self.config, self.target, self.what, self.guard = context, config, target, what, guard
        self.blocked: list[str] = []  # reasons of the days held back by the reconciliation
        self.shrunk: list[str] = []  # days held back because they would replace a larger published file
        self.overridden: list[str] = []  # days published despite a blocked reconciliation
        self.shrink_overridden: list[str] = []  # days published smaller than before, by override

    def admits(self, day: date, reconciliation: pa.Table, report: pa.Table | None = None) -> bool:
        """Whether `day` may be published (with `report`, its new file, compared with the published one);
        an override is recorded beside the day's files before they are replaced."""
        reasons = blocked_reasons(reconciliation)
        if reasons and not self.config.publish_despite_blocked_reconciliation:
            self.blocked += reasons
            self.context.log.error(
                f"not publishing the {self.what} of {day}: reconciliation blocked: {'; '.join(reasons)}"
            )
            return False
        shrink = self._shrink(day, report) if report is not None and self.guard is not None else None
        if shrink is not None and not self._shrink_overridden():
            message = shrink.message(self.guard.report, self.guard.total_column)
            if self.config.publish_despite_shrink:
                message += " (publish_despite_shrink needs a non-empty override_reason)"
            self.shrunk.append(message)
            self.context.log.error(f"not publishing the {self.what} of {day}: {message}")
            return False
        if reasons:
            self.overridden.append(str(day))
            record = {"usage_date": str(day), "blocked": reasons, "reason": self.config.override_reason}
            self.target.write_bytes(override_key(day), json.dumps(record, indent=2).encode())
            self.context.log.warning(
                f"publishing the {self.what} of {day} despite blocked reconciliation: {self.config.override_reason!r}"
            )
        else:
            self.target.delete(override_key(day))
        if shrink is not None:
            self._record_shrink(shrink)
        return True

    def _shrink_overridden(self) -> bool:
        return self.config.publish_despite_shrink and bool(self.config.override_reason.strip())

    def _shrink(self, day: date, report: pa.Table) -> Shrink | None:
        """How `report` would shrink the day's published file; None when it would not (or none exists)."""
        key = self.guard.parquet_key(day)
        if not self.target.exists(key):
            return None
        try:
            previous = self.guard.size(read_parquet_bytes(self.target.read_bytes(key)))
        except (OSError, KeyError, ValueError, pa.ArrowException) as error:
            # A file that cannot be read is what a re-run repairs: replaced, but said.
            self.context.log.warning(f"published {key} cannot be compared ({error}); replacing it")
            return None
        new = self.guard.size(report)
        if new.product_rows >= previous.product_rows and new.total >= previous.total:
            return None
        return Shrink(day, previous, new)

    def _record_shrink(self, shrink: Shrink) -> None:
        """Append this replacement to the day's shrink record (kept across runs: the day's audit trail)."""
        key = shrink_override_key(shrink.day, self.guard.report)
        record = (
            json.loads(self.target.read_bytes(key))
            if self.target.exists(key)
            else {"report": self.guard.report, "usage_date": str(shrink.day), "total": self.guard.total_column}
        )
        record.setdefault("overrides", []).append(
            {
                "reason": self.config.override_reason,
                "run_id": self.context.run.run_id,
                "replaced": shrink.previous.record(),
                "published": shrink.new.record(),
            }
        )
        self.target.write_bytes(key, json.dumps(record, indent=2).encode())
        message = shrink.message(self.guard.report, self.guard.total_column)
        self.shrink_overridden.append(f"{message}: {self.config.override_reason}")
        self.context.log.warning(f"publishing despite shrinking: {message}: {self.config.override_reason!r}")

    def fail_if_blocked(self, published: list[str]) -> None:
        """Raise a Failure naming every held-back day (after the other days were published)."""
        if not self.blocked and not self.shrunk:
            return
        parts = []
        if self.blocked:
            parts.append(
                f"reconciliation blocked {len(self.blocked)} deployment-day(s); {self.what} not published: "
                f"{'; '.join(self.blocked)}. To publish anyway, run with config "
                "publish_despite_blocked_reconciliation: true and an override_reason (CLI: "
                "--publish-despite-blocked-reconciliation REASON)."
            )
        if self.shrunk:
            parts.append(
                f"{len(self.shrunk)} day(s) would replace a published {self.what} with a smaller one; not "
                f"published: {'; '.join(self.shrunk)}. If the smaller report is right (e.g. data deleted on "
                "purpose, a price lowered), run with config publish_despite_shrink: true and an override_reason."
            )
        raise dg.Failure(
            description=" ".join(parts) + " Previously published files are untouched.",
            metadata={"blocked": self.blocked, "shrunk": self.shrunk, "published": published},
        )

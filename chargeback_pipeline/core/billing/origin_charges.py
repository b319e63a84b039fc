"""Origin charges and their split: what each PTU deployment-hour and pay-as-you-go deployment-day cost,
and how much of it each chargeback line got.

The daily chargeback sums these shares into one line per product and day; the shares themselves are
kept (a lake object beside the day's lines) because FOCUS 1.3 models exactly this: one origin charge
split into allocated charges that sum to it. Recorded while `allocation.allocate_day` splits, never
recomputed, so the FOCUS rows and the chargeback cannot disagree.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa

from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.schemas import CALLER_ID, MONEY, QUANTITY, with_caller_column
from chargeback_pipeline.core.periods import utc_day_start
from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP

PTU_HOUR = "ptu"  # origin: one PTU deployment's hour
PAYGO_DAY = "paygo"  # origin: one pay-as-you-go deployment's day

# One row per (origin charge, chargeback line) share.
ORIGIN_ALLOCATION_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("origin_kind", pa.string()),  # PTU_HOUR or PAYGO_DAY
        ("charge_period_start", UTC_TIMESTAMP),
        ("charge_period_end", UTC_TIMESTAMP),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("origin_model_name", pa.string()),  # the model the pricing file prices the deployment as
        ("origin_cost", MONEY),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("cost_type", pa.string()),
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("weighted_tokens", QUANTITY),  # the line's tokens in this origin's period; null where unknown
        ("allocated_cost", MONEY),
        ("currency", pa.string()),
    ]
)


@dataclass(frozen=True)
class Share:
    """One chargeback line's part of one origin charge, with the line's tokens in the origin's period."""

    key: object  # chargeback_lines.LineKey (typed loosely: that module imports this one)
    minor: int
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    weighted_tokens: object = None  # Decimal | None


@dataclass(frozen=True)
class OriginCharge:
    kind: str
    start: datetime
    backend_id: str
    deployment_name: str
    model_name: str
    shares: tuple[Share, ...]

    @property
    def end(self) -> datetime:
        return self.start + (timedelta(hours=1) if self.kind == PTU_HOUR else timedelta(days=1))

    @property
    def minor(self) -> int:
        return sum(share.minor for share in self.shares)


def origins_table(
    origins: list[OriginCharge], day: date, minor_unit: int, currency: str, with_callers: bool = False
) -> pa.Table:
    """The origin charges' shares in ORIGIN_ALLOCATION_SCHEMA (plus caller_id with callers), in a
    deterministic order."""
    rows = []
    ordered = sorted(origins, key=lambda o: (o.deployment_name, o.backend_id, o.kind, o.start))
    for origin in ordered:
        for share in sorted(origin.shares, key=lambda s: s.key.order()):
            rows.append(
                {
                    "usage_date": day,
                    "origin_kind": origin.kind,
                    "charge_period_start": origin.start,
                    "charge_period_end": origin.end,
                    "backend_id": origin.backend_id,
                    "deployment_name": origin.deployment_name,
                    "origin_model_name": origin.model_name,
                    "origin_cost": to_money(origin.minor, minor_unit),
                    "product_id": share.key.product_id,
                    "subscription_id": share.key.subscription_id,
                    CALLER_ID: share.key.caller_id,
                    "model_name": share.key.model_name,
                    "cost_type": share.key.cost_type.value,
                    "calls": share.calls,
                    "prompt_tokens": share.prompt_tokens,
                    "completion_tokens": share.completion_tokens,
                    "weighted_tokens": share.weighted_tokens,
                    "allocated_cost": to_money(share.minor, minor_unit),
                    "currency": currency,
                }
            )
    schema = with_caller_column(ORIGIN_ALLOCATION_SCHEMA) if with_callers else ORIGIN_ALLOCATION_SCHEMA
    return pa.Table.from_pylist(rows, schema=schema)


def day_start(day: date) -> datetime:
    return utc_day_start(day)

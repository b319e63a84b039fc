"""Reading the allocation's two input tables into usage lines, with every assumption checked.

A wrong type, a null, a negative count or a timestamp that is not the start of an hour is an error
that names the table and column: money is never computed from data the engine did not understand.
"""

from collections.abc import Mapping
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.core.billing.caller_rules import charged_product
from chargeback_pipeline.core.billing.chargeback_lines import LineKey, Usage, token_cost_type
from chargeback_pipeline.core.billing.pricing import CachedTokenMode, Pricing
from chargeback_pipeline.core.billing.schemas import (
    BACKEND_ID,
    CACHED_PROMPT_TOKENS,
    CALLER_ID,
    HOURLY_USAGE_SCHEMA,
    LOGGED_NOT_BILLABLE_PRODUCT,
    RESERVED_PRODUCTS,
    UNATTRIBUTED_PRODUCT,
    UNATTRIBUTED_SCHEMA,
    CostType,
)
from chargeback_pipeline.core.periods import utc_day_start
from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP


def _checked_rows(
    table: pa.Table, schema: pa.Schema, optional: Mapping[str, pa.DataType], nullable: set[str], what: str, day: date
) -> list[dict]:
    """The rows of `day`, with types, nulls, signs and hour alignment checked; a clear error otherwise."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; expected {', '.join(schema.names)}")
    fields = [*schema, *(pa.field(name, kind) for name, kind in optional.items() if name in table.column_names)]
    columns = {}
    for wanted in fields:
        column = table.column(wanted.name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            raise ValueError(f"{what}.{wanted.name} must be a timezone-aware (UTC) timestamp")
        try:
            column = column.cast(wanted.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(f"{what}.{wanted.name} must be {wanted.type}, not {column.type}: {error}") from None
        if wanted.name not in nullable and column.null_count:
            raise ValueError(f"{what}.{wanted.name} has {column.null_count} null value(s)")
        if pa.types.is_integer(wanted.type) and len(column) and (pc.min(column).as_py() or 0) < 0:
            raise ValueError(f"{what}.{wanted.name} has negative values")
        columns[wanted.name] = column
    start = utc_day_start(day)
    hours = columns["usage_hour"]
    of_day = pa.table(columns).filter(
        pc.and_(
            pc.greater_equal(hours, pa.scalar(start, UTC_TIMESTAMP)),
            pc.less(hours, pa.scalar(start + timedelta(days=1), UTC_TIMESTAMP)),
        )
    )
    rows = of_day.to_pylist()
    for row in rows:
        if row["usage_hour"] != row["usage_hour"].replace(minute=0, second=0, microsecond=0):
            raise ValueError(f"{what}.usage_hour {row['usage_hour'].isoformat()} is not the start of an hour")
    return rows


def usage_lines(hourly_usage: pa.Table, pricing: Pricing, day: date) -> list[Usage]:
    """The billable APIM usage of `day` (HOURLY_USAGE_SCHEMA rows), one Usage per row."""
    deduct_cached = pricing.cached_tokens == CachedTokenMode.deduct
    optional = {CACHED_PROMPT_TOKENS: pa.int64()} if deduct_cached else {}
    optional |= {CALLER_ID: pa.string()}  # read when present (core/callers.py)
    rows = _checked_rows(
        hourly_usage, HOURLY_USAGE_SCHEMA, optional, {"subscription_id", "model_name", CALLER_ID}, "hourly_usage", day
    )
    lines = []
    for row in rows:
        if row["product_id"] in RESERVED_PRODUCTS:
            raise ValueError(
                f"hourly_usage: product id {row['product_id']!r} is reserved for the chargeback's own lines"
            )
        deployment = pricing.deployment(row["backend_id"], row["deployment_name"])
        cached = row.get(CACHED_PROMPT_TOKENS) or 0
        if cached > row["prompt_tokens"]:
            raise ValueError(f"hourly_usage: {CACHED_PROMPT_TOKENS} exceeds prompt_tokens at {row['usage_hour']}")
        key = LineKey(
            product_id=charged_product(row["product_id"], row.get(CALLER_ID), pricing.callers),
            subscription_id=row["subscription_id"],
            model_name=row["model_name"] or deployment.model,
            deployment_name=row["deployment_name"],
            backend_id=row["backend_id"],
            cost_type=token_cost_type(pricing, row["backend_id"]),
            caller_id=row.get(CALLER_ID),
        )
        lines.append(
            Usage(row["usage_hour"], key, row["calls"], row["prompt_tokens"], row["completion_tokens"], cached)
        )
    return lines


def unattributed_lines(unattributed: pa.Table, pricing: Pricing, day: date) -> list[Usage]:
    """The unattributed tokens of `day` (UNATTRIBUTED_SCHEMA rows) as usage of the `unattributed` product."""
    rows = _checked_rows(
        unattributed, UNATTRIBUTED_SCHEMA, {BACKEND_ID: pa.string()}, {BACKEND_ID}, "unattributed", day
    )
    lines = []
    for row in rows:
        backend_id = row.get(BACKEND_ID) or pricing.backend_of_deployment(row["deployment_name"])
        deployment = pricing.deployment(backend_id, row["deployment_name"])
        key = LineKey(
            product_id=UNATTRIBUTED_PRODUCT,
            subscription_id=None,
            model_name=deployment.model,
            deployment_name=row["deployment_name"],
            backend_id=backend_id,
            cost_type=token_cost_type(pricing, backend_id),
        )
        lines.append(Usage(row["usage_hour"], key, 0, row["prompt_tokens"], row["completion_tokens"]))
    return lines


def not_billable_lines(not_billable: pa.Table, pricing: Pricing, day: date) -> list[Usage]:
    """The day's logged tokens no product is billed for (NOT_BILLABLE_SCHEMA), as usage of the
    `logged-not-billable` line on pay-as-you-go backends. On a PTU backend the hour's cost is split over
    billable and unattributed usage only, so these tokens are not charged there."""
    rows = [r for r in not_billable.to_pylist() if r["usage_date"] == day]
    lines = []
    for row in rows:
        if min(row["prompt_tokens"], row["completion_tokens"]) < 0:
            raise ValueError(f"not_billable: negative tokens for {row['deployment_name']} on {row['backend_id']}")
        if token_cost_type(pricing, row["backend_id"]) != CostType.paygo or not (
            row["prompt_tokens"] or row["completion_tokens"]
        ):
            continue
        deployment = pricing.deployment(row["backend_id"], row["deployment_name"])
        key = LineKey(
            product_id=LOGGED_NOT_BILLABLE_PRODUCT,
            subscription_id=None,
            model_name=deployment.model,
            deployment_name=row["deployment_name"],
            backend_id=row["backend_id"],
            cost_type=CostType.paygo,
        )
        lines.append(Usage(utc_day_start(day), key, 0, row["prompt_tokens"], row["completion_tokens"]))
    return lines

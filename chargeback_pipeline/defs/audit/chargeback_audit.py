"""`chargeback_audit` (daily, group `audit`): judges each published day's chargeback against evidence the
audit computes on its own, from the landed raw rows and the pricing file (`core.audit`). Its checks carry
the verdicts (`defs/audit/checks.py`); every comparison goes to the lake (`chargeback_audit/usage_date=.../
rows.parquet`: the published value beside the audit's expectation). It runs after the chargeback in the
daily job; a day the chargeback did not publish (held back) is not judged.
"""

from collections import Counter

import dagster as dg

from chargeback_pipeline.core.audit import comparisons
from chargeback_pipeline.core.audit.price_list import PriceList
from chargeback_pipeline.core.audit.raw_evidence import day_evidence
from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.audit import checks
from chargeback_pipeline.defs.audit.findings import findings
from chargeback_pipeline.defs.metadata import record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.resources import (
    DataQualityPolicy,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.storage import keys

CHARGEBACK_AUDIT_KEY = dg.AssetKey("chargeback_audit")
LARGEST_HOURS = 5


def largest_unattributed_hours(lake, day) -> list[dict]:
    """The day's resource-deployment-hours with the most unattributed tokens (metric - logged, from the
    hourly reconciliation): where to look first."""
    gaps: Counter = Counter()
    for hour in day_hours(day):
        key = keys.hour_key(keys.HOURLY_RECONCILIATION, hour)
        if not lake.store.exists(key):
            continue
        for row in lake.read(key).to_pylist():
            if row.get("has_metrics"):
                gap = (row["metric_prompt_tokens"] or 0) + (row["metric_completion_tokens"] or 0)
                gap -= (row["logged_prompt_tokens"] or 0) + (row["logged_completion_tokens"] or 0)
                if gap > 0:
                    gaps[(f"{hour:%Y-%m-%d %H}:00", row["backend_id"], row["deployment_name"])] += gap
    return [
        {"usage_hour": h, "backend_id": b, "deployment_name": d, "unattributed_tokens": gap}
        for (h, b, d), gap in gaps.most_common(LARGEST_HOURS)
    ]


def audit_days(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    policy: DataQualityPolicy,
    pricing: PricingResource,
    sql_engine: SqlEngineResource,
):
    store = lake.lake()
    prices = PriceList.read(pricing.path)
    engine_prices = pricing.pricing()  # only the currency and its minor unit
    minor_unit, currency = engine_prices.currency_minor_unit, engine_prices.currency
    judged = []
    for day in days_in(context.partition_time_window):
        lines_key = keys.day_key(keys.DAILY_CHARGEBACK, day)
        if not store.store.exists(lines_key):
            context.log.info(f"{day}: no chargeback published, nothing to audit")
            continue
        lines = store.read(lines_key).to_pylist()
        # The raw evidence is read under the run's DuckDB memory limit, as the hourly assets read it.
        with sql_engine.database() as database:
            evidence = day_evidence(store, day, database)
        partition = day_partition_key(day)
        billed = comparisons.billed_against_successful(evidence, lines)
        not_billable, unplaced = comparisons.logged_not_billable(evidence, lines, prices)
        shares = comparisons.unattributed_shares(evidence, lines, prices)
        ptu = comparisons.ptu_costs(day, lines, prices, minor_unit)
        deviations, products = comparisons.price_list_deviations(day, lines, prices, minor_unit)
        table = findings(day, billed, not_billable, shares, policy.audit_unattributed_error_percent, ptu, deviations)
        store.write(keys.day_key(keys.CHARGEBACK_AUDIT, day), table)
        record_partition(
            context,
            partition,
            {
                "dagster/row_count": table.num_rows,
                "raw_hours_read": evidence.hours_landed,
                "lines_audited": len(lines),
                "comparisons_disagreeing": table.num_rows - sum(table["agrees"].to_pylist()),
                "currency": currency,
            },
        )
        judged += [
            (partition, checks.billed_within_successful(CHARGEBACK_AUDIT_KEY, billed)),
            (partition, checks.not_billable_matches_raw(CHARGEBACK_AUDIT_KEY, not_billable, unplaced)),
            (
                partition,
                checks.unattributed_share(
                    CHARGEBACK_AUDIT_KEY,
                    shares,
                    largest_unattributed_hours(store, day),
                    policy.audit_unattributed_warn_percent,
                    policy.audit_unattributed_error_percent,
                ),
            ),
            (partition, checks.ptu_cost_matches_rate(CHARGEBACK_AUDIT_KEY, ptu, currency)),
            (partition, checks.costs_within_price_list(CHARGEBACK_AUDIT_KEY, deviations, products)),
        ]
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def chargeback_audit_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        CHARGEBACK_AUDIT_KEY,
        calendar.daily,
        deps=["daily_chargeback"],
        group_name="audit",
        kinds={"duckdb", "parquet"},
        description=(
            "Audits each day's published chargeback with independent evidence: the landed raw gateway, LLM and "
            "metric rows (its own SQL, dbt_like_sql/audit/) and the pricing file read and priced again. Writes each "
            "comparison (published value, expectation) to the lake; its checks say whether the bill is right, not "
            "only whether it balances."
        ),
        checks=checks.DESCRIPTIONS,
    )
    def chargeback_audit(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        policy: DataQualityPolicy,
        pricing: PricingResource,
        sql_engine: SqlEngineResource,
    ):
        yield from audit_days(context, lake, policy, pricing, sql_engine)

    return chargeback_audit

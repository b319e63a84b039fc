"""`cost_anomalies` (daily): each product and model's cost and tokens of the day against the median and MAD
of the days before it (core/finops/anomalies.py says why); published as
`daily/usage_date=YYYY-MM-DD/cost_anomalies.csv` and `.parquet`."""

from dataclasses import asdict

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.finops.alerts import anomaly_alerts
from chargeback_pipeline.core.finops.anomalies import baseline_window, day_costs, judge_day
from chargeback_pipeline.core.finops.inputs import PublishedDays
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.anomalies import checks
from chargeback_pipeline.defs.freshness import DAILY_MONEY_FRESHNESS
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_rows, money, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import FinOpsPolicyResource, ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files
from chargeback_pipeline.storage.schemas import MONEY

COST_ANOMALIES_KEY = dg.AssetKey("cost_anomalies")
COST_ANOMALIES_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("model_name", pa.string()),
        ("currency", pa.string()),
        ("cost", MONEY),
        ("baseline_median_cost", pa.float64()),
        ("cost_mad", pa.float64()),
        ("cost_change", pa.float64()),
        ("cost_score", pa.float64()),  # robust z-score; empty when not judged or the history is all zero
        ("tokens", pa.int64()),
        ("baseline_median_tokens", pa.float64()),
        ("tokens_score", pa.float64()),
        ("history_days", pa.int32()),
        ("is_anomaly", pa.bool_()),
        ("reason", pa.string()),  # anomaly, below the cost floor, insufficient history (N days), or empty
    ]
)


def build_cost_anomalies(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
    finops: FinOpsPolicyResource,
):
    prices, target = pricing.pricing(), staged_reports(context, reports.store())
    currency, minor_unit = prices.currency, prices.currency_minor_unit
    published = PublishedDays(target)  # published days, and the ones this run staged
    judged_checks, anomalies_total = [], 0
    for day in days_in(context.partition_time_window):
        today = published.lines([day])
        if day not in today:
            context.log.warning(f"{day} has no published chargeback: its anomalies are not judged")
        history = {
            d: day_costs(lines)
            for d, lines in published.lines(baseline_window(day, finops.anomaly_baseline_days)).items()
        }
        judged = judge_day(day, day_costs(today.get(day, [])), history, finops) if day in today else []
        table = pa.Table.from_pylist([j.row(currency) for j in judged], schema=COST_ANOMALIES_SCHEMA)
        for extension, data in report_files(table, minor_unit).items():
            target.write_bytes(keys.cost_anomalies_key(day, extension), data)
        anomalies = [j for j in judged if j.is_anomaly]
        alerts = anomaly_alerts(judged, currency, minor_unit)
        by_product: dict[str, float] = {}
        for j in judged:
            by_product[j.product_id] = by_product.get(j.product_id, 0.0) + float(j.cost)
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": table.num_rows,
                "currency": currency,
                "anomalies": len(anomalies),
                "history_days": max((j.history_days for j in judged), default=0),
                # One labelled number per product and day, to plot each product's cost over the partitions
                # (a plot series must be a number: the currency is `currency`).
                **{f"cost/{product}": money(cost, minor_unit) for product, cost in sorted(by_product.items())},
                "anomalous": markdown_rows(
                    [j.row(currency) for j in anomalies], 20, "_none_", currency, minor_unit, checks.MONEY_COLUMNS
                ),
                "alerts": dg.MetadataValue.json([asdict(alert) for alert in alerts]) if alerts else None,
                "cost_anomalies_csv": dg.MetadataValue.path(target.url(keys.cost_anomalies_key(day, "csv"))),
            },
        )
        judged_checks.append(
            (day_partition_key(day), checks.no_cost_anomaly(COST_ANOMALIES_KEY, judged, currency, finops, minor_unit))
        )
        anomalies_total += len(anomalies)
    log_run_totals(context, "cost_anomalies", len(judged_checks), {"anomalies": anomalies_total})
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged_checks)


def cost_anomalies_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        COST_ANOMALIES_KEY,
        calendar.daily,
        deps=["billed_chargeback"],  # it reads the chargeback billed_chargeback stages
        group_name="finops",
        freshness_policy=DAILY_MONEY_FRESHNESS,
        kinds={"parquet", "csv"},
        description=(
            "Per product and model: the day's cost and tokens against the median and MAD of the published days "
            "before it (CHARGEBACK_ANOMALY_BASELINE_DAYS, 28), with the robust z-score of each; an increase "
            "scoring CHARGEBACK_ANOMALY_THRESHOLD (3.5) or more and worth CHARGEBACK_ANOMALY_MIN_COST_CHANGE or "
            "more is an anomaly: `daily/usage_date=YYYY-MM-DD/cost_anomalies.csv` and `.parquet`."
        ),
        checks={
            checks.NO_COST_ANOMALY: (
                "No product and model's cost rose anomalously against its trailing baseline (WARN, with the "
                "numbers that explain it). A business alert: it does not fail `chargeback backfill`."
            ),
        },
    )
    def cost_anomalies(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
        finops: FinOpsPolicyResource,
    ):
        yield from build_cost_anomalies(context, lake, reports, pricing, finops)

    return cost_anomalies

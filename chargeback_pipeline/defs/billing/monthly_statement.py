"""`monthly_statement` (monthly): each product's tokens and costs of a calendar month, summed exactly
from its published daily chargebacks, as CSV and Parquet, and as an HTML statement people read (an
overview and a page a product) rendered from the Parquet as published."""

import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import dagster as dg

from chargeback_pipeline.core.billing import statement_html, statements
from chargeback_pipeline.core.billing.pricing import ISO_4217_MINOR_UNITS
from chargeback_pipeline.core.cost_inputs import published_month
from chargeback_pipeline.core.periods import days_of_month
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.billing.caller_statement import publish_caller_statement
from chargeback_pipeline.defs.freshness import STATEMENT_FRESHNESS
from chargeback_pipeline.defs.metadata import markdown_table, money_value, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, month_partition_key, months_in
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.report_files import report_files

MONTHLY_STATEMENT_KEY = dg.AssetKey("monthly_statement")
PREVIEW_COLUMNS = ["product_id", "total_cost", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "days_covered"]


def statement_minor_unit(statement) -> int | None:
    """The minor unit of the statement's one currency (ISO 4217), for its CSV; None (exact decimals) when
    the currency is not a known one or the statement holds several."""
    currencies = set(statement["currency"].to_pylist())
    return ISO_4217_MINOR_UNITS.get(currencies.pop()) if len(currencies) == 1 else None


def day_statuses(lake: Lake, target: ObjectStore, month: date, days_missing: list[date]) -> list[dict]:
    """Each day of the month's reconciliation status (`statements.day_status`), from the lake's daily
    reconciliation and what publishing recorded beside the day's reports (override, reconciliation off)."""

    def recorded(key: str) -> dict | None:
        return json.loads(target.read_bytes(key)) if target.exists(key) else None

    statuses = []
    for day in days_of_month(month):
        if day in days_missing:
            statuses.append(statements.day_status(day, False, None))
            continue
        reconciliation_key = keys.day_key(keys.DAILY_RECONCILIATION, day)
        reconciliation = lake.read(reconciliation_key) if lake.store.exists(reconciliation_key) else None
        override, off = recorded(keys.override_key(day)), recorded(keys.not_reconciled_key(day))
        statuses.append(statements.day_status(day, True, reconciliation, override, off))
    return statuses


def publish_html(lake: Lake, target: ObjectStore, month: date, published, lines, days_missing, callers=None) -> dict:
    """Render the month's HTML statement from its published Parquet (`published`, read back) and the
    breakdowns of the same lines, publish it, and return its view (for the metadata preview)."""
    days = statements.statement_days(lines, month)
    capacity_key = keys.ptu_capacity_key(month, "parquet")  # published by ptu_rightsizing (capacity)
    capacity = read_parquet_bytes(target.read_bytes(capacity_key)) if target.exists(capacity_key) else None
    covered = days["usage_date"].to_pylist()
    as_of = datetime.combine(max(covered), time(), UTC) + timedelta(days=1) if covered else None
    view = statement_html.statement_view(
        month,
        published,
        days,
        statements.statement_models(lines, month),
        day_statuses(lake, target, month, days_missing),
        callers,
        capacity=capacity,
        as_of=as_of,
    )
    target.write_bytes(keys.statement_key(month, "html"), statement_html.render_html(view).encode("utf-8"))
    return view


def stated_by_caller(target: ObjectStore, month: date) -> Counter:
    """{(month, product): cost} of the month's statement by caller, read back as staged."""
    by_caller = read_parquet_bytes(target.read_bytes(keys.statement_by_caller_key(month, "parquet")))
    return checks.cost_per_product(by_caller, month, "product_id", "total_cost")


def publish_statements(context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource):
    """State every month of the run; each month's materialization carries its own cost, products, missing
    days and file, and the check compares each month's statement, read back, with its days."""
    # Staged: published by `month_publication`, or not at all; stated from the published days only.
    store, published, target = lake.lake(), reports.store(), staged_reports(context, reports.store())
    judged = []
    today = datetime.now(UTC).date()  # days from today on have not ended: not missing, still to come
    for month in months_in(context.partition_time_window):
        try:
            days = published_month(published, month)
        except ValueError as error:
            raise dg.Failure(f"the statement of {month:%Y-%m} is not rebuilt: {error}") from None
        lines, days_missing = days.lines, days.days_missing
        past_missing = [day for day in days_missing if day < today]
        statement = statements.monthly_statement(lines, month)
        for extension, data in report_files(statement, statement_minor_unit(statement)).items():
            target.write_bytes(keys.statement_key(month, extension), data)
        read_back = read_parquet_bytes(target.read_bytes(keys.statement_key(month, "parquet")))
        caller_csv, caller_statement = publish_caller_statement(
            days.caller_lines, target, month, statement_minor_unit(statement)
        )
        view = publish_html(store, target, month, read_back, lines, days_missing, caller_statement)
        stated = checks.cost_per_product(read_back, month, "product_id", "total_cost")
        expected = checks.cost_per_product(lines, month, "product_id", "total_cost")
        currencies = sorted(set(statement["currency"].to_pylist()))
        if past_missing:
            context.log.info(f"the statement of {month:%Y-%m} lacks {len(past_missing)} day(s) with no chargeback")
        preview = statement.select(PREVIEW_COLUMNS).sort_by([("total_cost", "descending"), ("product_id", "ascending")])
        record_partition(
            context,
            month_partition_key(month),
            {
                "dagster/row_count": statement.num_rows,
                "total_cost": money_value(sum(statement["total_cost"].to_pylist(), Decimal(0)), ", ".join(currencies)),
                "currency": ", ".join(currencies),
                "days_covered": max(statement["days_covered"].to_pylist(), default=0),
                # Past days without a chargeback; days not ended yet are counted apart, never as missing.
                "days_missing_count": len(past_missing),
                "days_missing": [str(day) for day in past_missing],  # left out when none is missing
                "days_to_come": len(days_missing) - len(past_missing),
                "cost_by_product": markdown_table(preview, limit=20),
                "statement_csv": dg.MetadataValue.path(target.url(keys.statement_key(month, "csv"))),
                "statement_html": dg.MetadataValue.path(target.url(keys.statement_key(month, "html"))),
                "statement_by_caller_csv": dg.MetadataValue.path(caller_csv) if caller_csv else None,  # with callers
                "days_needing_attention": view["issues"],
                # The HTML's overview (totals, products, each day's reconciliation), figure for figure.
                "statement_preview": dg.MetadataValue.md(statement_html.render_markdown(view)),
            },
        )
        judged.append(
            (
                month_partition_key(month),
                checks.totals_match(
                    MONTHLY_STATEMENT_KEY,
                    checks.STATEMENT_MATCHES_DAYS,
                    stated,
                    expected,
                    currency=", ".join(currencies) or None,
                    by_caller=None if caller_csv is None else stated_by_caller(target, month),
                ),
            )
        )
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def monthly_statement_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        MONTHLY_STATEMENT_KEY,
        calendar.monthly,
        deps=["billed_chargeback", "ptu_rightsizing"],  # ptu_rightsizing: the month's PTU capacity part
        group_name="costs",
        freshness_policy=STATEMENT_FRESHNESS,
        kinds={"parquet", "csv", "html"},
        description=(
            "Per product and currency: the month's tokens, PTU usage cost, unused PTU cost, pay-as-you-go cost "
            "and total cost, summed exactly from the month's published daily chargebacks: "
            "`monthly/month=YYYY-MM/statement.csv` and `.parquet`, and `statement.html` for people: an overview "
            "(totals, daily trend, cost by product, each day's reconciliation) and a page a product (split by model "
            "and cost type, PTU share, unused capacity), charts inline. `days_covered` counts the days it includes; "
            "days without a chargeback are listed in the metadata (`days_missing`), never counted as zero. "
            "The month in progress is a partition too: its statement covers the days so far."
        ),
        checks={
            checks.STATEMENT_MATCHES_DAYS: (
                "The month's published statement, read back, holds exactly its daily chargebacks' cost by product; "
                "with callers, the statement by caller, read back, adds up to the same cost per product."
            ),
        },
    )
    def monthly_statement(context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource):
        yield from publish_statements(context, lake, reports)

    return monthly_statement

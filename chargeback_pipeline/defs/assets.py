"""The asset graph: every asset of every stage, on one calendar of partitions, each with its column schema
and code references (`column_docs`)."""

import dagster as dg

from chargeback_pipeline.defs.anomalies.cost_anomalies import cost_anomalies_asset
from chargeback_pipeline.defs.attribution.attributed_requests import attributed_requests_asset
from chargeback_pipeline.defs.attribution.daily_product_usage import daily_product_usage_asset
from chargeback_pipeline.defs.audit.chargeback_audit import chargeback_audit_asset
from chargeback_pipeline.defs.billing.daily_chargeback import daily_chargeback_asset
from chargeback_pipeline.defs.billing.focus_export import focus_export_asset
from chargeback_pipeline.defs.billing.monthly_statement import monthly_statement_asset
from chargeback_pipeline.defs.budgets.budget_status import budget_status_asset
from chargeback_pipeline.defs.capacity.ptu_rightsizing import ptu_rightsizing_asset
from chargeback_pipeline.defs.capacity.ptu_utilization import ptu_utilization_asset
from chargeback_pipeline.defs.column_docs import documented
from chargeback_pipeline.defs.cost_export.billed_chargeback import billed_chargeback_asset
from chargeback_pipeline.defs.ingest.raw_logs import raw_log_assets
from chargeback_pipeline.defs.partitions import Calendar
from chargeback_pipeline.defs.publishing.day_publication import day_publication_asset
from chargeback_pipeline.defs.publishing.month_publication import month_publication_asset
from chargeback_pipeline.defs.publishing.product_usage_report import product_usage_report_asset
from chargeback_pipeline.defs.reconciliation.daily_reconciliation import daily_reconciliation_asset
from chargeback_pipeline.defs.reconciliation.deployment_reconciliation import deployment_reconciliation_asset


def build_assets(calendar: Calendar) -> list[dg.AssetsDefinition]:
    return documented(
        [
            *raw_log_assets(calendar),
            attributed_requests_asset(calendar),
            daily_product_usage_asset(calendar),
            deployment_reconciliation_asset(calendar),
            daily_reconciliation_asset(calendar),
            product_usage_report_asset(calendar),
            daily_chargeback_asset(calendar),
            focus_export_asset(calendar),
            billed_chargeback_asset(calendar),
            monthly_statement_asset(calendar),
            budget_status_asset(calendar),
            cost_anomalies_asset(calendar),
            ptu_utilization_asset(calendar),
            ptu_rightsizing_asset(calendar),
            chargeback_audit_asset(calendar),
            day_publication_asset(calendar),
            month_publication_asset(calendar),
        ]
    )

"""Every object key of the lake and of the published reports, in one place.

Keys are stable and human-readable, so a partition's data can be found (and replaced whole on re-run)
without any catalogue: `raw/gateway_logs/hour=2026-11-26T13/rows.parquet`,
`daily/usage_date=2026-11-26/chargeback.csv`, `monthly/month=2026-11/statement.parquet`.
"""

from datetime import date, datetime

# Lake datasets (Parquet, one object per partition).
RAW_GATEWAY = "raw/gateway_logs"
RAW_LLM = "raw/llm_logs"
RAW_METRICS = "raw/deployment_metrics"
ATTRIBUTED = "attributed_requests"
QUARANTINE = "quarantined_records"
# The hour's logged tokens per deployment: written by the attribution (which de-duplicates the LLM log
# anyway), read by the hourly reconciliation.
LOGGED_TOKENS = "hourly_logged_tokens"
HOURLY_RECONCILIATION = "deployment_reconciliation"
DAILY_USAGE = "daily_product_usage"
DAILY_RECONCILIATION = "daily_reconciliation"
DAILY_CHARGEBACK = "daily_chargeback"
# Beside each day's chargeback lines: the split they were summed from (each PTU deployment-hour and
# pay-as-you-go deployment-day with every line's share), which the FOCUS 1.3 export is built from.
ORIGIN_ALLOCATIONS_PART = "origin_allocations"
# FinOps hubs: the container and dataset folder their ingestion reads (README "FinOps hubs").
FINOPS_HUBS_CONTAINER = "ingestion"
FINOPS_HUBS_DATASET = "Costs"
# The alert sensor's queue (alerts still to send, ids sent) beside the reports: core/finops/alerts.py Ledger.
ALERT_QUEUE = "alerts/alert_queue.json"
# Per PTU deployment and hour: weighted tokens served against capacity, spillover, 429s (capacity/).
PTU_UTILIZATION = "ptu_utilization"
# Per day: every comparison the audit judged, published value beside its own expectation (audit/).
CHARGEBACK_AUDIT = "chargeback_audit"

# A source's rows it could not type are landed beside the hour's rows under this part name.
REJECTED_PART = "rejected"


def hour_key(dataset: str, hour: datetime, part: str = "rows") -> str:
    return f"{dataset}/hour={hour:%Y-%m-%dT%H}/{part}.parquet"


def day_key(dataset: str, day: date, part: str = "rows") -> str:
    return f"{dataset}/usage_date={day.isoformat()}/{part}.parquet"


def _daily_report_key(day: date, name: str, extension: str) -> str:
    return f"daily/usage_date={day.isoformat()}/{name}.{extension}"


def product_usage_report_key(day: date, extension: str) -> str:
    return _daily_report_key(day, "product_usage", extension)


def chargeback_key(day: date, extension: str) -> str:
    return _daily_report_key(day, "chargeback", extension)


def focus_key(day: date, extension: str) -> str:
    return _daily_report_key(day, "focus", extension)


def not_reconciled_key(day: date) -> str:
    """Where a day published without reconciliation (switched off on purpose) says so."""
    return _daily_report_key(day, "reconciliation_off", "json")


def override_key(day: date) -> str:
    """Where a day published despite a blocked reconciliation records why."""
    return _daily_report_key(day, "reconciliation_override", "json")


def statement_key(month: date, extension: str) -> str:
    return f"monthly/month={month:%Y-%m}/statement.{extension}"


def statement_by_caller_key(month: date, extension: str) -> str:
    """The month's statement split per product and caller: only when its days were charged back with callers."""
    return f"monthly/month={month:%Y-%m}/statement_by_caller.{extension}"


def budget_status_key(day: date, extension: str) -> str:
    """Each budgeted product's spend to date, forecast and percent of budget on a day."""
    return _daily_report_key(day, "budget_status", extension)


def cost_anomalies_key(day: date, extension: str) -> str:
    """Each product and model's day against its trailing baseline."""
    return _daily_report_key(day, "cost_anomalies", extension)


def ptu_rightsizing_key(month: date, extension: str) -> str:
    """Per PTU deployment: the month's utilisation percentiles, spillover and the recommended count."""
    return f"monthly/month={month:%Y-%m}/ptu_rightsizing.{extension}"


def ptu_capacity_key(month: date, extension: str) -> str:
    """Per PTU deployment: the month's PTU count, rate, cost, utilisation, unused capacity and effective price."""
    return f"monthly/month={month:%Y-%m}/ptu_capacity.{extension}"


def ptu_what_if_key(month: date, extension: str) -> str:
    """Per PTU deployment and candidate count: the month's cost at that count (`png`: the plot)."""
    if extension == "png":
        return f"monthly/month={month:%Y-%m}/ptu_rightsizing.png"
    return f"monthly/month={month:%Y-%m}/ptu_what_if.{extension}"


def finops_hubs_folder(month: date, scope_path: str) -> str:
    """A month's folder in the hub's `ingestion` container: `Costs/{yyyy}/{mm}/{scope-path}` (the hub
    keeps the latest ingestion per month folder)."""
    return f"{FINOPS_HUBS_DATASET}/{month:%Y}/{month:%m}/{scope_path.strip('/')}"


def finops_hubs_file_key(day: date, scope_path: str) -> str:
    """One day's FOCUS rows in the month folder: `{ingestion-id}__{original-file-name}.parquet`, the
    ingestion id being the month, the same for every file of the folder."""
    return f"{finops_hubs_folder(day, scope_path)}/{day:%Y-%m}__focus_{day.isoformat()}.parquet"


def finops_hubs_manifest_key(month: date, scope_path: str) -> str:
    """The empty manifest.json that tells the hub the folder is complete (written last)."""
    return f"{finops_hubs_folder(month, scope_path)}/manifest.json"


# Actual cost (README "Actual cost: the Cost Management export"): in the lake, the day's published
# chargeback lines with their cost basis, the export's charges split over them (beside the lines), and
# estimate-vs-actual per product (also published, `cost_variance`).
BILLED_CHARGEBACK = "billed_chargeback"
ACTUAL_ALLOCATIONS_PART = "actual_allocations"
COST_VARIANCE_PART = "cost_variance"


def cost_variance_key(day: date, extension: str) -> str:
    """Per product of an actual day: the estimate, the actual cost and their difference."""
    return _daily_report_key(day, "cost_variance", extension)

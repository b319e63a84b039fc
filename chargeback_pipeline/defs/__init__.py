"""Dagster only: resources, partitions, automation (schedule, sensors, content fingerprints), and one
folder per stage with its assets and checks, one module per asset:

    ingest/          raw_gateway_logs, raw_llm_logs, raw_deployment_metrics (raw_logs.py)
    attribution/     attributed_requests + quarantined_records, daily_product_usage
    reconciliation/  deployment_reconciliation, daily_reconciliation
    publishing/      product_usage_report, and the reconciliation gate every published file passes
    billing/         daily_chargeback, focus_export, monthly_statement

Assets are built by factories on a `partitions.Calendar`, so the settings are read when the definitions
are built, never at import. The work itself is in `core`; an asset wires it to resources and metadata.
May import: `core`, `storage`, `sources`, `defs`. Never `cli`, `settings` or `definitions`.
"""

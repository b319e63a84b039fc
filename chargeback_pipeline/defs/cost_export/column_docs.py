"""Column schema, descriptions and code references of `billed_chargeback` (merged into
`defs/column_docs.py`, which shows them in the UI)."""

from chargeback_pipeline.core.billing.cost_basis import BILLED_CHARGEBACK_SCHEMA, BILLED_STATEMENT_SCHEMA

COST_EXPORT_COLUMNS = {"billed_chargeback": BILLED_CHARGEBACK_SCHEMA, "billed_statement": BILLED_STATEMENT_SCHEMA}
COST_EXPORT_CODE = {
    "billed_chargeback": [
        "core/billing/actual_allocation.py",
        "core/billing/meters.py",
        "core/billing/cost_basis.py",
        "sources/cost_export/runs.py",
        "sources/cost_export/rows.py",
    ],
    "billed_statement": ["core/billing/cost_basis.py"],
}
COST_EXPORT_DESCRIPTIONS = {
    "billed_chargeback": {
        "usage_date": "The UTC day.",
        "product_id": "The APIM product (or `unattributed`, `platform-unallocated`, `logged-not-billable`).",
        "subscription_id": "The APIM subscription; null on lines no subscription made.",
        "model_name": "The model (from the LLM log; `unknown` on an export charge no line could take).",
        "deployment_name": "The deployment (`unknown` on an export charge no line could take).",
        "backend_id": "The APIM backend: the Azure OpenAI resource (pricing file `backends.<id>`).",
        "cost_type": "ptu, ptu_unused or paygo, as in the chargeback.",
        "cost_basis": "`estimate`: priced from the pricing file (a list price); `actual`: the cost export's charges.",
        "calls": "Billable calls (the chargeback's).",
        "prompt_tokens": "Prompt tokens (the chargeback's).",
        "completion_tokens": "Completion tokens (the chargeback's).",
        "estimated_cost": "The pricing file's cost of the line: the chargeback's total_cost.",
        "effective_cost": "Actual: the export's EffectiveCost (amortized) allocated to the line; else the estimate.",
        "billed_cost": "Actual: the export's BilledCost (invoiced) allocated to the line; else the estimate.",
        "currency": "ISO 4217 currency (the pricing file's, which the export's BillingCurrency must equal).",
        "export_run_id": "The Cost Management export run (runInfo.runId) an actual day comes from.",
    },
    "billed_statement": {
        "month": "The calendar month, YYYY-MM (as its folder monthly/month=YYYY-MM).",
        "product_id": "The APIM product, or a reserved line (unattributed, platform-unallocated, ...).",
        "calls": "Billable calls of the month's days.",
        "prompt_tokens": "Prompt tokens of the month's days.",
        "completion_tokens": "Completion tokens of the month's days.",
        "estimated_cost": "The pricing file's cost of the month's days (the chargeback's total_cost).",
        "effective_cost": "Actual days: the export's EffectiveCost allocated; estimate days: the estimate.",
        "billed_cost": "Actual days: the export's BilledCost allocated; estimate days: the estimate.",
        "actual_days": "Days of the month whose cost is actual (a Cost Management export run covers them).",
        "estimate_days": "Days of the month still priced from the pricing file.",
        "currency": "ISO 4217 currency.",
    },
}

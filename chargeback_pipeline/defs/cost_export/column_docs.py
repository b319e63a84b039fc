"""Column schema, descriptions and code references of what the cost basis adds (merged into
`defs/column_docs.py`, which shows them in the UI): `billed_chargeback` publishes the chargeback with its
cost basis (the chargeback's columns and these), and the FOCUS export and the statement carry it too."""

from chargeback_pipeline.core.billing.cost_basis import CHARGEBACK_SCHEMA

COST_EXPORT_COLUMNS = {"billed_chargeback": CHARGEBACK_SCHEMA}
COST_EXPORT_CODE = {
    "billed_chargeback": [
        "core/billing/actual_allocation.py",
        "core/billing/meters.py",
        "core/billing/cost_basis.py",
        "sources/cost_export/runs.py",
        "sources/cost_export/rows.py",
    ],
}
# Added to the chargeback's own column descriptions (`daily_chargeback`) for `billed_chargeback`.
COST_BASIS_DESCRIPTIONS = {
    "cost_basis": "`estimate`: priced from the pricing file (a list price); `actual`: the cost export's charges.",
    "estimated_cost": "The pricing file's cost of the line (on an estimate day, total_cost).",
    "billed_cost": "Actual: the export's BilledCost (invoiced) allocated to the line; else the estimate.",
    "export_run_id": "The Cost Management export run (runInfo.runId) an actual day comes from.",
}
# What total_cost and its parts mean once a day can be actual.
COST_BASIS_OVERRIDES = {
    "ptu_cost": "PTU: estimate, the line's share of its deployment's hours at the pricing file's rate; actual, "
    "its share of the export's provisioned (PTU-hour) charges, amortized (EffectiveCost).",
    "paygo_cost": "Tokens: estimate, at the pricing file's prices; actual, the export's token charges (EffectiveCost).",
    "total_cost": "ptu_cost + paygo_cost: what the line is charged back (amortized).",
}
FOCUS_ACTUAL_DESCRIPTIONS = {
    "x_CostBasis": "estimate (the pricing file's prices) or actual (the Cost Management export's charges).",
    "CommitmentDiscountCategory": "Actual: Usage on a PTU reservation's charges; null otherwise.",
    "CommitmentDiscountId": "Actual: the export's reservation id on PTU-hour charges; null otherwise.",
    "CommitmentDiscountQuantity": "Actual: the share of the reservation's PTU-hours (used or unused).",
    "CommitmentDiscountStatus": "Actual: Used or Unused (the reservation's idle PTU-hours); null otherwise.",
    "CommitmentDiscountType": "Actual: the export's commitment type (Reservation).",
    "CommitmentDiscountUnit": "Actual: the unit of CommitmentDiscountQuantity (the export's PricingUnit).",
    "SkuMeter": "Actual: the export's meter of the origin charge.",
    "SkuPriceId": "Actual: the export's price id of the origin charge.",
    "x_SkuMeterId": "Actual: the export's meter id of the origin charge.",
    "x_ExportRunId": "Actual: the export run the origin charge was read from.",
    "x_UnattributedReason": "Actual: why an export charge went whole to unattributed.",
}
STATEMENT_BASIS_DESCRIPTIONS = {
    "billed_cost": "Invoiced cost of the month's days (the export's BilledCost on actual days, else the estimate).",
    "estimated_cost": "The pricing file's cost of the month's days.",
    "actual_days": "Days of the month whose cost is the Cost Management export's.",
    "estimate_days": "Days of the month still priced from the pricing file.",
}

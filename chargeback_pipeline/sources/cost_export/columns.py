"""The FocusCost columns the pipeline reads, per schema version, and the table it reads them into.

Column names and types: Microsoft's FocusCost export schemas as the FinOps toolkit lists them
(microsoft/finops-toolkit at commit 04d370f, May 2026:
`src/templates/finops-hub/modules/Microsoft.CostManagement/Exports/schemas/focuscost_1.0.json`,
`focuscost_1.0r2.json`, `focuscost_1.2-preview.json`), which follow FOCUS 1.0 and 1.2
(FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec). Versions differ in what we read only in two names:
1.0 / 1.0r2 carry the invoice as `x_InvoiceId` and the meter name as `x_SkuMeterName`; 1.2-preview
has FOCUS 1.2's `InvoiceId` and `SkuMeter`.
"""

import pyarrow as pa

from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP

FOCUS_COST_DATASET = "FocusCost"
# Exact money and quantities as the export writes them (Decimal), with room for its many decimals.
EXPORT_DECIMAL = pa.decimal128(38, 18)

# Our column -> the export's column, common to every supported version.
_COMMON = {
    "billing_account_id": "BillingAccountId",
    "billing_currency": "BillingCurrency",
    "billing_period_start": "BillingPeriodStart",
    "charge_period_start": "ChargePeriodStart",
    "charge_period_end": "ChargePeriodEnd",
    "charge_category": "ChargeCategory",
    "charge_description": "ChargeDescription",
    "pricing_category": "PricingCategory",
    "resource_id": "ResourceId",
    "sub_account_id": "SubAccountId",
    "meter_id": "x_SkuMeterId",
    "sku_price_id": "SkuPriceId",
    "commitment_discount_id": "CommitmentDiscountId",
    "commitment_discount_status": "CommitmentDiscountStatus",
    "commitment_discount_type": "CommitmentDiscountType",
    "consumed_quantity": "ConsumedQuantity",
    "consumed_unit": "ConsumedUnit",
    "pricing_quantity": "PricingQuantity",
    "pricing_unit": "PricingUnit",
    "billed_cost": "BilledCost",
    "effective_cost": "EffectiveCost",
    "list_cost": "ListCost",
    "contracted_cost": "ContractedCost",
    "invoice_issuer_name": "InvoiceIssuerName",
}
_V1_0 = {**_COMMON, "invoice_id": "x_InvoiceId", "meter_name": "x_SkuMeterName"}
_V1_2_PREVIEW = {**_COMMON, "invoice_id": "InvoiceId", "meter_name": "SkuMeter"}

EXPORT_COLUMNS: dict[str, dict[str, str]] = {"1.0": _V1_0, "1.0r2": _V1_0, "1.2-preview": _V1_2_PREVIEW}
SUPPORTED_VERSIONS = tuple(EXPORT_COLUMNS)

COST_COLUMNS = ("billed_cost", "effective_cost", "list_cost", "contracted_cost")  # FOCUS: never null
DECIMAL_COLUMNS = ("consumed_quantity", "pricing_quantity", *COST_COLUMNS)
TIMESTAMP_COLUMNS = ("billing_period_start", "charge_period_start", "charge_period_end")

# One row per export row of a named resource, in our names, with where it came from.
EXPORT_CHARGE_SCHEMA = pa.schema(
    [
        *(
            (
                name,
                EXPORT_DECIMAL
                if name in DECIMAL_COLUMNS
                else UTC_TIMESTAMP
                if name in TIMESTAMP_COLUMNS
                else pa.string(),
            )
            for name in _V1_0
        ),
        ("export_run_id", pa.string()),  # runInfo.runId of the run the row was read from
        ("export_schema_version", pa.string()),  # exportConfig.dataVersion
        ("export_blob", pa.string()),  # the blob (part) holding the row
    ]
)

"""The actual (export-allocated) charges of a day as FOCUS rows for a FinOps hub, which never add to
Microsoft's own cost rows there.

A hub holds Microsoft's Cost Management export already (`x_SourceName` "Cost Management",
`x_SourceProvider` "Microsoft": the hubs' own columns naming a row's dataset, added at ingestion when
absent; microsoft/finops-toolkit 04d370f, `docs-mslearn/toolkit/hubs/data-processing.md` "Transforms",
`IngestionSetup_v1_2.kql`). Adding our allocated rows beside them would count Azure OpenAI twice. So each
origin charge (an export charge, `actual_allocation`) is **reallocated**: one reversal row (the origin's
costs negated, ChargeCategory `Adjustment`, the origin's ResourceId, meter, price, commitment and invoice)
and one row per share (ChargeCategory as the origin's, costs the share's, the APIM product in `Tags` and
`x_ApiManagementProductId`). The rows of one origin sum to zero, so a hub's union of Microsoft's rows and
ours totals Azure OpenAI exactly once, and grouping by the `chargeback/apim-product` tag shows each
product's share. Every row carries `x_SourceName` / `x_SourceProvider` / `x_SourceType` /
`x_SourceVersion` naming this pipeline, so a hub user can also filter ours out.

Only actual days are written this way: an estimate is not an invoice, and is never claimed as one.
Columns are FOCUS 1.2 names (the hub's `Costs_raw` mapping); a PTU reservation's share keeps the export's
`CommitmentDiscountId` / `Status` (`Used`) / `Type`; InvoiceId and InvoiceIssuerName are the export's.
"""

import json
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.core.billing.actual_allocation import OTHER_COSTS
from chargeback_pipeline.core.billing.focus import FOCUS_PROVIDER, FOCUS_SERVICE_NAME, TAG_PREFIX
from chargeback_pipeline.core.billing.schemas import MONEY, QUANTITY
from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP

SOURCE_NAME = "Azure OpenAI chargeback"
SOURCE_PROVIDER = "Azure OpenAI chargeback"
SOURCE_TYPE = "AzureOpenAIChargebackReallocation"
SOURCE_VERSION = "1.0"
_QUANTITY_PLACES = Decimal("0.000001")

ACTUAL_HUB_SCHEMA = pa.schema(
    [
        ("BilledCost", MONEY),
        ("EffectiveCost", MONEY),
        ("ListCost", MONEY),  # the export's, split as EffectiveCost is (a hub's savings: ListCost - EffectiveCost)
        ("ContractedCost", MONEY),
        ("BillingAccountId", pa.string()),
        ("BillingCurrency", pa.string()),
        ("BillingPeriodStart", UTC_TIMESTAMP),
        ("ChargeCategory", pa.string()),
        ("ChargeDescription", pa.string()),
        ("ChargePeriodStart", UTC_TIMESTAMP),
        ("ChargePeriodEnd", UTC_TIMESTAMP),
        ("CommitmentDiscountId", pa.string()),
        ("CommitmentDiscountStatus", pa.string()),
        ("CommitmentDiscountType", pa.string()),
        ("ConsumedQuantity", QUANTITY),
        ("ConsumedUnit", pa.string()),
        ("InvoiceId", pa.string()),
        ("InvoiceIssuerName", pa.string()),
        ("PricingCategory", pa.string()),
        ("PricingUnit", pa.string()),
        ("ProviderName", pa.string()),
        ("PublisherName", pa.string()),
        ("ResourceId", pa.string()),
        ("ServiceName", pa.string()),
        ("SkuMeter", pa.string()),
        ("SkuPriceId", pa.string()),
        ("SubAccountId", pa.string()),
        ("Tags", pa.string()),
        ("x_SkuMeterId", pa.string()),
        ("x_OriginChargeId", pa.string()),
        ("x_ApiManagementProductId", pa.string()),
        ("x_ApiManagementSubscriptionId", pa.string()),
        ("x_DeploymentName", pa.string()),
        ("x_ModelName", pa.string()),
        ("x_CostType", pa.string()),
        ("x_AllocationBasis", pa.string()),
        ("x_UnattributedReason", pa.string()),
        ("x_CostBasis", pa.string()),  # always `actual`: estimate days are not written to a hub
        ("x_ExportRunId", pa.string()),  # the export run the charge was read from
        ("x_SourceName", pa.string()),
        ("x_SourceProvider", pa.string()),
        ("x_SourceType", pa.string()),
        ("x_SourceVersion", pa.string()),
    ]
)


def _origin_columns(share: dict) -> dict:
    start = share["charge_period_start"]
    return {
        "BillingAccountId": share["billing_account_id"],
        "BillingCurrency": share["currency"],
        "BillingPeriodStart": start.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        "ChargePeriodStart": start,
        "ChargePeriodEnd": share["charge_period_end"],
        "CommitmentDiscountId": share["commitment_discount_id"],
        "CommitmentDiscountStatus": share["commitment_discount_status"],
        "CommitmentDiscountType": share["commitment_discount_type"],
        "ConsumedUnit": share["consumed_unit"],
        "InvoiceId": share["invoice_id"],
        "InvoiceIssuerName": share["invoice_issuer_name"],
        "PricingCategory": share["pricing_category"],
        "PricingUnit": share["pricing_unit"],
        "ProviderName": FOCUS_PROVIDER,
        "PublisherName": FOCUS_PROVIDER,
        "ResourceId": share["resource_id"],
        "ServiceName": FOCUS_SERVICE_NAME,
        "SkuMeter": share["meter_name"],
        "SkuPriceId": share["sku_price_id"],
        "SubAccountId": share["sub_account_id"],
        "x_SkuMeterId": share["meter_id"],
        "x_OriginChargeId": share["origin_charge_id"],
        "x_CostBasis": "actual",
        "x_ExportRunId": share["export_run_id"],
        "x_SourceName": SOURCE_NAME,
        "x_SourceProvider": SOURCE_PROVIDER,
        "x_SourceType": SOURCE_TYPE,
        "x_SourceVersion": SOURCE_VERSION,
    }


def hub_rows(allocations: pa.Table) -> pa.Table:
    """The reallocation rows of a day's ACTUAL_ALLOCATION_SCHEMA shares, in ACTUAL_HUB_SCHEMA."""
    shares = allocations.to_pylist()
    by_origin: dict[str, list[dict]] = {}
    for share in shares:
        by_origin.setdefault(share["origin_charge_id"], []).append(share)
    rows = []
    for origin_id in sorted(by_origin):
        group = by_origin[origin_id]
        first = group[0]
        basis = sum((s["allocation_quantity"] for s in group), Decimal(0))
        # The shares' other costs, negated: the origin's rows sum to zero in every cost column.
        others = {view: -sum((s[view] or Decimal(0) for s in group), Decimal(0)) for view in OTHER_COSTS}
        origin_quantity = first["consumed_quantity"] or Decimal(0)
        rows.append(
            {
                **_origin_columns(first),
                "BilledCost": -first["origin_billed_cost"],
                "EffectiveCost": -first["origin_effective_cost"],
                "ListCost": others["list_cost"],
                "ContractedCost": others["contracted_cost"],
                "ChargeCategory": "Adjustment",
                "ChargeDescription": "Reallocated to APIM products by the Azure OpenAI chargeback (x_OriginChargeId)",
                "ConsumedQuantity": -origin_quantity,
                "Tags": "{}",
            }
        )
        for share in group:
            tags = {
                f"{TAG_PREFIX}apim-product": share["product_id"],
                f"{TAG_PREFIX}apim-subscription": share["subscription_id"],
                f"{TAG_PREFIX}deployment": share["deployment_name"],
                f"{TAG_PREFIX}model": share["model_name"],
            }
            rows.append(
                {
                    **_origin_columns(share),
                    "BilledCost": share["billed_cost"],
                    "EffectiveCost": share["effective_cost"],
                    "ListCost": share["list_cost"] or Decimal(0),
                    "ContractedCost": share["contracted_cost"] or Decimal(0),
                    "ChargeCategory": share["charge_category"],
                    "ChargeDescription": f"{share['meter_name']}: share of {share['product_id']}",
                    # The origin's quantity in the share's proportion (informational: not rounded to sum).
                    "ConsumedQuantity": (
                        (origin_quantity * share["allocation_quantity"] / basis).quantize(_QUANTITY_PLACES)
                        if basis
                        else origin_quantity
                    ),
                    "Tags": json.dumps({k: v for k, v in tags.items() if v is not None}, sort_keys=True),
                    "x_ApiManagementProductId": share["product_id"],
                    "x_ApiManagementSubscriptionId": share["subscription_id"],
                    "x_DeploymentName": share["deployment_name"],
                    "x_ModelName": share["model_name"],
                    "x_CostType": share["cost_type"],
                    "x_AllocationBasis": share["allocation_basis"],
                    "x_UnattributedReason": share["unattributed_reason"],
                }
            )
    return pa.Table.from_pylist(rows, schema=ACTUAL_HUB_SCHEMA)

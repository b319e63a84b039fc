"""The FOCUS 1.3 export of an actual day: the Cost Management export's charges, allocated to APIM products.

Each origin charge is an export charge (`actual_allocation`: a resource's rows of one meter, price and
commitment on the day), split into allocated charges as FOCUS 1.3 "Data Generator-Calculated Split Cost
Allocation" models it (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, FOCUS 1.3,
`specification/datasets/cost_and_usage/columns/allocatedmethodid.md`, `allocatedmethoddetails.md`,
`allocatedresourceid.md`, `allocatedresourcename.md`, `allocatedtags.md`): every dimension is the origin's
as the export states it (ResourceId, SubAccountId, BillingAccountId, ChargeCategory, PricingCategory, SkuMeter,
SkuPriceId, CommitmentDiscount*, InvoiceId, InvoiceIssuerName, the charge period), the metrics (costs and
quantities) are the shares, summing exactly to the origin's, and what the share went to is in the
allocation columns. `x_OriginChargeId` names the origin by the export's identifiers; `x_CostBasis` is
`actual`. Pure (no I/O).
"""

import json
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.focus import (
    FOCUS_PROVIDER,
    FOCUS_SERVICE_CATEGORY,
    FOCUS_SERVICE_NAME,
    FOCUS_SERVICE_SUBCATEGORY,
    TAG_PREFIX,
)
from chargeback_pipeline.core.billing.focus_1_3 import FOCUS_1_3_SCHEMA, RATIO_PLACES, allocated_resource_id
from chargeback_pipeline.core.billing.money import split_by_largest_remainder
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.core.billing.schemas import RESERVED_PRODUCTS
from chargeback_pipeline.core.periods import month_start, next_month_start

# One documented method per allocation basis (README "Actual cost").
ACTUAL_METHOD_IDS = {
    "prompt_tokens": "azure-cost-export-tokens-by-prompt-tokens",
    "completion_tokens": "azure-cost-export-tokens-by-completion-tokens",
    "estimated_ptu_cost": "azure-cost-export-ptu-hours-by-weighted-usage",
    "unused_commitment": "azure-cost-export-unused-commitment-to-platform",
    "none": "azure-cost-export-unattributed",
}
_QUANTITY_UNITS = 10**6  # QUANTITY's six places: quantities split exactly in millionths


def actual_to_focus_1_3(allocations: pa.Table, pricing: Pricing) -> pa.Table:
    """A day's ACTUAL_ALLOCATION_SCHEMA shares as FOCUS 1.3 allocated charges (FOCUS_1_3_SCHEMA)."""
    shares = allocations.to_pylist()
    by_origin: dict[str, list[int]] = {}
    for index, share in enumerate(shares):
        by_origin.setdefault(share["origin_charge_id"], []).append(index)
    rows: list[dict | None] = [None] * len(shares)
    for indices in by_origin.values():
        group = [shares[i] for i in indices]
        weights = [Fraction(s["allocation_quantity"]) for s in group]
        if not any(weights):
            weights = [Fraction(1)] * len(group)
        ratios = _exact_split(10**RATIO_PLACES, weights)
        quantities = {
            column: _exact_split(int(group[0][column] * _QUANTITY_UNITS), weights)
            for column in ("consumed_quantity", "pricing_quantity")
        }
        for position, index in enumerate(indices):
            rows[index] = _row(
                shares[index],
                Decimal(ratios[position]).scaleb(-RATIO_PLACES),
                {c: Decimal(q[position]).scaleb(-6) for c, q in quantities.items()},
                pricing,
            )
    return pa.Table.from_pylist(rows, schema=FOCUS_1_3_SCHEMA)


def _exact_split(total: int, weights: list[Fraction]) -> list[int]:
    whole = sum(weights, Fraction(0))
    return split_by_largest_remainder(total, [total * w / whole for w in weights], list(range(len(weights))))


def _row(share: dict, ratio: Decimal, quantities: dict, pricing: Pricing) -> dict:
    start = share["charge_period_start"]
    billing_month = month_start(start.date())
    product = share["product_id"]
    allocated = product not in RESERVED_PRODUCTS
    resource_id = share["resource_id"]
    commitment = share["commitment_discount_id"]
    details = {"Elements": [{"AllocatedRatio": ratio}], "x_AllocationBasis": share["allocation_basis"]}
    if share["meter_kind"] == "provisioned":
        details["x_UnusedCapacityPolicy"] = pricing.unused_capacity.policy.value
    tags = {
        f"{TAG_PREFIX}apim-product": product,
        f"{TAG_PREFIX}apim-subscription": share["subscription_id"],
        f"{TAG_PREFIX}cost-type": share["cost_type"],
    }
    return {
        "AllocatedMethodDetails": _json(details),
        "AllocatedMethodId": ACTUAL_METHOD_IDS[share["allocation_basis"]],
        "AllocatedResourceId": allocated_resource_id(share) if allocated else None,
        "AllocatedResourceName": product if allocated else None,
        "AllocatedTags": json.dumps({k: v for k, v in tags.items() if v is not None}, sort_keys=True),
        "BilledCost": share["billed_cost"],
        "BillingAccountId": share["billing_account_id"],
        "BillingAccountName": pricing.focus.billing_account_name,
        "BillingCurrency": share["currency"],
        "BillingPeriodEnd": _midnight(next_month_start(billing_month), start),
        "BillingPeriodStart": _midnight(billing_month, start),
        "ChargeCategory": share["charge_category"],
        "ChargeClass": None,
        "ChargeDescription": share["meter_name"],
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": share["charge_period_end"],
        "ChargePeriodStart": start,
        "CommitmentDiscountCategory": "Usage" if commitment else None,
        "CommitmentDiscountId": commitment,
        "CommitmentDiscountQuantity": quantities["pricing_quantity"] if commitment else None,
        "CommitmentDiscountStatus": share["commitment_discount_status"],
        "CommitmentDiscountType": share["commitment_discount_type"],
        "CommitmentDiscountUnit": share["pricing_unit"] if commitment else None,
        "ConsumedQuantity": quantities["consumed_quantity"],
        "ConsumedUnit": share["consumed_unit"],
        "ContractedCost": share["contracted_cost"],
        "EffectiveCost": share["effective_cost"],
        "HostProviderName": FOCUS_PROVIDER,
        "InvoiceId": share["invoice_id"],
        "InvoiceIssuerName": share["invoice_issuer_name"],
        "ListCost": share["list_cost"],
        "PricingQuantity": quantities["pricing_quantity"],
        "PricingUnit": share["pricing_unit"],
        "ProviderName": FOCUS_PROVIDER,
        "PublisherName": FOCUS_PROVIDER,
        "ResourceId": resource_id,
        "ResourceName": resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else None,
        "ResourceType": "Azure OpenAI account" if resource_id else None,
        "ServiceCategory": FOCUS_SERVICE_CATEGORY,
        "ServiceName": FOCUS_SERVICE_NAME,
        "ServiceProviderName": FOCUS_PROVIDER,
        "ServiceSubcategory": FOCUS_SERVICE_SUBCATEGORY,
        "SkuMeter": share["meter_name"],
        "SkuPriceId": share["sku_price_id"],
        "SubAccountId": share["sub_account_id"],
        "SubAccountName": (share["sub_account_id"] or "").rstrip("/").rsplit("/", 1)[-1] or None,
        "Tags": json.dumps({f"{TAG_PREFIX}backend": share["backend_id"]} if share["backend_id"] else {}),
        "x_ApiManagementProductId": product,
        "x_ApiManagementSubscriptionId": share["subscription_id"],
        "x_ModelName": share["model_name"],
        "x_DeploymentName": share["deployment_name"],
        "x_BackendId": share["backend_id"],
        "x_CostType": share["cost_type"],
        "x_CostBasis": "actual",
        "x_OriginChargeId": share["origin_charge_id"],
        "x_SkuMeterId": share["meter_id"],
        "x_ExportRunId": share["export_run_id"],
        "x_UnattributedReason": share["unattributed_reason"],
    }


def _midnight(day, like):
    return like.replace(year=day.year, month=day.month, day=day.day, hour=0, minute=0, second=0, microsecond=0)


def _json(value) -> str:
    """JSON with exact decimals (numbers, not binary floats)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if text not in ("-0", "") else "0"
    return json.dumps(value)

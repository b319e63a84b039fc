"""The FOCUS 1.3 export: every origin charge split into allocated charges, as FOCUS 1.3 models it.

FOCUS 1.3 "Data Generator-Calculated Split Cost Allocation": an origin charge (here a PTU deployment-hour
or a pay-as-you-go deployment-day, `origin_charges`) is split into allocated charges whose costs and
quantities sum to it, every dimension carried over from the origin; what the charge went to is in the
allocation columns (`AllocatedMethodId`, `AllocatedMethodDetails`, `AllocatedResourceId`/`Name`,
`AllocatedTags`). One row per share of the persisted split, so these rows sum per origin exactly to the
origin's cost and per day to the chargeback. Pure (no I/O).
"""

import json
from datetime import UTC, datetime, time
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.caller_rules import cost_centre
from chargeback_pipeline.core.billing.focus import (
    CUSTOM_LINE_COLUMNS,
    FOCUS_PROVIDER,
    FOCUS_SCHEMA,
    TAG_PREFIX,
    focus_resource_id,
    invoice_id,
    service_columns,
)
from chargeback_pipeline.core.billing.money import split_by_largest_remainder
from chargeback_pipeline.core.billing.origin_charges import PAYGO_DAY, PTU_HOUR
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.core.billing.schemas import CALLER_ID, QUANTITY, RESERVED_PRODUCTS, CostType
from chargeback_pipeline.core.identifier_text import url_segment
from chargeback_pipeline.core.periods import month_start, next_month_start

FOCUS_1_3_VERSION = "1.3"
# The documented split methods (README "FOCUS 1.3: split-cost allocation"); one id per method.
PTU_METHOD_ID = "azure-openai-ptu-hour-by-weighted-tokens"
PAYGO_METHOD_ID = "azure-openai-paygo-day-by-token-cost"
RATIO_PLACES = 12  # AllocatedRatio digits: the ratios of one origin sum to exactly 1 at this precision

_NEW_IN_1_3 = [
    ("ServiceProviderName", pa.string()),
    ("HostProviderName", pa.string()),
    ("AllocatedMethodId", pa.string()),
    ("AllocatedMethodDetails", pa.string()),  # JSON object, serialized
    ("AllocatedResourceId", pa.string()),
    ("AllocatedResourceName", pa.string()),
    ("AllocatedTags", pa.string()),  # JSON object, serialized
]
# Conditional columns an actual day's rows fill from the Cost Management export (`focus_actual`): the
# origin charge's meter and price, and a PTU reservation's commitment (null on estimate rows).
_FROM_THE_EXPORT = [
    ("CommitmentDiscountCategory", pa.string()),
    ("CommitmentDiscountId", pa.string()),
    ("CommitmentDiscountQuantity", QUANTITY),
    ("CommitmentDiscountStatus", pa.string()),
    ("CommitmentDiscountType", pa.string()),
    ("CommitmentDiscountUnit", pa.string()),
    ("SkuMeter", pa.string()),
    ("SkuPriceId", pa.string()),
]
_CUSTOM = [
    *CUSTOM_LINE_COLUMNS,
    ("x_OriginChargeId", pa.string()),
    ("x_SkuMeterId", pa.string()),  # actual: the export's meter id of the origin charge
    ("x_UnattributedReason", pa.string()),  # actual: why an origin charge went whole to `unattributed`
]
# 1.2's FOCUS columns (ProviderName and PublisherName are deprecated in 1.3 but still mandatory), the
# 1.3 additions and the export's conditional columns, then the custom columns.
FOCUS_1_3_SCHEMA = pa.schema(
    sorted([(f.name, f.type) for f in FOCUS_SCHEMA if not f.name.startswith("x_")] + _NEW_IN_1_3 + _FROM_THE_EXPORT)
    + _CUSTOM
)


def to_focus_1_3(allocations: pa.Table, pricing: Pricing) -> pa.Table:
    """The persisted split of a day (origin_charges.ORIGIN_ALLOCATION_SCHEMA) as FOCUS 1.3 allocated
    charges (FOCUS_1_3_SCHEMA), one row per share, in the split's order."""
    rows = allocations.to_pylist()
    by_origin: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        by_origin.setdefault(_origin_key(row), []).append(index)
    ratios: dict[int, Decimal] = {}
    for indices in by_origin.values():
        ratios.update(zip(indices, _ratios([rows[i] for i in indices]), strict=True))
    out = [_focus_row(row, ratios[index], pricing) for index, row in enumerate(rows)]
    return pa.Table.from_pylist(out, schema=FOCUS_1_3_SCHEMA)


def _origin_key(row: dict) -> tuple:
    return (row["backend_id"], row["deployment_name"], row["origin_kind"], row["charge_period_start"])


def origin_charge_id(row: dict) -> str:
    return f"{row['backend_id']}/{row['deployment_name']}/{row['origin_kind']}/{row['charge_period_start']:%Y-%m-%dT%H}"


def _ratios(shares: list[dict]) -> list[Decimal]:
    """Each share's fraction of its origin, summing to exactly 1 (largest remainder at RATIO_PLACES).
    By cost; an origin that cost nothing (tokens priced below half a minor unit) by tokens, else evenly."""
    weights = [row["allocated_cost"] for row in shares]
    if not any(weights):
        weights = [row["prompt_tokens"] + row["completion_tokens"] for row in shares]
    if not any(weights):
        weights = [1] * len(shares)
    total, scale = sum(weights), 10**RATIO_PLACES
    exact = [Fraction(weight) * scale / Fraction(total) for weight in weights]
    units = split_by_largest_remainder(scale, exact, list(range(len(shares))))
    return [Decimal(unit).scaleb(-RATIO_PLACES) for unit in units]


def _focus_row(row: dict, ratio: Decimal, pricing: Pricing) -> dict:
    billing_month = month_start(row["usage_date"])
    cost = row["allocated_cost"]
    ptu = row["origin_kind"] == PTU_HOUR
    resource_id = focus_resource_id(pricing, row["backend_id"], row["deployment_name"])
    subscription = _azure_subscription(resource_id)
    tokens = row["prompt_tokens"] + row["completion_tokens"]
    allocated_to_product = row["product_id"] not in RESERVED_PRODUCTS
    return {
        "AllocatedMethodDetails": _method_details(row, ratio, pricing),
        "AllocatedMethodId": PTU_METHOD_ID if ptu else PAYGO_METHOD_ID,
        # FOCUS: null on the unallocated portion of the origin (unused capacity left with the platform,
        # tokens no APIM product accounts for).
        "AllocatedResourceId": allocated_resource_id(row) if allocated_to_product else None,
        "AllocatedResourceName": row["product_id"] if allocated_to_product else None,
        "AllocatedTags": _allocated_tags(row, pricing),
        "BilledCost": cost,
        "BillingAccountId": pricing.focus.billing_account_id,
        "BillingAccountName": pricing.focus.billing_account_name,
        "BillingCurrency": row["currency"],
        "BillingPeriodEnd": datetime.combine(next_month_start(billing_month), time(), UTC),
        "BillingPeriodStart": datetime.combine(billing_month, time(), UTC),
        "ChargeCategory": "Usage",
        "ChargeClass": None,  # not a correction of an already invoiced period
        "ChargeDescription": _origin_description(row),
        # PTU hours are charged whether used or not; tokens on pay-as-you-go only when used.
        "ChargeFrequency": "Recurring" if ptu else "Usage-Based",
        "ChargePeriodEnd": row["charge_period_end"],
        "ChargePeriodStart": row["charge_period_start"],
        "ConsumedQuantity": Decimal(tokens),
        "ConsumedUnit": "Tokens",
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "HostProviderName": FOCUS_PROVIDER,  # Azure OpenAI runs on Microsoft's own infrastructure
        "InvoiceId": invoice_id(pricing, billing_month),  # a dimension: the origin's, not per product
        "ListCost": cost,
        **_pricing_quantity(row, tokens),
        **service_columns(resource_id, row["deployment_name"]),
        "ServiceProviderName": FOCUS_PROVIDER,
        # The origin's sub account (the Azure subscription of the resource), never the product: every
        # dimension of an allocated charge is its origin's.
        "SubAccountId": subscription,
        "SubAccountName": subscription,
        "Tags": _origin_tags(row),
        "x_ApiManagementProductId": row["product_id"],
        "x_ApiManagementSubscriptionId": row["subscription_id"],
        "x_ModelName": row["model_name"],
        "x_DeploymentName": row["deployment_name"],
        "x_BackendId": row["backend_id"],
        "x_CostType": row["cost_type"],
        "x_CostBasis": "estimate",  # the pricing file's prices (`focus_actual` writes actual days)
        "x_Calls": row["calls"],
        "x_PromptTokens": row["prompt_tokens"],
        "x_CompletionTokens": row["completion_tokens"],
        "x_WeightedTokens": row["weighted_tokens"],
        "x_OriginChargeId": origin_charge_id(row),
    }


def _pricing_quantity(row: dict, tokens: int) -> dict:
    if row["origin_kind"] == PAYGO_DAY:
        return {"PricingQuantity": Decimal(tokens) / 1000, "PricingUnit": "1000 Tokens"}
    weighted = row["weighted_tokens"] if row["cost_type"] == CostType.ptu else Decimal(0)
    return {"PricingQuantity": weighted or Decimal(0), "PricingUnit": "Tokens"}


def _azure_subscription(resource_id: str | None) -> str | None:
    parts = (resource_id or "").strip("/").split("/")
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1]
    return None


def allocated_resource_id(row: dict) -> str:
    # Each id one percent-encoded segment: `../..` or `/` in a product id cannot add segments.
    product = f"apim/products/{url_segment(row['product_id'])}"
    subscription = row["subscription_id"]
    return f"{product}/subscriptions/{url_segment(subscription)}" if subscription else product


def _method_details(row: dict, ratio: Decimal, pricing: Pricing) -> str:
    """FOCUS AllocatedMethodDetailsObject: {"Elements": [{AllocatedRatio, UsageUnit, UsageQuantity}]},
    numbers written exactly (JSON numbers, not binary floats), custom keys x_-prefixed."""
    element = {"AllocatedRatio": _number(ratio)}
    if row["cost_type"] == CostType.ptu and row["weighted_tokens"] is not None:
        element |= {"UsageUnit": json.dumps("Tokens"), "UsageQuantity": _number(row["weighted_tokens"])}
    elif row["cost_type"] == CostType.paygo:
        element |= {
            "UsageUnit": json.dumps("Tokens"),
            "UsageQuantity": _number(row["prompt_tokens"] + row["completion_tokens"]),
        }
    details = {"Elements": "[{" + ", ".join(f'"{k}": {v}' for k, v in element.items()) + "}]"}
    if row["origin_kind"] == PTU_HOUR:
        details["x_UnusedCapacityPolicy"] = json.dumps(pricing.unused_capacity.policy.value)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in details.items()) + "}"


def _number(value) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text if text not in ("-0", "") else "0"


def _origin_description(row: dict) -> str:
    where = f"{row['deployment_name']} ({row['origin_model_name']})"
    if row["origin_kind"] == PTU_HOUR:
        return f"Provisioned throughput hour of {where}, split over its users by weighted tokens"
    return f"Pay-as-you-go tokens of {where} for the day, split by the cost of each user's tokens"


def _origin_tags(row: dict) -> str:
    tags = {
        f"{TAG_PREFIX}backend": row["backend_id"],
        f"{TAG_PREFIX}deployment": row["deployment_name"],
        f"{TAG_PREFIX}model": row["origin_model_name"],
    }
    return json.dumps(tags, sort_keys=True)


def _allocated_tags(row: dict, pricing: Pricing) -> str:
    tags = {
        f"{TAG_PREFIX}apim-product": row["product_id"],
        f"{TAG_PREFIX}apim-subscription": row["subscription_id"],
        f"{TAG_PREFIX}cost-type": row["cost_type"],
        f"{TAG_PREFIX}caller": row.get(CALLER_ID),  # only where the day was attributed with callers
        f"{TAG_PREFIX}cost-centre": cost_centre(row.get(CALLER_ID), pricing.callers),  # the pricing file's rule
    }
    return json.dumps({key: value for key, value in tags.items() if value is not None}, sort_keys=True)

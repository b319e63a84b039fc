"""The FOCUS 1.2 export: the daily chargeback lines as a FinOps cost and usage dataset.

FOCUS (FinOps Open Cost and Usage Specification) is what FinOps tools read. One FOCUS row per daily
chargeback line; mandatory columns in FOCUS's own names, custom ones prefixed `x_`. Pure (no I/O).
FOCUS 1.3 (the default export, split-cost allocation per origin charge) is `focus_1_3`; this version stays
for readers that need 1.2 (CHARGEBACK_FOCUS_VERSION=1.2) and is what FinOps hubs ingest (`finops_hubs`).
"""

import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.core.billing.actual_allocation import OTHER_COSTS
from chargeback_pipeline.core.billing.caller_rules import cost_centre
from chargeback_pipeline.core.billing.cost_basis import line_key
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.core.billing.schemas import CALLER_ID, MONEY, PLATFORM_UNALLOCATED_PRODUCT, QUANTITY, CostType
from chargeback_pipeline.core.periods import month_start, next_month_start, utc_day_start
from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP

FOCUS_VERSION = "1.2"
FOCUS_VERSIONS = ("1.3", "1.2")  # the versions the export writes; the first is the default
FOCUS_SERVICE_CATEGORY = "AI and Machine Learning"
FOCUS_SERVICE_SUBCATEGORY = "Generative AI"
FOCUS_SERVICE_NAME = "Azure OpenAI"
FOCUS_PROVIDER = "Microsoft"
TAG_PREFIX = "chargeback/"

# The custom columns of both versions: what the chargeback line is (product, model, deployment, cost
# type) and its tokens.
CUSTOM_LINE_COLUMNS = [
    ("x_ApiManagementProductId", pa.string()),
    ("x_ApiManagementSubscriptionId", pa.string()),
    ("x_ModelName", pa.string()),
    ("x_DeploymentName", pa.string()),
    ("x_BackendId", pa.string()),
    ("x_CostType", pa.string()),
    ("x_CostBasis", pa.string()),  # `estimate` (the pricing file's prices) or `actual` (the cost export's)
    ("x_ExportRunId", pa.string()),  # actual: the Cost Management export run (runInfo.runId) it comes from
    ("x_Calls", pa.int64()),
    ("x_PromptTokens", pa.int64()),
    ("x_CompletionTokens", pa.int64()),
    ("x_WeightedTokens", QUANTITY),
]

FOCUS_SCHEMA = pa.schema(
    [
        ("BilledCost", MONEY),
        ("BillingAccountId", pa.string()),
        ("BillingAccountName", pa.string()),
        ("BillingCurrency", pa.string()),
        ("BillingPeriodEnd", UTC_TIMESTAMP),
        ("BillingPeriodStart", UTC_TIMESTAMP),
        ("ChargeCategory", pa.string()),
        ("ChargeClass", pa.string()),
        ("ChargeDescription", pa.string()),
        ("ChargeFrequency", pa.string()),
        ("ChargePeriodEnd", UTC_TIMESTAMP),
        ("ChargePeriodStart", UTC_TIMESTAMP),
        ("ConsumedQuantity", QUANTITY),
        ("ConsumedUnit", pa.string()),
        ("ContractedCost", MONEY),
        ("EffectiveCost", MONEY),
        ("InvoiceId", pa.string()),
        ("InvoiceIssuerName", pa.string()),
        ("ListCost", MONEY),
        ("PricingQuantity", QUANTITY),
        ("PricingUnit", pa.string()),
        ("ProviderName", pa.string()),
        ("PublisherName", pa.string()),
        ("ResourceId", pa.string()),
        ("ResourceName", pa.string()),
        ("ResourceType", pa.string()),
        ("ServiceCategory", pa.string()),
        ("ServiceName", pa.string()),
        ("ServiceSubcategory", pa.string()),
        ("SubAccountId", pa.string()),
        ("SubAccountName", pa.string()),
        ("Tags", pa.string()),
        *CUSTOM_LINE_COLUMNS,
        ("x_ProvisionedCost", MONEY),
        ("x_PayAsYouGoCost", MONEY),
        ("x_RateEffectiveFrom", pa.date32()),
    ]
)


def to_focus(
    daily_lines: pa.Table, pricing: Pricing, invoice: tuple[str, str] | None = None, allocations: pa.Table | None = None
) -> pa.Table:
    """The daily lines as a FOCUS 1.2 cost and usage dataset (FOCUS_SCHEMA), one row per line.

    On an estimate day these are allocated (internal) charges at the pricing file's prices (the prices
    actually paid): BilledCost = EffectiveCost = ContractedCost = ListCost = the line's total cost.
    ChargeCategory is Usage, ChargeClass null, ChargeFrequency Recurring for PTU lines (the hours cost whether
    used or not) and Usage-Based for pay-as-you-go, charge period the UTC day, billing period the calendar
    month, SubAccountId the APIM product. Quantities: ConsumedQuantity is the line's tokens (ConsumedUnit
    "Tokens"); PricingQuantity is what the cost was computed from: weighted tokens for PTU lines ("Tokens", 0
    for unused capacity), tokens / 1000 for pay-as-you-go ("1000 Tokens").

    An actual day's published chargeback (`cost_basis` actual) gives EffectiveCost = its total_cost (the
    export's, amortized) and BilledCost = its billed_cost, with `invoice` (the export's InvoiceId and
    InvoiceIssuerName) in place of the provisional statement id, and `allocations` (ACTUAL_ALLOCATION_SCHEMA:
    the export's charges split over the lines) its ListCost and ContractedCost: the export's own, split as
    EffectiveCost is and summed per line (FOCUS 1.2: ListCost at list prices, ContractedCost at the
    negotiated ones, before commitment discounts).
    """
    other_costs = _other_costs(allocations) if allocations is not None else None
    rows = [_focus_row(line, pricing, invoice, other_costs) for line in daily_lines.to_pylist()]
    return pa.Table.from_pylist(rows, schema=FOCUS_SCHEMA)


def _other_costs(allocations: pa.Table) -> Counter:
    """{(line key, "list_cost" | "contracted_cost"): cost} of an actual day's allocations."""
    totals: Counter = Counter()
    for share in allocations.to_pylist():
        for view in OTHER_COSTS:
            totals[(line_key(share), view)] += share[view] or Decimal(0)
    return totals


def _focus_row(line: dict, pricing: Pricing, invoice: tuple[str, str] | None, other_costs: Counter | None) -> dict:
    charge_start = utc_day_start(line["usage_date"])
    billing_month = month_start(line["usage_date"])
    cost = line["total_cost"]
    resource_id = focus_resource_id(pricing, line["backend_id"], line["deployment_name"])
    invoiced = {"InvoiceId": invoice[0], "InvoiceIssuerName": invoice[1]} if invoice else {}
    return {
        "BilledCost": line.get("billed_cost", cost),
        "BillingAccountId": pricing.focus.billing_account_id,
        "BillingAccountName": pricing.focus.billing_account_name,
        "BillingCurrency": line["currency"],
        "BillingPeriodEnd": datetime.combine(next_month_start(billing_month), time(), UTC),
        "BillingPeriodStart": datetime.combine(billing_month, time(), UTC),
        "ChargeCategory": "Usage",
        "ChargeClass": None,  # not a correction of an already invoiced period
        "ChargeDescription": _charge_description(line),
        # PTU hours are charged whether used or not; tokens on pay-as-you-go only when used.
        "ChargeFrequency": "Usage-Based" if line["cost_type"] == CostType.paygo else "Recurring",
        "ChargePeriodEnd": charge_start + timedelta(days=1),
        "ChargePeriodStart": charge_start,
        "ConsumedQuantity": Decimal(line["total_tokens"]),
        "ConsumedUnit": "Tokens",
        # An actual day's line the export charged nothing has none of its costs (its Counter's 0).
        "ContractedCost": cost if other_costs is None else other_costs[(line_key(line), "contracted_cost")],
        "EffectiveCost": cost,
        "InvoiceId": invoice_id(pricing, billing_month, line["product_id"]),
        "ListCost": cost if other_costs is None else other_costs[(line_key(line), "list_cost")],
        **_focus_pricing_quantity(line),
        **service_columns(resource_id, line["deployment_name"]),
        **invoiced,
        "SubAccountId": line["product_id"],
        "SubAccountName": line["product_id"],
        "Tags": _focus_tags(line, pricing),
        "x_ApiManagementProductId": line["product_id"],
        "x_ApiManagementSubscriptionId": line["subscription_id"],
        "x_ModelName": line["model_name"],
        "x_DeploymentName": line["deployment_name"],
        "x_BackendId": line["backend_id"],
        "x_CostType": line["cost_type"],
        "x_CostBasis": line.get("cost_basis") or "estimate",
        "x_ExportRunId": line.get("export_run_id"),
        "x_Calls": line["calls"],
        "x_PromptTokens": line["prompt_tokens"],
        "x_CompletionTokens": line["completion_tokens"],
        "x_WeightedTokens": line["weighted_tokens"],
        "x_ProvisionedCost": line["ptu_cost"],
        "x_PayAsYouGoCost": line["paygo_cost"],
        "x_RateEffectiveFrom": line["rate_effective_from"],
    }


def invoice_id(pricing: Pricing, billing_month, product_id: str | None = None) -> str:
    """The provisional invoice a charge is on: the chargeback's monthly statement of the billing account
    (and, in 1.2, of the product it bills). Known before the month ends, as FOCUS allows."""
    month = f"{pricing.focus.billing_account_id}/{billing_month:%Y-%m}"
    return f"{month}/{product_id}" if product_id else month


def service_columns(resource_id: str | None, deployment_name: str) -> dict:
    """The columns every FOCUS version fills the same way: who provides and invoices the service, which
    service it is, and the deployment as the resource (ResourceName and ResourceType are null whenever
    ResourceId is)."""
    return {
        "InvoiceIssuerName": FOCUS_PROVIDER,
        "ProviderName": FOCUS_PROVIDER,
        "PublisherName": FOCUS_PROVIDER,
        "ResourceId": resource_id,
        "ResourceName": deployment_name if resource_id else None,
        "ResourceType": "Azure OpenAI deployment" if resource_id else None,
        "ServiceCategory": FOCUS_SERVICE_CATEGORY,
        "ServiceName": FOCUS_SERVICE_NAME,
        "ServiceSubcategory": FOCUS_SERVICE_SUBCATEGORY,
    }


def _focus_pricing_quantity(line: dict) -> dict:
    if line["cost_type"] == CostType.paygo:
        return {"PricingQuantity": Decimal(line["total_tokens"]) / 1000, "PricingUnit": "1000 Tokens"}
    weighted = line["weighted_tokens"] if line["cost_type"] == CostType.ptu else Decimal(0)
    return {"PricingQuantity": weighted, "PricingUnit": "Tokens"}


def focus_resource_id(pricing: Pricing, backend_id: str, deployment_name: str) -> str | None:
    backend = pricing.backends.get(backend_id)
    if backend is None or not backend.resource_id:
        return None  # FOCUS: ResourceName and ResourceType are null whenever ResourceId is
    return f"{backend.resource_id.rstrip('/')}/deployments/{deployment_name}"


def _charge_description(line: dict) -> str:
    where = f"{line['deployment_name']} ({line['model_name']})"
    if line["cost_type"] == CostType.paygo:
        return f"Pay-as-you-go tokens on {where}"
    if line["cost_type"] == CostType.ptu:
        return f"Share of provisioned throughput of {where} by weighted tokens"
    if line["product_id"] == PLATFORM_UNALLOCATED_PRODUCT:
        return f"Unused provisioned throughput of {where}, left with the platform"
    return f"Fixed share of unused provisioned throughput of {where}"


def _focus_tags(line: dict, pricing: Pricing) -> str:
    tags = {
        f"{TAG_PREFIX}apim-subscription": line["subscription_id"],
        f"{TAG_PREFIX}model": line["model_name"],
        f"{TAG_PREFIX}deployment": line["deployment_name"],
        f"{TAG_PREFIX}cost-type": line["cost_type"],
        f"{TAG_PREFIX}caller": line.get(CALLER_ID),  # only where the day was attributed with callers
        f"{TAG_PREFIX}cost-centre": cost_centre(line.get(CALLER_ID), pricing.callers),  # the pricing file's rule
    }
    return json.dumps({key: value for key, value in tags.items() if value is not None}, sort_keys=True)

"""Every asset's columns, declared with the definitions: name, type and description, shown in the UI's
column schema before the first run (`dagster/column_schema` on each asset spec), and where each asset's
code lives (`dagster/code_references`: its Python source, and the SQL models or KQL it runs).

Types come from the Arrow schemas where the Python code owns one (storage/schemas.py, core/billing,
core/reconciliation); for the assets the SQL models produce, from the typed lists below, which
test_column_docs.py holds equal to what the models really write. Descriptions come from the SQL models' yml
docs (dbt_like_sql/*/_*__models.yml), read when the definitions are built, and from the lists below for
columns no model documents.
"""

import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import dagster as dg
import pyarrow as pa
import yaml

from chargeback_pipeline.core.billing.focus_1_3 import FOCUS_1_3_SCHEMA
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_SCHEMA, MONEY, QUANTITY
from chargeback_pipeline.core.billing.statements import MONTHLY_STATEMENT_SCHEMA
from chargeback_pipeline.core.reconciliation import DAILY_RECONCILIATION_SCHEMA
from chargeback_pipeline.defs.audit.column_docs import AUDIT_CODE, AUDIT_COLUMNS, AUDIT_DESCRIPTIONS
from chargeback_pipeline.defs.budgets.column_docs import FINOPS_CODE, FINOPS_COLUMNS, FINOPS_DESCRIPTIONS
from chargeback_pipeline.defs.capacity.column_docs import CAPACITY_CODE, CAPACITY_COLUMNS, CAPACITY_DESCRIPTIONS
from chargeback_pipeline.defs.cost_export.column_docs import (
    COST_BASIS_DESCRIPTIONS,
    COST_BASIS_OVERRIDES,
    COST_EXPORT_CODE,
    COST_EXPORT_COLUMNS,
    FOCUS_ACTUAL_DESCRIPTIONS,
    STATEMENT_BASIS_DESCRIPTIONS,
)
from chargeback_pipeline.storage.package_files import package_path
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    PRODUCT_USAGE_SCHEMA,
    UTC_TIMESTAMP,
)
from chargeback_pipeline.storage.sql import SQL_DIR

PACKAGE = package_path()

# What the SQL models write to the lake (names and types; every column nullable, as the lake keeps them).
ATTRIBUTED_REQUESTS_SCHEMA = pa.schema(
    [
        ("request_time", UTC_TIMESTAMP),
        ("usage_date", pa.date32()),
        ("correlation_id", pa.string()),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("api_id", pa.string()),
        ("operation_id", pa.string()),
        ("response_code", pa.int32()),
        ("is_success", pa.bool_()),
        ("has_llm_record", pa.bool_()),
        ("is_billable", pa.bool_()),
        ("llm_time", UTC_TIMESTAMP),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("llm_records", pa.int32()),
        ("nonzero_later_chunks", pa.int32()),
        ("has_token_record", pa.bool_()),
        ("gateway_records", pa.int32()),
    ]
)
QUARANTINED_RECORDS_SCHEMA = pa.schema(
    [
        ("source_table", pa.string()),
        ("reason", pa.string()),
        ("placed_at", UTC_TIMESTAMP),
        ("record", pa.string()),
    ]
)
DEPLOYMENT_RECONCILIATION_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("backend_id", pa.string()),
        ("resource_id", pa.string()),
        ("deployment_name", pa.string()),
        ("has_metrics", pa.bool_()),
        ("metric_prompt_tokens", pa.int64()),
        ("metric_completion_tokens", pa.int64()),
        ("logged_prompt_tokens", pa.int64()),
        ("logged_completion_tokens", pa.int64()),
        ("logged_requests", pa.int64()),
    ]
)

# Columns no SQL model documents (the landed metrics, and the tables the Python code builds).
DESCRIPTIONS = {
    "raw_deployment_metrics": {
        "TimeStamp": "Start of the hour the metric covers (UTC).",
        "ResourceId": "ARM id of the Azure OpenAI resource that reported the metric.",
        "ModelDeploymentName": "Deployment the metric counts.",
        "MetricName": (
            "ProcessedPromptTokens (prompt tokens) or GeneratedTokens (completion tokens); on PTU deployments also "
            "AzureOpenAIProvisionedManagedUtilizationV2 (utilisation, read by ptu_utilization only)."
        ),
        "Total": (
            "The metric's hourly Total: tokens the deployment processed in the hour; for the utilisation metric "
            "the hour's Maximum, in whole percent."
        ),
    },
    "daily_reconciliation": {
        "unattributed_prompt_tokens": "Metric minus logged prompt tokens (bypassed APIM or not logged).",
        "unattributed_completion_tokens": "Metric minus logged completion tokens.",
        "unplaced_tokens": (
            "How much of the gap logged tokens with no known backend (records without a gateway row on a "
            "deployment several resources serve) can explain."
        ),
        "unattributed_percent": "The day's whole gap as a percentage of its metric tokens: 100 x (metric - logged) "
        "/ metric (unplaced tokens not deducted).",
        "unexplained_percent": "The gap no unplaced token can explain: 100 x (metric - logged - unplaced_tokens) / "
        "metric. What the day's verdict judges.",
        "day_verdict": "The day's verdict: ok, warn, block, below minimum (not judged), no metrics or backend unknown.",
        "worst_hour": "The hour with the largest gap of the day (UTC).",
        "worst_hour_verdict": "That hour's verdict; a blocking hour blocks the day's reports too.",
        "worst_hour_metric_tokens": "Metric tokens of the worst hour.",
        "worst_hour_logged_tokens": "Logged tokens of the worst hour.",
        "worst_hour_unattributed_percent": "Unattributed tokens of the worst hour, as a percentage of its metric.",
    },
    "product_usage_report": {
        "product_id": (
            "APIM product; also the reconciliation lines `unattributed` (metric minus logged tokens) and "
            "`logged-not-billable` (logged tokens no product is billed for); a line can be negative, e.g. "
            "products billed tokens logged across midnight (README: the usage report)."
        ),
    },
    "daily_chargeback": {
        "usage_date": "The UTC day the line charges.",
        "product_id": (
            "APIM product charged; `unattributed`, `logged-not-billable` and `platform-unallocated` lines make "
            "the day add up to what the resources metered."
        ),
        "subscription_id": "APIM subscription; null on unattributed and unused-capacity lines.",
        "model_name": "Model of the deployment.",
        "deployment_name": "Azure OpenAI deployment.",
        "backend_id": "APIM backend (the Azure OpenAI resource).",
        "cost_type": "ptu (share of PTU hours by weighted tokens), ptu_unused (unused capacity) or paygo (tokens).",
        "calls": "Billable requests of the line.",
        "prompt_tokens": "Prompt tokens of the line.",
        "completion_tokens": "Completion tokens of the line.",
        "total_tokens": "Prompt plus completion tokens.",
        "weighted_tokens": "Prompt + weight x completion tokens (PTU capacity used); null where the weight is unknown.",
        "output_token_weight": "How many input tokens of PTU capacity one output token uses for the model.",
        "ptu_cost": "The line's share of its PTU deployment's hours, at the currency's minor unit.",
        "paygo_cost": "Pay-as-you-go tokens at the model's prices, at the currency's minor unit.",
        "total_cost": "ptu_cost + paygo_cost.",
        "currency": "ISO 4217 currency of the costs (the pricing file's).",
        "rate_effective_from": "The day the PTU rate or token prices the day was priced with took effect.",
    },
    "focus_export": {
        "BilledCost": "What is charged: on an estimate day the pricing file's cost (an internal charge); on an "
        "actual day the Cost Management export's BilledCost, allocated.",
        "BillingAccountId": "Billing account (pricing file: focus.billing_account_id).",
        "BillingAccountName": "Billing account name (pricing file: focus.billing_account_name).",
        "BillingCurrency": "ISO 4217 currency of the costs.",
        "BillingPeriodEnd": "End of the calendar month billed (exclusive, UTC).",
        "BillingPeriodStart": "Start of the calendar month billed (UTC).",
        "ChargeCategory": "Usage: every line charges usage.",
        "ChargeClass": "Null: not a correction of an invoiced period.",
        "ChargeDescription": "What the line charges, in words.",
        "ChargeFrequency": "Recurring for PTU lines (hours cost whether used or not), Usage-Based for pay-as-you-go.",
        "ChargePeriodEnd": "End of the origin charge's period (exclusive): 1.3 the PTU hour or the day; 1.2 the day.",
        "ChargePeriodStart": "Start of the origin charge's period: 1.3 the PTU hour or the UTC day; 1.2 the day.",
        "ConsumedQuantity": "Tokens of the line.",
        "ConsumedUnit": "Tokens, the unit of ConsumedQuantity.",
        "ContractedCost": "Estimate day: equal to BilledCost. Actual day: the export's ContractedCost, allocated as "
        "EffectiveCost is.",
        "EffectiveCost": "Estimate day: equal to BilledCost. Actual day: the export's EffectiveCost (amortized), "
        "allocated.",
        "InvoiceIssuerName": "Microsoft.",
        "ListCost": "Estimate day: equal to BilledCost (the pricing file holds the prices paid). Actual day: the "
        "export's ListCost, allocated as EffectiveCost is.",
        "PricingQuantity": "What the cost was computed from: weighted tokens (PTU) or tokens / 1000 (pay-as-you-go).",
        "PricingUnit": "Tokens (PTU) or 1000 Tokens (pay-as-you-go).",
        "ProviderName": "Microsoft.",
        "PublisherName": "Microsoft.",
        "ResourceId": "ARM id of the deployment (its backend's resource_id in the pricing file); null without one.",
        "ResourceName": "The deployment's name; null without ResourceId.",
        "ResourceType": "Azure OpenAI deployment; null without ResourceId.",
        "ServiceCategory": "AI and Machine Learning.",
        "ServiceName": "Azure OpenAI.",
        "ServiceSubcategory": "Generative AI.",
        "SubAccountId": "1.3: the Azure subscription of the deployment (the origin's); 1.2: the APIM product charged.",
        "SubAccountName": "The same as SubAccountId, as a name.",
        "Tags": "JSON (chargeback/ keys). 1.3: the origin's backend, deployment and model; 1.2: also the line's "
        "APIM subscription and cost type.",
        "x_ApiManagementProductId": "APIM product.",
        "x_ApiManagementSubscriptionId": "APIM subscription.",
        "x_ModelName": "Model of the deployment.",
        "x_DeploymentName": "Azure OpenAI deployment.",
        "x_BackendId": "APIM backend (the Azure OpenAI resource).",
        "x_CostType": "ptu, ptu_unused or paygo.",
        "x_Calls": "Billable requests of the line.",
        "x_PromptTokens": "Prompt tokens of the line.",
        "x_CompletionTokens": "Completion tokens of the line.",
        "x_WeightedTokens": "Prompt + weight x completion tokens.",
        "x_ProvisionedCost": "The PTU part of the cost.",
        "x_PayAsYouGoCost": "The pay-as-you-go part of the cost.",
        "x_RateEffectiveFrom": "The day the rate or prices used took effect.",
        # FOCUS 1.3 (the default; the descriptions above hold for 1.2, README "FOCUS" says what 1.3 changes).
        "ServiceProviderName": "Microsoft (FOCUS 1.3's replacement for ProviderName, which stays).",
        "HostProviderName": "Microsoft: Azure OpenAI runs on Microsoft's own infrastructure.",
        "InvoiceId": "The chargeback statement the charge is on: billing account/yyyy-mm (1.2: /product too).",
        "AllocatedMethodId": "How the origin charge was split: azure-openai-ptu-hour-by-weighted-tokens or "
        "azure-openai-paygo-day-by-token-cost (README).",
        "AllocatedMethodDetails": "JSON: Elements[AllocatedRatio (share of the origin's cost, summing to 1), "
        "UsageUnit, UsageQuantity (the tokens the share was computed from)].",
        "AllocatedResourceId": "What the charge was allocated to: apim/products/<product>[/subscriptions/<sub>]; "
        "null on the unallocated portion (unused capacity, unattributed tokens).",
        "AllocatedResourceName": "The APIM product; null with AllocatedResourceId.",
        "AllocatedTags": "JSON: the APIM product, subscription and cost type of the allocated charge.",
        "x_OriginChargeId": "The origin charge split: backend/deployment/ptu|paygo/start hour.",
    },
    "monthly_statement": {
        "month_start": "First day of the month stated.",
        "product_id": "APIM product (or a reconciliation or unused-capacity line).",
        "currency": "ISO 4217 currency of the costs.",
        "calls": "Billable requests of the month.",
        "prompt_tokens": "Prompt tokens of the month.",
        "completion_tokens": "Completion tokens of the month.",
        "total_tokens": "Prompt plus completion tokens.",
        "weighted_tokens": "Weighted tokens of the lines whose weight is known.",
        "ptu_usage_cost": "Share of PTU hours charged by use (cost type ptu).",
        "ptu_unused_cost": "Unused PTU capacity charged (cost type ptu_unused).",
        "paygo_cost": "Pay-as-you-go cost.",
        "total_cost": "Everything the product is charged for the month, at the currency's minor unit.",
        "days_covered": "Days of the month with a published chargeback included.",
        "days_in_month": "Days in the calendar month.",
    },
}

# Per asset: its columns (an Arrow schema), the documented SQL models they come from (first found wins),
# and its code beyond the asset's own module: SQL models, KQL, the engine module.
COLUMNS: dict[str, pa.Schema] = {
    "raw_gateway_logs": GATEWAY_LOG_SCHEMA,
    "raw_llm_logs": LLM_LOG_SCHEMA,
    "raw_deployment_metrics": DEPLOYMENT_METRICS_SCHEMA,
    "attributed_requests": ATTRIBUTED_REQUESTS_SCHEMA,
    "quarantined_records": QUARANTINED_RECORDS_SCHEMA,
    "deployment_reconciliation": DEPLOYMENT_RECONCILIATION_SCHEMA,
    "daily_product_usage": PRODUCT_USAGE_SCHEMA,
    "daily_reconciliation": DAILY_RECONCILIATION_SCHEMA,
    "product_usage_report": PRODUCT_USAGE_SCHEMA,
    "daily_chargeback": DAILY_CHARGEBACK_SCHEMA,
    "focus_export": FOCUS_1_3_SCHEMA,  # the default version (CHARGEBACK_FOCUS_VERSION=1.2: focus.FOCUS_SCHEMA)
    "monthly_statement": MONTHLY_STATEMENT_SCHEMA,
}
DOCUMENTED_BY = {
    "raw_gateway_logs": ["staging/stg_apim__gateway_checked"],
    "raw_llm_logs": ["staging/stg_apim__llm_checked"],
    "attributed_requests": ["marts/fct_attributed_requests"],
    "quarantined_records": ["marts/fct_quarantined_records"],
    "deployment_reconciliation": ["marts/fct_deployment_reconciliation"],
    "daily_product_usage": ["marts/fct_daily_product_usage"],
    "daily_reconciliation": ["marts/fct_daily_reconciliation_totals", "marts/fct_deployment_reconciliation"],
    "product_usage_report": ["marts/fct_daily_product_usage"],
}
CODE = {
    "raw_gateway_logs": ["sources/log_analytics/gateway_logs.kql"],
    "raw_llm_logs": ["sources/log_analytics/llm_logs.kql"],
    "raw_deployment_metrics": ["sources/azure_metrics.py"],
    "attributed_requests": ["marts/fct_attributed_requests.sql", "core/attribution.py"],
    "quarantined_records": ["marts/fct_quarantined_records.sql", "core/attribution.py"],
    "deployment_reconciliation": ["marts/fct_deployment_reconciliation.sql", "core/reconciliation.py"],
    "daily_product_usage": ["marts/fct_daily_product_usage.sql", "core/attribution.py"],
    "daily_reconciliation": ["marts/fct_daily_reconciliation_totals.sql", "core/reconciliation.py"],
    "product_usage_report": ["core/reports.py"],
    "daily_chargeback": [
        "marts/fct_hourly_billable_usage.sql",
        "marts/fct_hourly_unattributed_tokens.sql",
        "marts/fct_daily_logged_not_billable_tokens.sql",
        "core/billing/allocation.py",
    ],
    "focus_export": ["core/billing/focus_1_3.py", "core/billing/focus.py", "core/billing/origin_charges.py"],
    "monthly_statement": ["core/billing/statements.py"],
}
# The PTU capacity assets keep theirs beside them.
COLUMNS |= CAPACITY_COLUMNS
DESCRIPTIONS |= CAPACITY_DESCRIPTIONS
CODE |= CAPACITY_CODE
# So do the budget and anomaly assets.
COLUMNS |= FINOPS_COLUMNS
DESCRIPTIONS |= FINOPS_DESCRIPTIONS
CODE |= FINOPS_CODE
# And the audit.
COLUMNS |= AUDIT_COLUMNS
DESCRIPTIONS |= AUDIT_DESCRIPTIONS
CODE |= AUDIT_CODE
# And actual cost (the Cost Management export).
COLUMNS |= COST_EXPORT_COLUMNS
DESCRIPTIONS["billed_chargeback"] = DESCRIPTIONS["daily_chargeback"] | COST_BASIS_OVERRIDES | COST_BASIS_DESCRIPTIONS
DESCRIPTIONS["focus_export"] |= FOCUS_ACTUAL_DESCRIPTIONS
DESCRIPTIONS["monthly_statement"] |= STATEMENT_BASIS_DESCRIPTIONS
CODE |= COST_EXPORT_CODE
# How Arrow types read in the UI.
_TYPE_NAMES = {
    pa.string(): "string",
    pa.bool_(): "boolean",
    pa.int64(): "bigint",
    pa.int32(): "integer",
    pa.float64(): "double",
    MONEY: "decimal(18,6) money",
    QUANTITY: "decimal(38,6)",
}


def type_name(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp (UTC)"
    if pa.types.is_date(arrow_type):
        return "date"
    return _TYPE_NAMES.get(arrow_type, str(arrow_type))


@cache
def model_docs() -> dict[str, dict[str, str]]:
    """Column descriptions of every documented SQL model, by model path (`marts/fct_attributed_requests`)."""
    docs = {}
    for path in sorted(SQL_DIR.glob("*/_*.yml")):
        for model in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            columns = {c["name"]: " ".join(str(c.get("description", "")).split()) for c in model.get("columns", [])}
            docs[f"{path.parent.name}/{model['name']}"] = columns
    return docs


def descriptions(asset: str) -> dict[str, str]:
    """Every column's description of the asset: its own list first, then its models' yml docs."""
    found: dict[str, str] = {}
    for model in reversed(DOCUMENTED_BY.get(asset, [])):
        found |= {name: text for name, text in model_docs().get(model, {}).items() if text}
    return found | DESCRIPTIONS.get(asset, {})


def column_schema(asset: str) -> dg.TableSchema:
    documented = descriptions(asset)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(field.name, type_name(field.type), description=documented.get(field.name))
            for field in COLUMNS[asset]
        ]
    )


def _code_file(relative: str) -> Path:
    sql_folders = ("marts/", "intermediate/", "staging/", "audit/")
    return SQL_DIR / relative if relative.startswith(sql_folders) else PACKAGE / relative


def code_references(asset: str) -> list[dg.LocalFileCodeReference]:
    return [
        dg.LocalFileCodeReference(file_path=str(_code_file(relative)), line_number=1, label=relative)
        for relative in CODE.get(asset, [])
    ]


def documented(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with each one's column schema and code references (its own module, and `CODE`)."""

    def with_docs(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        metadata: dict[str, object] = {}
        if name in COLUMNS:
            metadata["dagster/column_schema"] = column_schema(name)
        if name in CODE:
            metadata["dagster/code_references"] = dg.CodeReferencesMetadataValue(code_references=code_references(name))
        return spec.merge_attributes(metadata=metadata)

    with warnings.catch_warnings():
        # Code references are a Dagster beta (1.13): each call says so in a BetaWarning. The code location
        # must load without warnings from our code (test_definitions.py), so exactly that category is
        # silenced, here only.
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        mapped = [a.map_asset_specs(with_docs) for a in assets]
        return list(dg.with_source_code_references(mapped))


def missing_descriptions(schemas: Mapping[str, pa.Schema] = COLUMNS) -> dict[str, list[str]]:
    """Columns without a description, by asset (none, as test_column_docs.py holds)."""
    return {
        asset: [field.name for field in schema if not descriptions(asset).get(field.name)]
        for asset, schema in schemas.items()
        if any(not descriptions(asset).get(field.name) for field in schema)
    }

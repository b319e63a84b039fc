"""The FOCUS export: column names, types and allowed values checked against the FOCUS 1.2 rules."""

import io
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.core.billing.actual_allocation import allocate_actual_day
from chargeback_pipeline.core.billing.allocation import allocate_day
from chargeback_pipeline.core.billing.cost_basis import actual_lines
from chargeback_pipeline.core.billing.focus import FOCUS_SCHEMA, FOCUS_VERSION, to_focus
from chargeback_pipeline.core.billing.pricing import ISO_4217_MINOR_UNITS, load_pricing
from chargeback_pipeline_tests.test_actual_allocation import DAY as ACTUAL_DAY
from chargeback_pipeline_tests.test_actual_allocation import PAYGO_ID, PTU_ID, charge, charges
from chargeback_pipeline_tests.test_actual_allocation import _estimate as actual_estimate
from chargeback_pipeline_tests.test_actual_allocation import pricing as actual_pricing
from chargeback_pipeline_tests.test_allocation import (
    PAYGO,
    PAYGO_DEPLOYMENT,
    PTU_DEPLOYMENT,
    make_pricing,
    unattributed,
    usage,
)

# FOCUS 1.2, Cost and Usage dataset: the Mandatory columns, and whether each allows nulls.
MANDATORY_COLUMNS = {
    "BilledCost": False,
    "BillingAccountId": False,
    "BillingAccountName": True,
    "BillingCurrency": False,
    "BillingPeriodEnd": False,
    "BillingPeriodStart": False,
    "ChargeCategory": False,
    "ChargeClass": True,
    "ChargeDescription": True,
    "ChargePeriodEnd": False,
    "ChargePeriodStart": False,
    "ContractedCost": False,
    "EffectiveCost": False,
    "InvoiceIssuerName": False,
    "ListCost": False,
    "PricingQuantity": True,
    "PricingUnit": True,
    "ProviderName": False,
    "PublisherName": False,
    "ServiceCategory": False,
    "ServiceName": False,
}
# Conditional / recommended FOCUS columns this export also fills.
OTHER_FOCUS_COLUMNS = {
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "InvoiceId",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceSubcategory",
    "SubAccountId",
    "SubAccountName",
    "Tags",
}
COST_COLUMNS = ["BilledCost", "ContractedCost", "EffectiveCost", "ListCost"]
DATETIME_COLUMNS = ["BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"]
DECIMAL_COLUMNS = [*COST_COLUMNS, "PricingQuantity", "ConsumedQuantity"]

CHARGE_CATEGORIES = {"Adjustment", "Credit", "Purchase", "Tax", "Usage"}
CHARGE_FREQUENCIES = {"One-Time", "Recurring", "Usage-Based"}
SERVICE_CATEGORIES = {
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
}  # fmt: skip
AI_SUBCATEGORIES = {
    "Bots", "Generative AI", "Machine Learning", "Natural Language Processing", "Other (AI and Machine Learning)",
}  # fmt: skip
# UnitFormat: "<plural-units>" or "<unit-quantity> <plural-units>", e.g. "Tokens", "1000 Tokens".
UNIT_FORMAT = re.compile(r"^(\d+ )?[A-Z][A-Za-z]*s$")
FOCUS_COLUMN_ID = re.compile(r"^[A-Z][A-Za-z]*$")  # PascalCase, alphanumeric
CUSTOM_COLUMN_ID = re.compile(r"^x_[A-Z][A-Za-z]*$")

EXAMPLE_FILE = Path(__file__).resolve().parents[1] / "pricing.example.yaml"
DAY = date(2026, 1, 31)
HOUR = datetime(2026, 1, 31, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def pricing():
    # `fixed` policy so that every kind of line appears: ptu, ptu_unused per product, paygo, unattributed.
    return make_pricing(policy="fixed", fixed_shares={"A": "0.5", "B": "0.5"})


@pytest.fixture(scope="module")
def daily_lines(pricing):
    table = usage(
        ("A", 1_000_000, 200_000),
        ("B", 1_500_000, 300_000),
        ("A", 1_234_567, 89_012, PAYGO_DEPLOYMENT, PAYGO),
        hour=HOUR,
    )
    extra = unattributed((PTU_DEPLOYMENT, 900_000, 0), (PAYGO_DEPLOYMENT, 10_000, 0), hour=HOUR)
    return allocate_day(table, extra, pricing, DAY)


@pytest.fixture(scope="module")
def focus(daily_lines, pricing):
    return to_focus(daily_lines, pricing)


def values(table: pa.Table, column: str) -> list:
    return table[column].to_pylist()


def test_one_focus_row_per_chargeback_line(focus, daily_lines):
    assert focus.num_rows == daily_lines.num_rows > 4
    assert set(values(focus, "x_CostType")) == {"ptu", "ptu_unused", "paygo"}
    assert focus.schema == FOCUS_SCHEMA
    assert FOCUS_VERSION.startswith("1.")


def test_every_mandatory_column_is_present_with_its_nullability(focus):
    for column, allows_nulls in MANDATORY_COLUMNS.items():
        assert column in focus.column_names, column
        if not allows_nulls:
            assert focus[column].null_count == 0, column


def test_column_ids_are_focus_columns_or_x_prefixed_custom_columns(focus):
    known = set(MANDATORY_COLUMNS) | OTHER_FOCUS_COLUMNS
    for column in focus.column_names:
        if column in known:
            assert FOCUS_COLUMN_ID.match(column), column
        else:
            assert CUSTOM_COLUMN_ID.match(column), f"{column} is neither a FOCUS column nor x_-prefixed"
    custom = {c for c in focus.column_names if c.startswith("x_")}
    for needed in ("x_ApiManagementProductId", "x_ApiManagementSubscriptionId", "x_ModelName", "x_DeploymentName"):
        assert needed in custom
    assert "x_WeightedTokens" in custom


def test_column_types(focus):
    schema = focus.schema
    for column in DECIMAL_COLUMNS:
        assert pa.types.is_decimal(schema.field(column).type), column
    for column in DATETIME_COLUMNS:
        kind = schema.field(column).type
        assert pa.types.is_timestamp(kind) and kind.tz == "UTC", column
    for column in set(MANDATORY_COLUMNS) - set(DECIMAL_COLUMNS) - set(DATETIME_COLUMNS):
        assert pa.types.is_string(schema.field(column).type), column
    for column in ("ConsumedUnit", "SubAccountId", "SubAccountName", "Tags", "ServiceSubcategory", "ChargeFrequency"):
        assert pa.types.is_string(schema.field(column).type), column


def test_allowed_values(focus):
    assert set(values(focus, "ChargeCategory")) == {"Usage"} <= CHARGE_CATEGORIES
    assert set(values(focus, "ChargeClass")) == {None}  # regular charges, not corrections
    assert set(values(focus, "ChargeFrequency")) <= CHARGE_FREQUENCIES
    assert set(values(focus, "ServiceCategory")) == {"AI and Machine Learning"} <= SERVICE_CATEGORIES
    assert set(values(focus, "ServiceSubcategory")) <= AI_SUBCATEGORIES
    assert set(values(focus, "ProviderName")) == set(values(focus, "PublisherName")) == {"Microsoft"}
    assert set(values(focus, "InvoiceIssuerName")) == {"Microsoft"}
    assert set(values(focus, "ServiceName")) == {"Azure OpenAI"}
    for currency in values(focus, "BillingCurrency"):
        assert re.fullmatch(r"[A-Z]{3}", currency) and currency in ISO_4217_MINOR_UNITS


def test_charge_and_billing_periods(focus):
    for row in focus.to_pylist():
        start, end = row["ChargePeriodStart"], row["ChargePeriodEnd"]
        assert (start, end) == (datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
        assert row["BillingPeriodStart"] == datetime(2026, 1, 1, tzinfo=UTC)
        assert row["BillingPeriodEnd"] == datetime(2026, 2, 1, tzinfo=UTC)
        assert row["BillingPeriodStart"] <= start < end <= row["BillingPeriodEnd"]
        assert end - start == timedelta(days=1)


def test_costs_agree_with_the_chargeback(focus, daily_lines):
    for row in focus.to_pylist():
        assert row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"] == row["ListCost"] >= 0
        assert row["BilledCost"] == row["x_ProvisionedCost"] + row["x_PayAsYouGoCost"]
    assert (
        sum(values(focus, "BilledCost"))
        == sum(values(daily_lines, "total_cost"))
        == Decimal("2400.00") + Decimal("3.18") + Decimal("0.02")
    )


def test_quantities_and_units_for_usage_rows(focus):
    for row in focus.to_pylist():
        # Usage rows that are not corrections: PricingUnit, ConsumedQuantity and ConsumedUnit are not null.
        assert row["PricingUnit"] is not None and UNIT_FORMAT.match(row["PricingUnit"])
        assert row["PricingQuantity"] is not None and row["PricingQuantity"] >= 0
        assert row["ConsumedUnit"] == "Tokens"
        assert row["ConsumedQuantity"] == row["x_PromptTokens"] + row["x_CompletionTokens"]
    paygo = next(r for r in focus.to_pylist() if r["x_CostType"] == "paygo" and r["SubAccountId"] == "A")
    assert (paygo["PricingUnit"], paygo["PricingQuantity"]) == ("1000 Tokens", Decimal("1323.579"))
    ptu = next(r for r in focus.to_pylist() if r["x_CostType"] == "ptu" and r["SubAccountId"] == "A")
    assert (ptu["PricingUnit"], ptu["PricingQuantity"]) == ("Tokens", Decimal(1_800_000))


def test_sub_account_is_the_apim_product_and_tags_carry_subscription_and_model(focus):
    for row in focus.to_pylist():
        assert row["SubAccountId"] == row["x_ApiManagementProductId"] == row["SubAccountName"]
        tags = json.loads(row["Tags"])
        assert isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        assert tags["chargeback/model"] == row["x_ModelName"] == "gpt-4.1"
        assert tags.get("chargeback/apim-subscription") == row["x_ApiManagementSubscriptionId"]
    products = set(values(focus, "SubAccountId"))
    assert {"A", "B", "unattributed"} <= products


def test_resource_columns_are_null_together():
    # No resource_id in the test pricing: ResourceName and ResourceType must then be null too.
    lines = allocate_day(usage(("A", 10, 10), hour=HOUR), unattributed(), make_pricing(), DAY)
    focus = to_focus(lines, make_pricing())
    assert set(values(focus, "ResourceId")) == set(values(focus, "ResourceName")) == {None}


def test_resource_id_is_the_deployment_of_the_configured_resource():
    example = load_pricing(EXAMPLE_FILE)
    lines = allocate_day(usage(("A", 10, 10, "gpt-4.1", "aoai-ptu-eastus"), hour=HOUR), unattributed(), example, DAY)
    for row in to_focus(lines, example).to_pylist():
        account = f"/providers/Microsoft.CognitiveServices/accounts/{row['x_BackendId']}"
        assert row["ResourceId"].endswith(f"{account}/deployments/{row['ResourceName']}")
        assert row["ResourceType"] is not None


def test_export_writes_as_parquet_and_csv(focus):
    buffer = io.BytesIO()
    pq.write_table(focus, buffer)
    assert pq.read_table(io.BytesIO(buffer.getvalue())).equals(focus)
    text = io.BytesIO()
    pa_csv.write_csv(focus, text)
    header = text.getvalue().decode().splitlines()[0]
    assert header.split(",")[0] == '"BilledCost"'


def test_empty_chargeback_exports_an_empty_focus_table(daily_lines, pricing):
    assert to_focus(daily_lines.slice(0, 0), pricing).schema == FOCUS_SCHEMA


def test_invoice_id_is_the_products_monthly_statement(focus, pricing):
    # FOCUS 1.2 InvoiceId: a String, not null when the charge is on an issued or pre-generated provisional
    # invoice; here the chargeback's monthly statement of the product (billing account/month/product).
    for row in focus.to_pylist():
        account = pricing.focus.billing_account_id
        assert row["InvoiceId"] == f"{account}/2026-01/{row['SubAccountId']}"


def test_an_actual_day_states_the_exports_list_and_contracted_costs_split_over_its_lines():
    """FOCUS 1.2 ListCost and ContractedCost (FOCUS_Spec 1.2, columns/listcost.md, contractedcost.md: the
    cost at list and at negotiated prices): on an actual day the export's own, split over the chargeback lines
    as EffectiveCost is, so a negotiated discount shows (ListCost above EffectiveCost) instead of ListCost
    copying EffectiveCost. Expected totals summed here from the export's charges, rounded once per
    resource-day as the export's cents are."""
    prices = actual_pricing()
    estimate = actual_estimate(prices)
    export = charges(
        charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "7.123457", list_cost=Decimal("9.99"),
               contracted_cost=Decimal("8.5")),
        charge(PAYGO_ID, "gpt 4.1 Outp glbl 1M Tokens", "1.5", list_cost=Decimal("2.004"),
               contracted_cost=Decimal("1.75")),
        charge(PTU_ID, "Global Provisioned Managed Unit", "60", list_cost=Decimal("80"), contracted_cost=Decimal("60")),
    )  # fmt: skip
    shares = allocate_actual_day(export, estimate, prices, ACTUAL_DAY)
    lines = actual_lines(estimate, shares, ACTUAL_DAY, "USD")
    focus = to_focus(lines, prices, ("G0001", "Microsoft"), shares)

    assert focus.num_rows == lines.num_rows and set(values(focus, "x_CostBasis")) == {"actual"}
    by_backend = defaultdict(lambda: [Decimal(0)] * 4)
    for row in focus.to_pylist():
        for i, column in enumerate(("ListCost", "ContractedCost", "EffectiveCost", "BilledCost")):
            by_backend[row["x_BackendId"]][i] += row[column]
    assert by_backend == {
        "aoai-paygo": [Decimal("11.99"), Decimal("10.25"), Decimal("8.62"), Decimal("8.62")],
        "aoai-ptu": [Decimal("80"), Decimal("60"), Decimal("60"), Decimal("60")],
    }
    # Line by line the pay-as-you-go lines carry their share of the discount; each column sums per line to
    # the line's allocations.
    paygo = [row for row in focus.to_pylist() if row["x_CostType"] == "paygo" and row["EffectiveCost"]]
    assert paygo and all(row["ListCost"] > row["ContractedCost"] > row["EffectiveCost"] for row in paygo)
    allocated = defaultdict(Decimal)
    for share in shares.to_pylist():
        allocated[(share["product_id"], share["deployment_name"], share["cost_type"])] += share["list_cost"]
    stated = defaultdict(Decimal)
    for row in focus.to_pylist():
        stated[(row["x_ApiManagementProductId"], row["x_DeploymentName"], row["x_CostType"])] += row["ListCost"]
    assert set(allocated) <= set(stated)
    assert all(stated[key] == allocated.get(key, Decimal(0)) for key in stated)
    # An estimate day's lines are unchanged: every cost is the line's.
    estimated = to_focus(estimate, prices)
    assert all(r["ListCost"] == r["ContractedCost"] == r["EffectiveCost"] for r in estimated.to_pylist())

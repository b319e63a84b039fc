"""The FOCUS 1.3 export, held to the FOCUS 1.3 rules for the columns it emits.

Each test cites the rule it checks, from the FOCUS specification (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec,
`specification/datasets/cost_and_usage/columns/*.md` and
`specification/attributes/data_generator_calculated_split_cost_allocation_handling.md`, version 1.3).
The FinOps Foundation's validator has no 1.3 model that can be fetched here, so these tests are the check.
"""

import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
import pytest

from chargeback_pipeline.core.billing.allocation import allocate_day, allocate_day_with_origins
from chargeback_pipeline.core.billing.focus_1_3 import (
    FOCUS_1_3_SCHEMA,
    PAYGO_METHOD_ID,
    PTU_METHOD_ID,
    to_focus_1_3,
)
from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.origin_charges import ORIGIN_ALLOCATION_SCHEMA
from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.core.billing.schemas import RESERVED_PRODUCTS
from chargeback_pipeline_tests.test_allocation import (
    PAYGO,
    PAYGO_DEPLOYMENT,
    PTU_DEPLOYMENT,
    make_pricing,
    unattributed,
    usage,
)
from chargeback_pipeline_tests.test_focus import (
    AI_SUBCATEGORIES,
    CHARGE_CATEGORIES,
    CHARGE_FREQUENCIES,
    EXAMPLE_FILE,
    SERVICE_CATEGORIES,
    UNIT_FORMAT,
)
from chargeback_pipeline_tests.test_focus import (
    MANDATORY_COLUMNS as MANDATORY_1_2,
)

# FOCUS 1.3 Mandatory columns: 1.2's (ProviderName and PublisherName are deprecated in 1.3 but still "MUST
# be present", providername.md / publishername.md), plus ServiceProviderName ("MUST be present ... MUST NOT
# be null", serviceprovidername.md) and HostProviderName ("MUST be present ... MUST NOT be null",
# hostprovidername.md).
MANDATORY_1_3 = {**MANDATORY_1_2, "ServiceProviderName": False, "HostProviderName": False}
ALLOCATION_COLUMNS = [
    "AllocatedMethodId",
    "AllocatedMethodDetails",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
]
# Columns that are metrics (summable): every other FOCUS column is a dimension and, on an allocated charge,
# "MUST match the corresponding value in the origin charge" (split cost allocation handling).
SUMMABLE = {"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity"}
DAY = date(2026, 1, 31)
HOUR = datetime(2026, 1, 31, 10, tzinfo=UTC)


@pytest.fixture(scope="module", params=["fixed", "unallocated", "proportional"])
def case(request):
    """Every kind of origin and share: PTU hours used by two products and the unattributed line, unused
    capacity under each policy, a pay-as-you-go day with a product and unattributed tokens."""
    policy = request.param
    pricing = make_pricing(policy=policy, **({"fixed_shares": {"A": "0.5", "B": "0.5"}} if policy == "fixed" else {}))
    table = usage(
        ("A", 1_000_000, 200_000),
        ("B", 1_500_000, 300_000),
        ("A", 333_333, 77_777, PAYGO_DEPLOYMENT, PAYGO),
        ("A", 1_234_567, 89_012, PAYGO_DEPLOYMENT, PAYGO),
        hour=HOUR,
    )
    extra = unattributed((PTU_DEPLOYMENT, 900_000, 0), (PAYGO_DEPLOYMENT, 10_000, 0), hour=HOUR)
    lines, split = allocate_day_with_origins(table, extra, pricing, DAY)
    return pricing, table, extra, lines, split, to_focus_1_3(split, pricing)


def by_origin(focus: pa.Table) -> dict[str, list[dict]]:
    origins = defaultdict(list)
    for row in focus.to_pylist():
        origins[row["x_OriginChargeId"]].append(row)
    return origins


def test_persisting_the_split_leaves_the_chargeback_lines_unchanged(case):
    pricing, table, extra, lines, split, _ = case
    assert lines.equals(allocate_day(table, extra, pricing, DAY))
    assert split.schema == ORIGIN_ALLOCATION_SCHEMA and split.num_rows > lines.num_rows


def test_the_split_sums_to_every_chargeback_line(case):
    _, _, _, lines, split, _ = case
    columns = ("product_id", "subscription_id", "model_name", "deployment_name", "backend_id", "cost_type")
    summed = defaultdict(Decimal)
    for row in split.to_pylist():
        summed[tuple(row[c] for c in columns)] += row["allocated_cost"]
    assert summed == {tuple(row[c] for c in columns): row["total_cost"] for row in lines.to_pylist()}


def test_every_mandatory_1_3_column_is_present_with_its_nullability(case):
    focus = case[-1]
    assert focus.schema == FOCUS_1_3_SCHEMA
    for column, allows_nulls in MANDATORY_1_3.items():
        assert column in focus.column_names, column
        if not allows_nulls:
            assert focus[column].null_count == 0, column
    assert set(focus["ServiceProviderName"].to_pylist()) == {"Microsoft"}
    # hostprovidername.md: "MAY equal ServiceProviderName when the service provider does not provide visibility
    # into the underlying hosting provider" (Azure OpenAI runs on Microsoft's own infrastructure).
    assert set(focus["HostProviderName"].to_pylist()) == {"Microsoft"}
    for column in focus.column_names:
        assert re.fullmatch(r"[A-Z][A-Za-z]*|x_[A-Z][A-Za-z]*", column), column  # custom columns x_-prefixed


def test_types_and_allowed_values(case):
    focus = case[-1]
    schema = focus.schema
    for column in SUMMABLE:
        assert pa.types.is_decimal(schema.field(column).type), column
    for column in ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"):
        assert schema.field(column).type == pa.timestamp("us", tz="UTC"), column
    for column in [*ALLOCATION_COLUMNS, "InvoiceId", "ServiceProviderName", "HostProviderName", "Tags"]:
        assert pa.types.is_string(schema.field(column).type), column  # JSON objects serialized as strings
    rows = focus.to_pylist()
    assert {r["ChargeCategory"] for r in rows} == {"Usage"} <= CHARGE_CATEGORIES
    assert {r["ChargeClass"] for r in rows} == {None}
    assert {r["ChargeFrequency"] for r in rows} <= CHARGE_FREQUENCIES
    assert {r["ServiceCategory"] for r in rows} <= SERVICE_CATEGORIES
    assert {r["ServiceSubcategory"] for r in rows} <= AI_SUBCATEGORIES
    for row in rows:
        assert UNIT_FORMAT.match(row["PricingUnit"]) and row["PricingQuantity"] >= 0
        assert row["ConsumedUnit"] == "Tokens" and row["ConsumedQuantity"] >= 0
        assert row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"] == row["ListCost"] >= 0


def test_charge_periods_are_the_origin_hour_or_day(case):
    for row in case[-1].to_pylist():
        length = row["ChargePeriodEnd"] - row["ChargePeriodStart"]
        if row["AllocatedMethodId"] == PTU_METHOD_ID:
            assert length == timedelta(hours=1) and row["ChargeFrequency"] == "Recurring"
        else:
            assert length == timedelta(days=1) and row["ChargeFrequency"] == "Usage-Based"
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]


def test_allocated_method_id_is_never_null_on_allocated_charges(case):
    # allocatedmethodid.md: "MUST NOT be null when a charge is related to a data generator-calculated split
    # cost allocation"; every row of this export is one. Documentation "MUST reference a single
    # AllocatedMethodId value": one id per method (README).
    assert set(case[-1]["AllocatedMethodId"].to_pylist()) == {PTU_METHOD_ID, PAYGO_METHOD_ID}


def test_allocated_method_details_follow_the_object_schema_and_ratios_sum_to_one(case):
    # allocatedmethoddetails.md: a JSON object with top-level "Elements" (array of objects); each has a
    # numeric AllocatedRatio ("the allocated charge's percentage of the origin charge"); UsageUnit "must be
    # present if UsageQuantity is provided"; custom keys "x_" + PascalCase; and "The sum of
    # AllocatedRatio across all allocated charges related to a single origin charge MUST be equal to 1".
    for origin, rows in by_origin(case[-1]).items():
        ratios = Decimal(0)
        origin_cost = sum(r["BilledCost"] for r in rows)
        for row in rows:
            details = json.loads(row["AllocatedMethodDetails"], parse_float=Decimal, parse_int=Decimal)
            assert isinstance(details, dict) and isinstance(details["Elements"], list) and details["Elements"]
            assert all(re.fullmatch(r"x_[A-Z][A-Za-z]*", key) for key in details if key != "Elements")
            for element in details["Elements"]:
                assert isinstance(element["AllocatedRatio"], Decimal) and 0 <= element["AllocatedRatio"] <= 1
                if "UsageQuantity" in element:
                    assert UNIT_FORMAT.match(element["UsageUnit"]) and element["UsageQuantity"] >= 0
                ratios += element["AllocatedRatio"]
                if origin_cost:  # the ratio is the share of the origin's cost, to its 12 places
                    assert abs(element["AllocatedRatio"] - row["BilledCost"] / origin_cost) < Decimal("1e-11")
        assert ratios == 1, origin


def test_allocated_resource_is_the_product_and_null_on_the_unallocated_portion(case):
    # allocatedresourceid.md: "MUST be null when a charge represents the unallocated portion of the origin
    # charge after split cost allocation", "MUST NOT be null when a charge represents the allocated portion".
    for row in case[-1].to_pylist():
        product = row["x_ApiManagementProductId"]
        if product in RESERVED_PRODUCTS:
            assert row["AllocatedResourceId"] is None and row["AllocatedResourceName"] is None
        else:
            assert row["AllocatedResourceId"].startswith(f"apim/products/{product}")
            assert row["AllocatedResourceName"] == product


def test_allocated_tags_are_key_value_json_apart_from_the_origin_tags(case):
    # allocatedtags.md: a JSON object (KeyValueFormat) that "MUST NOT include resource tags already present
    # in Tags"; data generator-defined keys "MUST be prefixed with a predetermined ... prefix".
    for row in case[-1].to_pylist():
        tags, allocated = json.loads(row["Tags"]), json.loads(row["AllocatedTags"])
        assert isinstance(allocated, dict) and allocated
        assert not set(tags) & set(allocated)
        assert all(key.startswith("chargeback/") for key in (*tags, *allocated))
        assert allocated["chargeback/apim-product"] == row["x_ApiManagementProductId"]
        assert allocated["chargeback/cost-type"] == row["x_CostType"]


def test_allocated_charges_carry_the_origin_dimensions(case):
    # split cost allocation handling: a dimension "MUST match the corresponding value in the origin charge";
    # tags "MUST include the same keys and values present in the Tags in the origin charge".
    focus = case[-1]
    dimensions = [
        c for c in focus.column_names if not c.startswith("x_") and c not in SUMMABLE and c not in ALLOCATION_COLUMNS
    ]
    assert {"ChargeDescription", "SubAccountId", "InvoiceId", "ResourceId", "Tags", "ChargePeriodStart"} <= set(
        dimensions
    )
    for origin, rows in by_origin(focus).items():
        for column in dimensions:
            assert len({row[column] for row in rows}) == 1, (origin, column)


def test_rows_sum_per_origin_charge_exactly_to_the_origin_cost(case):
    # split cost allocation handling: "The sum of FOCUS column values in allocated charges MUST match the
    # corresponding value in the origin charge" for costs. The origins' costs are recomputed here from the
    # pricing file: each PTU hour as the money module rounds it, each pay-as-you-go day at the token prices.
    pricing, table, _, _, _, focus = case
    minor_unit = pricing.currency_minor_unit
    hour_costs = [10_000] * 24  # make_pricing's PTU: 50 x $2.00 = $100.00 every hour (not the engine's helper)
    origins = by_origin(focus)
    for hour in range(24):
        rows = origins[f"aoai-ptu/{PTU_DEPLOYMENT}/ptu/{DAY.isoformat()}T{hour:02d}"]
        for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            assert sum(r[column] for r in rows) == to_money(hour_costs[hour], minor_unit)
    prices = pricing.token_prices_on(pricing.deployment(PAYGO, PAYGO_DEPLOYMENT).model, DAY)
    prompt = sum(r["prompt_tokens"] for r in table.to_pylist() if r["backend_id"] == PAYGO) + 10_000
    completion = sum(r["completion_tokens"] for r in table.to_pylist() if r["backend_id"] == PAYGO)
    exact = (prompt * Fraction(prices.input_per_1k) + completion * Fraction(prices.output_per_1k)) / 1000
    paygo_rows = origins[f"{PAYGO}/{PAYGO_DEPLOYMENT}/paygo/{DAY.isoformat()}T00"]
    assert sum(r["BilledCost"] for r in paygo_rows) == to_money(round(exact * 10**minor_unit), minor_unit)
    assert len(origins) == 25


def test_rows_sum_per_day_and_product_to_the_chargeback(case):
    _, _, _, lines, _, focus = case
    assert sum(focus["BilledCost"].to_pylist()) == sum(lines["total_cost"].to_pylist())
    per_product = defaultdict(Decimal)
    for row in focus.to_pylist():
        per_product[row["x_ApiManagementProductId"]] += row["BilledCost"]
    expected = defaultdict(Decimal)
    for row in lines.to_pylist():
        expected[row["product_id"]] += row["total_cost"]
    assert per_product == expected


def test_summable_quantities_split_the_origin_quantities(case):
    # Quantities are summable metrics too: per origin, the rows' tokens add up to the tokens the origin
    # served (PTU: the hour's; pay-as-you-go: the day's), unused-capacity rows consuming none.
    _, table, _, _, _, focus = case
    origins = by_origin(focus)
    hour_rows = origins[f"aoai-ptu/{PTU_DEPLOYMENT}/ptu/{HOUR:%Y-%m-%dT%H}"]
    served = sum(
        r["prompt_tokens"] + r["completion_tokens"] for r in table.to_pylist() if r["backend_id"] == "aoai-ptu"
    )
    assert sum(r["ConsumedQuantity"] for r in hour_rows) == served + 900_000
    for row in hour_rows:
        assert row["ConsumedQuantity"] == row["x_PromptTokens"] + row["x_CompletionTokens"]
        if row["x_CostType"] == "ptu_unused":
            assert row["ConsumedQuantity"] == row["PricingQuantity"] == 0


def test_resource_and_sub_account_are_the_origin_resource():
    # SubAccountId is a dimension, so the origin's: the Azure subscription of the deployment's resource.
    example = load_pricing(EXAMPLE_FILE)
    table = usage(("A", 10, 10, "gpt-4.1", "aoai-ptu-eastus"), hour=HOUR)
    _, split = allocate_day_with_origins(table, unattributed(), example, DAY)
    for row in to_focus_1_3(split, example).to_pylist():
        backend = example.backends[row["x_BackendId"]]
        assert row["ResourceId"] == f"{backend.resource_id}/deployments/{row['x_DeploymentName']}"
        assert row["SubAccountId"] == backend.resource_id.split("/")[2] == row["SubAccountName"]
        assert row["InvoiceId"] == f"{example.focus.billing_account_id}/2026-01"


def test_an_empty_day_exports_an_empty_table():
    assert to_focus_1_3(ORIGIN_ALLOCATION_SCHEMA.empty_table(), make_pricing()).schema == FOCUS_1_3_SCHEMA


def test_only_priced_hours_are_origin_charges():
    # A PTU deployment priced for one hour: that hour is the day's only PTU origin charge. Tokens of an hour
    # that cost nothing stay on their chargeback line (at zero cost) and are no allocated charge.
    pricing = make_pricing(only_hour=HOUR)
    table = pa.concat_tables(
        [usage(("A", 1_000, 100), hour=HOUR), usage(("C", 5_000, 500), hour=HOUR + timedelta(hours=2))]
    )
    lines, split = allocate_day_with_origins(table, unattributed(), pricing, DAY)
    focus = to_focus_1_3(split, pricing)
    assert set(by_origin(focus)) == {f"aoai-ptu/{PTU_DEPLOYMENT}/ptu/{HOUR:%Y-%m-%dT%H}"}
    costs = {row["product_id"]: row["total_cost"] for row in lines.to_pylist()}
    assert costs["C"] == 0 and "C" not in focus["x_ApiManagementProductId"].to_pylist()
    assert sum(focus["BilledCost"].to_pylist()) == sum(costs.values()) == Decimal("100.00")

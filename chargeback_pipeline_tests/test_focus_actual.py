"""FOCUS 1.3 rows of an actual day (`core/billing/focus_actual.py`) held to the specification's rules that
test_focus_1_3.py holds the estimate to (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, FOCUS 1.3: the column
files under `specification/datasets/cost_and_usage/columns/` and the split cost allocation handling
attribute): mandatory columns and their nullability, allocation columns, dimensions equal across an
origin's rows, metrics summing per origin exactly to the export's charge (summed here from the charges,
not by the allocation), and commitment columns null unless a commitment is named."""

import json
from collections import defaultdict
from decimal import Decimal

import pytest

from chargeback_pipeline.core.billing.actual_allocation import allocate_actual_day
from chargeback_pipeline.core.billing.focus_1_3 import FOCUS_1_3_SCHEMA
from chargeback_pipeline.core.billing.focus_actual import actual_to_focus_1_3
from chargeback_pipeline_tests.test_actual_allocation import DAY, PAYGO_ID, PTU_ID, _estimate, charge, charges, pricing
from chargeback_pipeline_tests.test_focus_1_3 import ALLOCATION_COLUMNS, MANDATORY_1_3

RESERVATION = "/providers/Microsoft.Capacity/reservationOrders/o/reservations/r"
SUMMABLE = {
    "BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity",
    "CommitmentDiscountQuantity",
}  # fmt: skip
COMMITMENT = {"commitment_discount_id": RESERVATION, "commitment_discount_type": "Reservation"}
ACCOUNT = {"billing_account_id": "/providers/Microsoft.Billing/billingAccounts/1"}


@pytest.fixture(scope="module", params=["proportional", "unallocated"])
def day(request):
    prices = pricing(policy=request.param)
    costs = {"list_cost": Decimal("9.99"), "contracted_cost": Decimal("7.5"), **ACCOUNT}
    export = charges(
        charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "7.123457", consumed_quantity=Decimal(4_000_000),
               pricing_quantity=Decimal(4_000_000), **costs),
        charge(PAYGO_ID, "gpt 4.1 Outp glbl 1M Tokens", "1.5", consumed_quantity=Decimal(150_000),
               pricing_quantity=Decimal(150_000), **costs),
        charge(PAYGO_ID, "gpt 4.1 mini Inpt glbl 1M Tokens", "0.333333", **ACCOUNT),
        charge(PTU_ID, "Global Provisioned Managed Unit", "60", "0", commitment_discount_status="Used",
               pricing_quantity=Decimal(1200), consumed_quantity=Decimal(1200), **COMMITMENT, **ACCOUNT),
        charge(RESERVATION, "Global Provisioned Managed Unit", "12.5", "0", commitment_discount_status="Unused",
               pricing_quantity=Decimal(250), consumed_quantity=Decimal(250), **COMMITMENT, **ACCOUNT),
    )  # fmt: skip
    shares = allocate_actual_day(export, _estimate(prices), prices, DAY)
    return export, actual_to_focus_1_3(shares, prices)


def _by_origin(focus) -> dict[str, list[dict]]:
    origins = defaultdict(list)
    for row in focus.to_pylist():
        origins[row["x_OriginChargeId"]].append(row)
    return origins


def test_mandatory_columns_present_with_their_nullability(day):
    _, focus = day
    assert focus.schema == FOCUS_1_3_SCHEMA
    for column, allows_nulls in MANDATORY_1_3.items():
        if not allows_nulls:
            assert focus[column].null_count == 0, column
    assert set(focus["x_CostBasis"].to_pylist()) == {"actual"}
    assert set(focus["InvoiceId"].to_pylist()) == {"G0001"}  # the export's invoice, never a made-up one


def test_metrics_sum_per_origin_and_resource_to_the_exports_charges(day):
    """Quantities and ratios per origin exactly; money per resource-day, rounded once (an origin's cents are
    its share of the resource-day's rounding: README "Actual cost")."""
    export, focus = day
    origins = _by_origin(focus)
    assert len(origins) == export.num_rows  # each charge its own origin here
    for row in export.to_pylist():
        [rows] = [rows for origin, rows in origins.items() if f"meter=meter-{row['meter_name']}" in origin
                  and origin.startswith(row["resource_id"].lower())]  # fmt: skip
        for column, ours in (("ConsumedQuantity", "consumed_quantity"), ("PricingQuantity", "pricing_quantity")):
            assert sum(r[column] for r in rows) == (row[ours] or 0), column
        ratios = [Decimal(str(json.loads(r["AllocatedMethodDetails"])["Elements"][0]["AllocatedRatio"])) for r in rows]
        assert sum(ratios) == 1
    columns = {"EffectiveCost": "effective_cost", "BilledCost": "billed_cost", "ListCost": "list_cost",
               "ContractedCost": "contracted_cost"}  # fmt: skip
    for resource in {row["resource_id"].lower() for row in export.to_pylist()}:
        ours = [r for r in focus.to_pylist() if r["ResourceId"].lower() == resource]
        theirs = [r for r in export.to_pylist() if r["resource_id"].lower() == resource]
        for column, name in columns.items():
            expected = sum((r[name] or Decimal(0) for r in theirs), Decimal(0)).quantize(Decimal("0.01"))
            assert sum(r[column] for r in ours) == expected, (resource, column)


def test_dimensions_are_the_origins_and_allocation_columns_name_the_product(day):
    _, focus = day
    dimensions = [
        c for c in focus.column_names if not c.startswith("x_") and c not in SUMMABLE and c not in ALLOCATION_COLUMNS
    ]
    for origin, rows in _by_origin(focus).items():
        for column in dimensions:
            assert len({row[column] for row in rows}) == 1, (origin, column)
        for row in rows:
            assert row["AllocatedMethodId"]
            reserved = row["x_ApiManagementProductId"] in (
                "unattributed",
                "platform-unallocated",
                "logged-not-billable",
            )
            assert (row["AllocatedResourceName"] is None) == reserved
            assert json.loads(row["AllocatedTags"])["chargeback/apim-product"] == row["x_ApiManagementProductId"]


def test_commitment_columns_only_on_commitment_charges(day):
    _, focus = day
    for row in focus.to_pylist():
        named = row["CommitmentDiscountId"] is not None
        # commitmentdiscountstatus.md: null when CommitmentDiscountId is null; not null on Usage when it is not.
        assert (row["CommitmentDiscountStatus"] is not None) == named
        assert (row["CommitmentDiscountQuantity"] is not None) == named
        assert (row["CommitmentDiscountCategory"] == "Usage") == named
    statuses = {row["CommitmentDiscountStatus"] for row in focus.to_pylist()} - {None}
    assert statuses == {"Used", "Unused"}

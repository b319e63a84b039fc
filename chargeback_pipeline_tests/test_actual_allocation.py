"""Allocating the Cost Management export's charges (what Azure billed) to the chargeback lines: meters
read from their names or the pricing file, token meters by tokens, PTU hours by the estimate's weighted
split, unattributable charges named, every origin split exactly in both views. Expected values are
recomputed here from the inputs with Fractions, not by the module under test."""

import json
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import dagster as dg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback_pipeline.core.billing.actual_allocation import (
    ActualCostError,
    allocate_actual_day,
    check_export_matches_pricing,
    resources_by_id,
)
from chargeback_pipeline.core.billing.actual_focus import hub_rows
from chargeback_pipeline.core.billing.allocation import allocate_day
from chargeback_pipeline.core.billing.cost_basis import actual_lines, variance_by_product
from chargeback_pipeline.core.billing.meters import MeterKind, UnmappedMeterError, derived_kind, derived_model
from chargeback_pipeline.core.billing.pricing import parse_pricing
from chargeback_pipeline.core.billing.schemas import HOURLY_USAGE_SCHEMA, UNATTRIBUTED_SCHEMA
from chargeback_pipeline.defs.cost_export.billed_chargeback import backends_in_use
from chargeback_pipeline.defs.cost_export.checks import actual_matches_export, export_totals, published_totals
from chargeback_pipeline.sources.cost_export.columns import EXPORT_CHARGE_SCHEMA

DAY = date(2026, 3, 4)
TEN = datetime(2026, 3, 4, 10, tzinfo=UTC)
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices"
PTU_ID, PAYGO_ID = f"{SUB}/accounts/aoai-ptu", f"{SUB}/accounts/aoai-paygo"
PRICES = [{"effective_from": "2026-01-01", "input_per_1k": "0.002", "output_per_1k": "0.008"}]


def pricing(currency: str = "USD", meters: dict | None = None, policy: str = "proportional", **policy_settings):
    return parse_pricing(
        {
            "currency": currency,
            "unused_capacity": {"policy": policy, **policy_settings},
            "models": {
                "gpt-4.1": {"rates": PRICES},
                "gpt-4.1-mini": {"rates": PRICES},
                "text-embedding-3-large": {"rates": PRICES},
            },
            "backends": {
                "aoai-ptu": {
                    "kind": "ptu",
                    "resource_id": PTU_ID.upper(),  # ARM ids compare case-insensitively
                    "deployments": {
                        "gpt-4.1": {
                            "model": "gpt-4.1",
                            "rates": [{"effective_from": "2026-01-01", "ptu_count": 50, "hourly_rate_per_ptu": "2"}],
                        }
                    },
                },
                "aoai-paygo": {
                    "kind": "paygo",
                    "resource_id": PAYGO_ID,
                    "deployments": {
                        "gpt-4.1": {"model": "gpt-4.1"},
                        "mini": {"model": "gpt-4.1-mini"},
                        "embed": {"model": "text-embedding-3-large"},
                    },
                },
            },
            "meters": meters or {},
        }
    )


def usage(*rows: tuple) -> pa.Table:
    """(product, backend, deployment, model, prompt, completion[, hour])"""
    return pa.Table.from_pylist(
        [
            {
                "usage_hour": hour[0] if hour else TEN,
                "product_id": product,
                "subscription_id": f"sub-{product}",
                "model_name": model,
                "deployment_name": deployment,
                "backend_id": backend,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "calls": 1,
            }
            for product, backend, deployment, model, prompt, completion, *hour in rows
        ],
        schema=HOURLY_USAGE_SCHEMA,
    )


def charge(resource: str, meter: str, effective: str, billed: str | None = None, **more) -> dict:
    values = {
        "billing_currency": "USD",
        "charge_period_start": datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC),
        "charge_period_end": datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=1),
        "charge_category": "Usage",
        "pricing_category": "Standard",
        "resource_id": resource,
        "meter_id": f"meter-{meter}",
        "meter_name": meter,
        "sku_price_id": "price-1",
        "effective_cost": Decimal(effective),
        "billed_cost": Decimal(billed if billed is not None else effective),
        "invoice_id": "G0001",
        "invoice_issuer_name": "Microsoft",
        "export_run_id": "run-1",
        **more,
    }
    return {name: values.get(name) for name in EXPORT_CHARGE_SCHEMA.names}


def charges(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=EXPORT_CHARGE_SCHEMA)


TRAFFIC = usage(
    ("A", "aoai-paygo", "gpt-4.1", "gpt-4.1", 1_000_000, 100_000),
    ("B", "aoai-paygo", "gpt-4.1", "gpt-4.1", 3_000_000, 50_000),
    ("C", "aoai-paygo", "mini", "gpt-4.1-mini", 2_000_000, 10),
    ("A", "aoai-ptu", "gpt-4.1", "gpt-4.1", 600_000, 100_000),
    ("B", "aoai-ptu", "gpt-4.1", "gpt-4.1", 200_000, 0),
)


def _estimate(prices=None, traffic=TRAFFIC):
    empty = pa.Table.from_pylist([], schema=UNATTRIBUTED_SCHEMA)
    return allocate_day(traffic, empty, prices or pricing(), DAY)


def _by(allocations: pa.Table, column: str, *key: str) -> dict:
    totals: defaultdict[tuple, Decimal] = defaultdict(Decimal)
    for row in allocations.to_pylist():
        totals[tuple(row[k] for k in key)] += row[column]
    return dict(totals)


@pytest.mark.parametrize(
    "name,kind",
    [
        ("gpt 4.1 Inpt glbl 1M Tokens", MeterKind.input),
        ("gpt-4o-0513-Inp-regnl Tokens", MeterKind.input),
        ("gpt 4.1 Inp DZ Tokens", MeterKind.input),
        ("gpt 4.1 cchd Inpt glbl 1M Tokens", MeterKind.cached_input),
        ("gpt-4o-0806 Cached Input Global Tokens", MeterKind.cached_input),
        ("gpt-4o-mini-0718-Outp-glbl Tokens", MeterKind.output),
        ("gpt 4.1 Output Batch DZ Tokens", MeterKind.output),
        ("Global Provisioned Managed Unit", MeterKind.provisioned),
        ("Data Zone Provisioned Managed Unit Hours", MeterKind.provisioned),
        ("text-embedding-3-large Tokens", None),  # says neither input nor output
        ("gpt 4.1 Inp Outp glbl Tokens", None),  # says both
    ],
)
def test_meter_kinds_read_from_names_where_unambiguous(name, kind):
    assert derived_kind(name) == kind


def test_a_meter_names_the_longest_model_it_contains():
    models = {"gpt-4.1", "gpt-4.1-mini", "gpt-4o"}
    assert derived_model("gpt 4.1 mini Inpt glbl 1M Tokens", models) == "gpt-4.1-mini"
    assert derived_model("gpt 4.1 Inpt glbl 1M Tokens", models) == "gpt-4.1"
    assert derived_model("gpt-4o-0513-Outp-regnl Tokens", models) == "gpt-4o"
    assert derived_model("o3 Inp glbl Tokens", models) is None


def test_token_meters_split_by_their_tokens_in_both_views_exactly():
    prices = pricing()
    lines = _estimate(prices)
    export = charges(
        charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "7.0000001", "8.3333333"),
        charge(PAYGO_ID, "gpt 4.1 Outp glbl 1M Tokens", "1.00", "1.21"),
        charge(PAYGO_ID, "gpt 4.1 cchd Inpt glbl 1M Tokens", "0.10", "0.10"),
        charge(PTU_ID.lower(), "Global Provisioned Managed Unit", "100.004", "0"),
        charge(f"{SUB}/accounts/unrelated", "gpt 4.1 Inpt glbl 1M Tokens", "55"),
    )
    shares = allocate_actual_day(export, lines, prices, DAY)

    effective = _by(shares, "effective_cost", "meter_name", "product_id")
    billed = _by(shares, "billed_cost", "meter_name", "product_id")
    # Input: A 1,000,000 and B 3,000,000 prompt tokens of gpt-4.1 on the paygo resource (mini's are not its model).
    assert effective[("gpt 4.1 Inpt glbl 1M Tokens", "A")] == Decimal("1.75")
    assert effective[("gpt 4.1 Inpt glbl 1M Tokens", "B")] == Decimal("5.25")
    assert billed[("gpt 4.1 Inpt glbl 1M Tokens", "A")] + billed[("gpt 4.1 Inpt glbl 1M Tokens", "B")] == Decimal(
        "8.33"
    )
    # Output: completion tokens 100,000 : 50,000 -> 2/3 : 1/3 of 1.21 = 0.806.. : 0.403.. -> 0.81 + 0.40
    assert billed[("gpt 4.1 Outp glbl 1M Tokens", "A")] == Decimal("0.81")
    assert billed[("gpt 4.1 Outp glbl 1M Tokens", "B")] == Decimal("0.40")
    # Cached input follows the prompt tokens.
    assert effective[("gpt 4.1 cchd Inpt glbl 1M Tokens", "A")] == Decimal("0.03")  # 0.025 -> largest remainder
    assert effective[("gpt 4.1 cchd Inpt glbl 1M Tokens", "B")] == Decimal("0.07")
    # PTU hours: the estimate charged the day's 24 hours ($2,400): hour 10 split over A and B by weighted
    # tokens (A 1,000,000; B 200,000: $83.33 / $16.67), the 23 unused hours to platform-unallocated
    # ($2,300, the proportional policy). The actual $100.00 follows that split: 100 x 83.33 / 2400 = 3.472,
    # 100 x 16.67 / 2400 = 0.6946, 100 x 2300 / 2400 = 95.833; largest remainder gives B the odd cent.
    ptu = {k[1]: v for k, v in effective.items() if k[0] == "Global Provisioned Managed Unit"}
    assert ptu == {"A": Decimal("3.47"), "B": Decimal("0.70"), "platform-unallocated": Decimal("95.83")}
    assert set(billed[k] for k in billed if k[0] == "Global Provisioned Managed Unit") == {Decimal(0)}
    assert f"{SUB}/accounts/unrelated" not in set(shares["resource_id"].to_pylist())
    assert set(shares["invoice_id"].to_pylist()) == {"G0001"}
    # Every share names its origin charge by the export's identifiers.
    assert all(
        o.startswith(PAYGO_ID.lower()) or o.startswith(PTU_ID.lower()) for o in shares["origin_charge_id"].to_pylist()
    )


def test_a_charge_with_no_tokens_of_its_model_goes_to_unattributed_with_its_reason():
    prices = pricing(meters={"text-embedding-3-large Tokens": {"kind": "input", "model": "text-embedding-3-large"}})
    shares = allocate_actual_day(
        charges(charge(PAYGO_ID, "text-embedding-3-large Tokens", "0.42")), _estimate(prices), prices, DAY
    )
    (row,) = shares.to_pylist()
    assert row["product_id"] == "unattributed"
    assert row["effective_cost"] == row["billed_cost"] == Decimal("0.42")
    assert row["unattributed_reason"] == f"no prompt tokens of model text-embedding-3-large on aoai-paygo on {DAY}"


def test_a_meter_nobody_maps_fails_with_the_lines_that_map_it():
    with pytest.raises(UnmappedMeterError) as error:
        allocate_actual_day(
            charges(charge(PAYGO_ID, "text-embedding-3-large Tokens", "1")), _estimate(), pricing(), DAY
        )
    assert '"text-embedding-3-large Tokens":' in str(error.value)
    assert "kind: input | cached_input | output | provisioned" in str(error.value)


def test_a_currency_other_than_the_pricing_files_fails():
    with pytest.raises(ActualCostError, match=re.escape("bills in EUR but pricing.currency is USD")):
        check_export_matches_pricing(
            charges(
                charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "1", billing_currency="EUR"), charge(PTU_ID, "x", "1")
            ),
            pricing(),
            "run r",
        )


def test_a_resource_the_export_never_mentions_fails_when_the_day_uses_it():
    paygo_only = charges(charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "1"))
    with pytest.raises(ActualCostError, match=re.escape(f"run r has no row for aoai-ptu ({PTU_ID.upper()})")):
        check_export_matches_pricing(paygo_only, pricing(), "run r")
    # The day's estimate uses both backends: the PTU resource's missing rows are a scope (or resource_id) error.
    with pytest.raises(ActualCostError, match="has no row for aoai-ptu"):
        check_export_matches_pricing(paygo_only, pricing(), "run r", in_use=backends_in_use(_estimate()))
    # A backend nothing used (a spillover deployment that never spilled) has no row to find: no error.
    ptu_only = charges(charge(PTU_ID, "Global Provisioned Managed Unit", "60"))
    paygo_idle = _estimate(traffic=usage(("A", "aoai-ptu", "gpt-4.1", "gpt-4.1", 600_000, 100_000)))
    assert backends_in_use(paygo_idle) == {"aoai-ptu"}
    check_export_matches_pricing(ptu_only, pricing(), "run r", in_use=backends_in_use(paygo_idle))


def test_two_backends_naming_one_resource_are_refused_not_charged_for_each_other():
    # The export bills per resource: with both backends on it, one backend's products would be charged the
    # other's tokens (the first backend took the resource's every charge, and the check agreed).
    prices = pricing()
    shared = prices.model_copy(
        update={"backends": {**prices.backends, "aoai-spill": prices.backends["aoai-paygo"].model_copy()}}
    )
    with pytest.raises(ActualCostError, match=r"backends aoai-paygo, aoai-spill name the same resource"):
        allocate_actual_day(charges(charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "1")), _estimate(), shared, DAY)


def test_actual_lines_and_variance_add_up_to_the_export():
    prices = pricing()
    lines = _estimate(prices)
    shares = allocate_actual_day(
        charges(
            charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "7"),
            charge(PTU_ID, "Global Provisioned Managed Unit", "60"),
        ),
        lines,
        prices,
        DAY,
    )
    billed = actual_lines(lines, shares, DAY, "USD")
    assert set(billed["cost_basis"].to_pylist()) == {"actual"}
    assert sum(billed["total_cost"].to_pylist()) == Decimal("67")  # the chargeback's cost: amortized
    # The PTU-hour charge is the lines' ptu_cost, the token charge their paygo_cost.
    assert sum(billed["ptu_cost"].to_pylist()) == Decimal("60") and sum(billed["paygo_cost"].to_pylist()) == 7
    assert sum(billed["estimated_cost"].to_pylist()) == sum(lines["total_cost"].to_pylist())
    # Tokens and weights are the estimate's lines', unchanged.
    assert sum(billed["prompt_tokens"].to_pylist()) == sum(lines["prompt_tokens"].to_pylist())
    variance = {row["product_id"]: row for row in variance_by_product(billed).to_pylist()}
    # C used only gpt-4.1-mini, which the export did not charge: its whole estimate is the variance.
    assert variance["C"]["effective_cost"] == 0
    assert variance["C"]["variance_share"] == Decimal(-1)


_amount = st.decimals(min_value=Decimal("-5"), max_value=Decimal("500"), places=9, allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompts=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=6),
    amounts=st.lists(st.tuples(_amount, _amount), min_size=1, max_size=4),
)
def test_every_origin_is_split_exactly_and_each_share_within_a_minor_unit(prompts, amounts):
    prices = pricing()
    traffic = usage(*[(f"P{i}", "aoai-paygo", "gpt-4.1", "gpt-4.1", p, 1) for i, p in enumerate(prompts)])
    lines = _estimate(prices, traffic)
    rows = [
        charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", str(e), str(b), sku_price_id=f"price-{i}")
        for i, (e, b) in enumerate(amounts)
    ]
    shares = allocate_actual_day(charges(*rows), lines, prices, DAY)
    # The resource-day's total is the export's, rounded once (half to even), in both views.
    for column, index in (("effective_cost", 0), ("billed_cost", 1)):
        exact_total = sum((Decimal(a[index]) for a in amounts), Decimal(0))
        assert sum(shares[column].to_pylist(), Decimal(0)) == exact_total.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    weights = {f"P{i}": p for i, p in enumerate(prompts)}
    whole = sum(weights.values())
    for origin, group in _groups(shares).items():
        for column, origin_column in (
            ("effective_cost", "origin_effective_cost"),
            ("billed_cost", "origin_billed_cost"),
        ):
            origin_total = group[0][origin_column]
            assert sum((row[column] for row in group), Decimal(0)) == origin_total, origin
            for row in group:
                if row["unattributed_reason"]:
                    assert whole == 0
                    continue
                exact = Fraction(origin_total) * weights[row["product_id"]] / whole
                assert abs(Fraction(row[column]) - exact) < Fraction(1, 100)
                assert math.floor(exact * 100) <= row[column] * 100 <= math.ceil(exact * 100)


def _groups(shares: pa.Table) -> dict:
    groups: defaultdict[str, list] = defaultdict(list)
    for row in shares.to_pylist():
        groups[row["origin_charge_id"]].append(row)
    return groups


def test_a_hub_union_of_microsofts_rows_and_ours_counts_azure_openai_once():
    """What a FinOps hub does with two datasets in `Costs`: keeps every row of both (ours named by
    x_SourceName, Microsoft's coalesced to 'Cost Management') and sums them."""
    prices = pricing()
    listed = {"list_cost": Decimal("9.5"), "contracted_cost": Decimal("8.25")}  # a negotiated discount
    microsoft = charges(
        charge(PAYGO_ID, "gpt 4.1 Inpt glbl 1M Tokens", "7.0000001", "8.3333333", **listed),
        charge(PAYGO_ID, "gpt 4.1 Outp glbl 1M Tokens", "1.004", "1.21", list_cost=Decimal("1.3"),
               contracted_cost=Decimal("1.21")),
        charge(PTU_ID, "Global Provisioned Managed Unit", "100.004", "0", commitment_discount_id="r-1",
               commitment_discount_status="Used", commitment_discount_type="Reservation", pricing_category="Committed",
               list_cost=Decimal("140"), contracted_cost=Decimal("100.004")),
        charge(f"{SUB}/accounts/unrelated", "gpt 4.1 Inpt glbl 1M Tokens", "55", **listed),
    )  # fmt: skip
    ours = hub_rows(allocate_actual_day(microsoft, _estimate(prices), prices, DAY)).to_pylist()
    costs = {"EffectiveCost": "effective_cost", "BilledCost": "billed_cost", "ListCost": "list_cost",
             "ContractedCost": "contracted_cost"}  # fmt: skip
    union = [
        {**{column: r[theirs] for column, theirs in costs.items()}, "x_SourceName": "Cost Management", "Tags": "{}"}
        for r in microsoft.to_pylist()
    ] + ours

    # Every cost column exactly once, to the digit: a hub's savings (ListCost - EffectiveCost) stay Microsoft's.
    for column, theirs in costs.items():
        assert sum(r[column] for r in union) == sum(microsoft[theirs].to_pylist()), column
    assert {r["x_SourceName"] for r in ours} == {"Azure OpenAI chargeback"}
    assert {r["x_SourceProvider"] for r in ours} == {"Azure OpenAI chargeback"}
    # Each origin's reallocation nets to zero; the products' tagged shares are the allocation.
    by_origin = defaultdict(Decimal)
    for row in ours:
        for column in costs:
            by_origin[(row["x_OriginChargeId"], column)] += row[column]
    assert set(by_origin.values()) == {Decimal(0)}
    tagged = defaultdict(Decimal)
    for row in union:
        tagged[json.loads(row["Tags"]).get("chargeback/apim-product")] += row["EffectiveCost"]
    assert tagged["A"] > 0 and tagged["B"] > 0
    # Per resource-day the export rounded once: paygo 7.0000001 + 1.004 -> 8.00, PTU 100.004 -> 100.00.
    assert sum(v for k, v in tagged.items() if k) == Decimal("108.00")
    # The products' shares of the other costs, rounded the same way: list 9.5 + 1.3 and 140; contracted
    # 8.25 + 1.21 -> 9.46 and 100.004 -> 100.00.
    shares = [r for r in ours if r["x_ApiManagementProductId"]]
    assert sum(r["ListCost"] for r in shares) == Decimal("150.80")
    assert sum(r["ContractedCost"] for r in shares) == Decimal("109.46")
    # The PTU share is a commitment's used part, and carries the export's invoice.
    ptu = [r for r in ours if r["SkuMeter"] == "Global Provisioned Managed Unit" and r["ChargeCategory"] == "Usage"]
    assert {(r["CommitmentDiscountId"], r["CommitmentDiscountStatus"]) for r in ptu} == {("r-1", "Used")}
    assert {r["InvoiceId"] for r in ours} == {"G0001"}


RESERVATION = "/providers/Microsoft.Capacity/reservationOrders/o/reservations/ptu-reservation"


@pytest.mark.parametrize(
    ("policy", "extra"),
    [("proportional", {}), ("unallocated", {}), ("fixed", {"fixed_shares": {"A": "0.5", "B": "0.5"}})],
)
def test_a_ptu_reservation_is_a_commitment_with_its_unused_part_visible_under_every_idle_policy(policy, extra):
    """FOCUS CommitmentDiscountStatus (FOCUS 1.3, columns/commitmentdiscountstatus.md): `Used` on the PTU
    resource's hours, `Unused` on the reservation's idle hours. The used part follows the idle policy over
    the resource's PTU lines; the unused part (no deployment used it) is the platform's ptu_unused cost
    whatever the policy, on the statement and in FOCUS, priced in the export's PTU-hours."""
    from chargeback_pipeline.core.billing.focus_actual import actual_to_focus_1_3
    from chargeback_pipeline.core.billing.statements import monthly_statement
    from chargeback_pipeline.sources.cost_export.rows import UNUSED_STATUS

    prices = pricing(policy=policy, **extra)
    meter = "Global Provisioned Managed Unit"
    commitment = {
        "pricing_category": "Committed",
        "commitment_discount_id": RESERVATION,
        "commitment_discount_type": "Reservation",
        "pricing_unit": "Hours",
        "consumed_unit": "Hours",
    }

    def hours(status: str, resource: str, amount: str, quantity: int) -> dict:
        counted = {"pricing_quantity": Decimal(quantity), "consumed_quantity": Decimal(quantity)}
        costs = {"list_cost": Decimal(amount) * 2, "contracted_cost": Decimal(amount)}  # reserved at half price
        return charge(resource, meter, amount, "0", commitment_discount_status=status, **counted, **costs, **commitment)

    export = charges(hours("Used", PTU_ID, "120", 1200), hours(UNUSED_STATUS, RESERVATION, "36.5", 365))
    lines = _estimate(prices)
    shares = allocate_actual_day(export, lines, prices, DAY)
    chargeback = actual_lines(lines, shares, DAY, "USD")

    unused = [r for r in chargeback.to_pylist() if r["backend_id"] is None]
    assert [(r["product_id"], r["cost_type"], r["total_cost"]) for r in unused] == [
        ("platform-unallocated", "ptu_unused", Decimal("36.5"))
    ]
    ptu_lines = [r for r in chargeback.to_pylist() if r["backend_id"] == "aoai-ptu"]
    assert sum(r["total_cost"] for r in ptu_lines) == 120  # the used part, over the resource's lines
    # Nothing estimates a reservation's unused part: shown beside the variance, never in it (no false alarm).
    variance = {r["product_id"]: r for r in variance_by_product(chargeback).to_pylist()}
    platform = variance["platform-unallocated"]
    assert platform["unused_commitment_cost"] == Decimal("36.5")
    assert platform["variance"] == platform["effective_cost"] - Decimal("36.5") - platform["estimated_cost"]
    assert sum(r["unused_commitment_cost"] for r in variance.values()) == Decimal("36.5")
    if policy == "fixed":  # the used hours' idle capacity follows the policy, as the estimate did
        assert {r["product_id"] for r in ptu_lines if r["cost_type"] == "ptu_unused"} == {"A", "B"}

    statement = {r["product_id"]: r for r in monthly_statement(chargeback, DAY).to_pylist()}
    assert statement["platform-unallocated"]["ptu_unused_cost"] >= Decimal("36.5")
    assert sum(r["total_cost"] for r in statement.values()) == Decimal("156.5") + sum(
        r["total_cost"] for r in chargeback.to_pylist() if r["backend_id"] == "aoai-paygo"
    )

    focus = actual_to_focus_1_3(shares, prices).to_pylist()
    idle = [r for r in focus if r["CommitmentDiscountStatus"] == "Unused"]
    assert len(idle) == 1 and idle[0]["EffectiveCost"] == Decimal("36.5") and idle[0]["ResourceId"] == RESERVATION
    assert idle[0]["CommitmentDiscountQuantity"] == 365 and idle[0]["PricingUnit"] == "Hours"
    assert idle[0]["AllocatedResourceId"] is None and idle[0]["CommitmentDiscountCategory"] == "Usage"
    used = [r for r in focus if r["CommitmentDiscountStatus"] == "Used"]
    assert sum(r["CommitmentDiscountQuantity"] for r in used) == 1200  # PTU-hours, split exactly
    assert sum(r["EffectiveCost"] for r in used) == 120 and {r["CommitmentDiscountId"] for r in used} == {RESERVATION}
    # ListCost and ContractedCost are the export's, split like the effective cost.
    assert sum(r["ListCost"] for r in used) == 240 and sum(r["ContractedCost"] for r in used) == 120
    assert idle[0]["ListCost"] == 73 and idle[0]["ContractedCost"] == Decimal("36.5")


def test_unused_parts_of_two_reservations_are_rounded_per_reservation_by_the_allocation_and_its_check():
    """Each reservation is a resource of its own, rounded once per day (as every resource-day is): 0.006 and
    0.006 unused are 0.01 + 0.01, not 0.012 rounded once. The check (`actual_matches_export`, from the export's
    rows) rounds the same way, so a correct day passes and the cent is neither lost nor invented."""
    prices = pricing()
    meter = "Global Provisioned Managed Unit"

    def reserved(status: str, resource: str, amount: str, reservation: str) -> dict:
        return charge(resource, meter, amount, "0", commitment_discount_status=status, pricing_category="Committed",
                      commitment_discount_id=reservation, commitment_discount_type="Reservation")  # fmt: skip

    first, second = f"{RESERVATION}-1", f"{RESERVATION}-2"
    export = charges(
        reserved("Used", PTU_ID, "120", first),
        reserved("Used", PTU_ID, "80", second),
        reserved("Unused", first, "0.006", first),
        reserved("Unused", second, "0.006", second),
    )
    lines = _estimate(prices)
    billed = actual_lines(lines, allocate_actual_day(export, lines, prices, DAY), DAY, "USD")
    unused = [row for row in billed.to_pylist() if row["backend_id"] is None]
    assert sum(row["total_cost"] for row in unused) == Decimal("0.02")
    expected = export_totals(export, resources_by_id(prices), DAY, prices.currency_minor_unit)
    assert expected[None] == (Decimal("0.02"), Decimal("0"))
    result = actual_matches_export(dg.AssetKey("billed_chargeback"), expected, published_totals(billed))
    assert result.passed, result.metadata["mismatches"]

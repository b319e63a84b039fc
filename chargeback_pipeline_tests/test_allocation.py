"""The money engine: worked examples computed by hand, the rounding invariants, and their properties."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback_pipeline.core.billing.allocation import allocate_day
from chargeback_pipeline.core.billing.money import ptu_hourly_costs, split_by_largest_remainder
from chargeback_pipeline.core.billing.pricing import (
    NoRateError,
    Pricing,
    PricingError,
    UnknownDeploymentError,
    parse_pricing,
)
from chargeback_pipeline.core.billing.schemas import (
    DAILY_CHARGEBACK_SCHEMA,
    HOURLY_USAGE_SCHEMA,
    PLATFORM_UNALLOCATED_PRODUCT,
    UNATTRIBUTED_PRODUCT,
    UNATTRIBUTED_SCHEMA,
)
from chargeback_pipeline.core.billing.statements import MONTHLY_STATEMENT_SCHEMA, monthly_statement

DAY = date(2026, 1, 5)
TEN = datetime(2026, 1, 5, 10, tzinfo=UTC)
PTU, PAYGO = "aoai-ptu", "aoai-paygo"
PTU_DEPLOYMENT, PAYGO_DEPLOYMENT = "gpt-41-ptu", "gpt-41-paygo"
# One PTU hour: 50 PTU x $2.00 = $100.00. Capacity: 50 PTU x 3,000 tokens/min x 60 = 9,000,000 weighted tokens.
HOURLY_PTU = [{"effective_from": "2026-01-01", "ptu_count": 50, "hourly_rate_per_ptu": "2.00"}]
TOKEN_PRICES = [{"effective_from": "2026-01-01", "input_per_1k": "0.002", "output_per_1k": "0.008"}]


def make_pricing(
    *,
    policy: str = "proportional",
    fixed_shares: dict | None = None,
    ptu_rates: list | None = None,
    token_prices: list | None = None,
    only_hour: datetime | None = None,
    currency: str = "USD",
    cached_tokens: str = "count_in_full",
) -> Pricing:
    """A PTU and a pay-as-you-go gpt-4.1 deployment; `only_hour` deploys the PTU for that hour only."""
    ptu = {"model": "gpt-4.1", "rates": ptu_rates or HOURLY_PTU}
    if only_hour is not None:
        ptu |= {"deployed_from": only_hour, "deployed_until": only_hour + timedelta(hours=1)}
    return parse_pricing(
        {
            "currency": currency,
            "cached_tokens": cached_tokens,
            "unused_capacity": {"policy": policy, "fixed_shares": fixed_shares or {}},
            "models": {"gpt-4.1": {"output_token_weight": 4, "rates": token_prices or TOKEN_PRICES}},
            "backends": {
                PTU: {"kind": "ptu", "deployments": {PTU_DEPLOYMENT: ptu}},
                PAYGO: {"kind": "paygo", "deployments": {PAYGO_DEPLOYMENT: {"model": "gpt-4.1"}}},
            },
        }
    )


def usage(*rows: tuple, hour: datetime = TEN, extra: dict | None = None) -> pa.Table:
    """Rows of (product, prompt, completion[, deployment[, backend]]); subscription = "sub-" + product."""
    records = []
    for product, prompt, completion, *where in rows:
        deployment, backend = (where + [PTU_DEPLOYMENT, PTU][len(where) :])[:2]
        records.append(
            {
                "usage_hour": hour,
                "product_id": product,
                "subscription_id": f"sub-{product}",
                "model_name": "gpt-4.1",
                "deployment_name": deployment,
                "backend_id": backend,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "calls": 1,
                **(extra or {}),
            }
        )
    schema = HOURLY_USAGE_SCHEMA
    if extra:
        schema = schema.append(pa.field("cached_prompt_tokens", pa.int64()))
    return pa.Table.from_pylist(records, schema=schema)


def unattributed(*rows: tuple, hour: datetime = TEN) -> pa.Table:
    """Rows of (deployment, prompt, completion)."""
    return pa.Table.from_pylist(
        [{"usage_hour": hour, "deployment_name": d, "prompt_tokens": p, "completion_tokens": c} for d, p, c in rows],
        schema=UNATTRIBUTED_SCHEMA,
    )


NO_UNATTRIBUTED = unattributed()


def costs(lines: pa.Table, column: str = "total_cost") -> dict[tuple[str, str], Decimal]:
    """(product, cost_type) -> cost."""
    result: dict[tuple[str, str], Decimal] = {}
    for row in lines.to_pylist():
        key = (row["product_id"], row["cost_type"])
        result[key] = result.get(key, Decimal(0)) + row[column]
    return result


def total(lines: pa.Table, column: str = "total_cost") -> Decimal:
    return sum((row[column] for row in lines.to_pylist()), Decimal(0))


# Three products in one PTU hour (gpt-4.1: 1 output token = 4 input tokens):
#   A: 1,000,000 prompt + 4 x 200,000 completion = 1,800,000 weighted tokens
#   B: 1,500,000 prompt + 4 x 300,000 completion = 2,700,000
#   C:   500,000 prompt + 4 x 100,000 completion =   900,000
#   used: 5,400,000 of a 9,000,000 capacity (60 %); the hour costs $100.00.
THREE_PRODUCTS = usage(("A", 1_000_000, 200_000), ("B", 1_500_000, 300_000), ("C", 500_000, 100_000))


def test_worked_example_proportional():
    # A: 100 x 1.8/5.4 = 33.333.. -> 33.33 ; B: 100 x 2.7/5.4 = 50.00 ; C: 100 x 0.9/5.4 = 16.666.. -> 16.66
    # 33.33 + 50.00 + 16.66 = 99.99: the cent left over goes to the largest remainder (C .666 > A .333).
    lines = allocate_day(THREE_PRODUCTS, NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY)
    assert costs(lines) == {
        ("A", "ptu"): Decimal("33.33"),
        ("B", "ptu"): Decimal("50.00"),
        ("C", "ptu"): Decimal("16.67"),
    }
    assert [row["weighted_tokens"] for row in lines.to_pylist()] == [1_800_000, 2_700_000, 900_000]
    assert lines.schema == DAILY_CHARGEBACK_SCHEMA


def test_worked_example_unallocated():
    # Users pay for what they used at $100 / 9,000,000 weighted tokens:
    # A 1.8M -> 20.00, B 2.7M -> 30.00, C 0.9M -> 10.00; the unused 40 % ($40.00) stays with the platform.
    lines = allocate_day(THREE_PRODUCTS, NO_UNATTRIBUTED, make_pricing(policy="unallocated", only_hour=TEN), DAY)
    assert costs(lines) == {
        ("A", "ptu"): Decimal("20.00"),
        ("B", "ptu"): Decimal("30.00"),
        ("C", "ptu"): Decimal("10.00"),
        (PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused"): Decimal("40.00"),
    }


def test_worked_example_fixed_shares():
    # Used capacity as under `unallocated` (20 / 30 / 10); the unused $40.00 split 50/30/20 %:
    # A +20.00, B +12.00, C +8.00.
    pricing = make_pricing(policy="fixed", fixed_shares={"A": "0.5", "B": "0.3", "C": "0.2"}, only_hour=TEN)
    lines = allocate_day(THREE_PRODUCTS, NO_UNATTRIBUTED, pricing, DAY)
    assert costs(lines) == {
        ("A", "ptu"): Decimal("20.00"),
        ("A", "ptu_unused"): Decimal("20.00"),
        ("B", "ptu"): Decimal("30.00"),
        ("B", "ptu_unused"): Decimal("12.00"),
        ("C", "ptu"): Decimal("10.00"),
        ("C", "ptu_unused"): Decimal("8.00"),
    }
    unused_lines = [row for row in lines.to_pylist() if row["cost_type"] == "ptu_unused"]
    assert all(row["subscription_id"] is None and row["total_tokens"] == 0 for row in unused_lines)


def test_equal_shares_break_the_tie_deterministically():
    # $100.00 over three equal users: 33.333.. each; the one cent left goes to the first product by name.
    lines = allocate_day(
        usage(("C", 1000, 0), ("A", 1000, 0), ("B", 1000, 0)), NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY
    )
    assert costs(lines) == {
        ("A", "ptu"): Decimal("33.34"),
        ("B", "ptu"): Decimal("33.33"),
        ("C", "ptu"): Decimal("33.33"),
    }


def test_worked_example_spillover_request_is_priced_directly():
    # 1,234,567 prompt tokens x $0.002/1K = 2.469134 ; 89,012 completion tokens x $0.008/1K = 0.712096
    # = $3.18123 -> $3.18. Not shared, whatever happens on the PTU deployment.
    spill = usage(("A", 1_234_567, 89_012, PAYGO_DEPLOYMENT, PAYGO))
    lines = allocate_day(spill, NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY)
    row = next(r for r in lines.to_pylist() if r["cost_type"] == "paygo")
    assert (row["product_id"], row["paygo_cost"], row["ptu_cost"], row["total_cost"]) == (
        "A",
        Decimal("3.18"),
        0,
        Decimal("3.18"),
    )
    assert row["rate_effective_from"] == date(2026, 1, 1)
    # Nobody used the PTU hour: under `proportional` it goes to the platform line.
    assert costs(lines)[(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused")] == Decimal("100.00")


def test_spillover_is_rounded_once_per_deployment_day():
    # Each line costs 5,000 x $0.001/1K = $0.005 exactly; the day's $0.015 rounds (half to even) to $0.02,
    # and the two cents go to the first two lines in order: no cent appears or vanishes.
    prices = [{"effective_from": "2026-01-01", "input_per_1k": "0.001", "output_per_1k": "0.001"}]
    spill = usage(*[(p, 5000, 0, PAYGO_DEPLOYMENT, PAYGO) for p in "ABC"])
    lines = allocate_day(spill, NO_UNATTRIBUTED, make_pricing(token_prices=prices, only_hour=TEN), DAY)
    assert {k: v for k, v in costs(lines, "paygo_cost").items() if k[1] == "paygo"} == {
        ("A", "paygo"): Decimal("0.01"),
        ("B", "paygo"): Decimal("0.01"),
        ("C", "paygo"): Decimal("0.00"),
    }


def test_day_spanning_a_price_change():
    # PTU: $2.00 per PTU-hour until 2026-01-14, $1.50 from 2026-01-15: 50 x 2.00 x 24 = 2,400.00, then 1,800.00.
    # Pay-as-you-go: $0.002/$0.008 per 1K until the 14th, $0.001/$0.004 from the 15th.
    pricing = make_pricing(
        ptu_rates=[*HOURLY_PTU, {"effective_from": "2026-01-15", "ptu_count": 50, "hourly_rate_per_ptu": "1.50"}],
        token_prices=[
            *TOKEN_PRICES,
            {"effective_from": "2026-01-15", "input_per_1k": "0.001", "output_per_1k": "0.004"},
        ],
    )
    before, after = date(2026, 1, 14), date(2026, 1, 15)
    assert sum(ptu_hourly_costs(pricing, PTU, PTU_DEPLOYMENT, before)) == Decimal("2400.00")
    assert sum(ptu_hourly_costs(pricing, PTU, PTU_DEPLOYMENT, after)) == Decimal("1800.00")

    def day_of(day: date) -> pa.Table:
        hour = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        # 1,000,000 x 0.002/1K + 100,000 x 0.008/1K = 2.00 + 0.80 = 2.80 ; at the new prices 1.00 + 0.40 = 1.40
        spill = usage(("A", 1_000_000, 100_000, PAYGO_DEPLOYMENT, PAYGO), hour=hour)
        return allocate_day(spill, unattributed(hour=hour), pricing, day)

    old, new = day_of(before), day_of(after)
    assert costs(old)[("A", "paygo")] == Decimal("2.80")
    assert costs(new)[("A", "paygo")] == Decimal("1.40")
    assert costs(old)[(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused")] == Decimal("2400.00")
    assert costs(new)[(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused")] == Decimal("1800.00")
    assert {r["rate_effective_from"] for r in new.to_pylist()} == {date(2026, 1, 15)}


RESERVATION = [{"effective_from": "2026-01-01", "ptu_count": 50, "monthly_reservation_per_ptu": "260"}]


def test_month_of_31_days_amortises_the_reservation_over_744_hours():
    # 50 PTU x $260 = $13,000 a month. January has 744 hours: 13,000 / 744 = 17.473118.. per hour.
    # Hours are rounded cumulatively: hour 0 = round(17.473) = 17.47, hour 1 = round(34.946) - 17.47 = 17.48,
    # so day 1 = round(24 x 17.473118..) = round(419.3548..) = 419.35.
    pricing = make_pricing(ptu_rates=RESERVATION)
    january_first = ptu_hourly_costs(pricing, PTU, PTU_DEPLOYMENT, date(2026, 1, 1))
    assert january_first[:2] == [Decimal("17.47"), Decimal("17.48")]
    assert sum(january_first) == Decimal("419.35")
    assert _month_total(pricing, date(2026, 1, 1), 31) == Decimal("13000.00")


def test_month_of_28_days_amortises_the_reservation_over_672_hours():
    # February 2026 has 672 hours: 13,000 / 672 = 19.345238.. per hour; day 1 = round(464.2857..) = 464.29.
    pricing = make_pricing(ptu_rates=RESERVATION)
    assert sum(ptu_hourly_costs(pricing, PTU, PTU_DEPLOYMENT, date(2026, 2, 1))) == Decimal("464.29")
    assert _month_total(pricing, date(2026, 2, 1), 28) == Decimal("13000.00")


def _month_total(pricing: Pricing, first: date, days: int) -> Decimal:
    """The month billed day by day with no usage at all: the platform line carries it, to the cent."""
    month = pa.concat_tables(
        [allocate_day(usage(), NO_UNATTRIBUTED, pricing, first + timedelta(days=n)) for n in range(days)]
    )
    statement = monthly_statement(month, first)
    assert statement["product_id"].to_pylist() == [PLATFORM_UNALLOCATED_PRODUCT]
    assert statement["days_covered"].to_pylist() == [days]
    return statement["total_cost"][0].as_py()


@pytest.mark.parametrize(
    ("policy", "fixed_shares", "expected"),
    [
        # Nobody used any hour: under `proportional` nobody can carry it, so the platform line does.
        ("proportional", None, {(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused"): Decimal("2400.00")}),
        ("unallocated", None, {(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused"): Decimal("2400.00")}),
        # Fixed shares apply whether the products used the deployment or not: 2,400 x 0.75 / 0.25.
        (
            "fixed",
            {"A": "0.75", "B": "0.25"},
            {("A", "ptu_unused"): Decimal("1800.00"), ("B", "ptu_unused"): Decimal("600.00")},
        ),
    ],
)
def test_zero_usage_day_under_each_policy(policy, fixed_shares, expected):
    lines = allocate_day(usage(), NO_UNATTRIBUTED, make_pricing(policy=policy, fixed_shares=fixed_shares), DAY)
    assert costs(lines) == expected


def test_unattributed_tokens_share_the_ptu_hour_and_are_priced_on_paygo():
    # PTU hour: A 1,800,000 weighted, unattributed 900,000 prompt tokens (weight 900,000):
    # A 100 x 2/3 = 66.666.. -> 66.67 ; unattributed 33.333.. -> 33.33.
    # Pay-as-you-go: 1,000,000 unattributed prompt tokens x $0.002/1K = $2.00.
    lines = allocate_day(
        usage(("A", 1_000_000, 200_000)),
        unattributed((PTU_DEPLOYMENT, 900_000, 0), (PAYGO_DEPLOYMENT, 1_000_000, 0)),
        make_pricing(only_hour=TEN),
        DAY,
    )
    assert costs(lines) == {
        ("A", "ptu"): Decimal("66.67"),
        (UNATTRIBUTED_PRODUCT, "ptu"): Decimal("33.33"),
        (UNATTRIBUTED_PRODUCT, "paygo"): Decimal("2.00"),
    }
    unattributed_rows = [r for r in lines.to_pylist() if r["product_id"] == UNATTRIBUTED_PRODUCT]
    assert {(r["subscription_id"], r["model_name"], r["calls"]) for r in unattributed_rows} == {(None, "gpt-4.1", 0)}


def test_hours_outside_the_deployment_cost_nothing():
    # Deployed for hour 10 only: an hour-9 user gets tokens but no cost, the day costs $100.00.
    early = usage(("A", 1000, 0), hour=TEN - timedelta(hours=1))
    lines = allocate_day(early, NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY)
    assert costs(lines) == {
        ("A", "ptu"): Decimal("0.00"),
        (PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused"): Decimal("100.00"),
    }


def test_currency_without_minor_unit_rounds_to_whole_yen():
    rates = [{"effective_from": "2026-01-01", "ptu_count": 1, "hourly_rate_per_ptu": "100"}]
    pricing = make_pricing(currency="JPY", ptu_rates=rates, only_hour=TEN)
    lines = allocate_day(usage(("A", 10, 0), ("B", 10, 0), ("C", 10, 0)), NO_UNATTRIBUTED, pricing, DAY)
    assert costs(lines) == {("A", "ptu"): 34, ("B", "ptu"): 33, ("C", "ptu"): 33}
    assert set(lines["currency"].to_pylist()) == {"JPY"}


def test_cached_prompt_tokens_are_deducted_when_configured():
    # deduct: A's 1,000 prompt tokens of which 600 cached weigh 400 on the PTU; B weighs 400: equal shares.
    pricing = make_pricing(only_hour=TEN, cached_tokens="deduct")
    table = pa.concat_tables(
        [
            usage(("A", 1000, 0), extra={"cached_prompt_tokens": 600}),
            usage(("B", 400, 0), extra={"cached_prompt_tokens": 0}),
        ]
    )
    lines = allocate_day(table, NO_UNATTRIBUTED, pricing, DAY)
    assert costs(lines) == {("A", "ptu"): Decimal("50.00"), ("B", "ptu"): Decimal("50.00")}
    # count_in_full (the default) ignores the column: 1,000 vs 400 weighted tokens.
    lines = allocate_day(table, NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY)
    assert costs(lines) == {("A", "ptu"): Decimal("71.43"), ("B", "ptu"): Decimal("28.57")}


def test_result_does_not_depend_on_row_order_or_repeated_groups():
    rows = [("A", 123, 45), ("B", 678, 9), ("C", 1, 1), ("A", 5, 5, PAYGO_DEPLOYMENT, PAYGO)]
    pricing = make_pricing()
    expected = allocate_day(usage(*rows), NO_UNATTRIBUTED, pricing, DAY)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert allocate_day(usage(*shuffled), NO_UNATTRIBUTED, pricing, DAY).equals(expected)
    # The same group split over two rows of the hour is summed.
    split = usage(("A", 100, 40), ("A", 23, 5), ("B", 678, 9), ("C", 1, 1), ("A", 5, 5, PAYGO_DEPLOYMENT, PAYGO))
    assert allocate_day(split, NO_UNATTRIBUTED, pricing, DAY)["total_cost"].equals(expected["total_cost"])


def test_rows_of_other_days_are_ignored():
    other_day = usage(("A", 1000, 0), hour=TEN + timedelta(days=1))
    lines = allocate_day(other_day, NO_UNATTRIBUTED, make_pricing(only_hour=TEN), DAY)
    assert costs(lines) == {(PLATFORM_UNALLOCATED_PRODUCT, "ptu_unused"): Decimal("100.00")}


def test_unknown_deployment_or_backend_is_a_clear_error():
    pricing = make_pricing()
    with pytest.raises(UnknownDeploymentError, match="does not price everything") as raised:
        allocate_day(usage(("A", 1, 1, "gpt-5-ptu", PTU)), NO_UNATTRIBUTED, pricing, DAY)
    assert f"  {PTU}:\n    deployments:\n      gpt-5-ptu:\n        model: gpt-4.1" in str(raised.value)
    with pytest.raises(UnknownDeploymentError, match="does not price everything") as raised:
        allocate_day(usage(("A", 1, 1, PTU_DEPLOYMENT, "aoai-westus")), NO_UNATTRIBUTED, pricing, DAY)
    assert "  aoai-westus:\n    kind: ptu | paygo\n" in str(raised.value)
    with pytest.raises(UnknownDeploymentError, match="deployment 'dev-deployment' is not in the pricing file"):
        allocate_day(usage(), unattributed(("dev-deployment", 1, 1)), pricing, DAY)


def test_every_missing_price_is_listed_in_one_error():
    """One run names everything the day needs that the file lacks, as YAML to add, not the first only."""
    pricing = make_pricing()
    day_usage = usage(("A", 1, 1, "gpt-5-ptu", PTU), ("B", 1, 1, "gpt-6", "aoai-westus"))
    with pytest.raises(UnknownDeploymentError) as raised:
        allocate_day(day_usage, NO_UNATTRIBUTED, pricing, DAY)
    message = str(raised.value)
    assert "gpt-5-ptu" in message and "aoai-westus" in message and "gpt-6" in message


def test_a_model_change_within_a_day_is_one_clear_error():
    pricing = make_pricing()
    morning = usage(("A", 1, 1, PTU_DEPLOYMENT, PTU), hour=datetime(2026, 1, 5, 9, tzinfo=UTC))
    afternoon = usage(("A", 1, 1, PTU_DEPLOYMENT, PTU), hour=datetime(2026, 1, 5, 15, tzinfo=UTC), extra={})
    afternoon = afternoon.set_column(3, "model_name", pa.array(["gpt-4o-2024-11-20"]))
    with pytest.raises(PricingError, match="model changed on 2026-01-05") as raised:
        allocate_day(pa.concat_tables([morning, afternoon]), NO_UNATTRIBUTED, pricing, DAY)
    assert "gpt-4.1 09:00-09:59, gpt-4o 15:00-15:59" in str(raised.value)


def test_paygo_usage_before_the_first_price_is_a_clear_error():
    early = date(2025, 12, 31)
    spill = usage(("A", 1, 1, PAYGO_DEPLOYMENT, PAYGO), hour=datetime(2025, 12, 31, 1, tzinfo=UTC))
    with pytest.raises(NoRateError, match=r"no rate in force on 2025-12-31 for model 'gpt-4\.1'"):
        allocate_day(spill, NO_UNATTRIBUTED, make_pricing(), early)


def test_malformed_inputs_are_rejected_with_the_column_named():
    pricing = make_pricing()
    with pytest.raises(ValueError, match="hourly_usage lacks column"):
        allocate_day(usage().drop_columns(["calls"]), NO_UNATTRIBUTED, pricing, DAY)
    negative = usage(("A", -5, 1))
    with pytest.raises(ValueError, match=r"hourly_usage\.prompt_tokens has negative values"):
        allocate_day(negative, NO_UNATTRIBUTED, pricing, DAY)
    naive = usage(("A", 1, 1)).set_column(0, "usage_hour", pa.array([datetime(2026, 1, 5, 10)], pa.timestamp("us")))
    with pytest.raises(ValueError, match="usage_hour must be a timezone-aware"):
        allocate_day(naive, NO_UNATTRIBUTED, pricing, DAY)
    with pytest.raises(ValueError, match="is not the start of an hour"):
        allocate_day(usage(("A", 1, 1), hour=TEN + timedelta(minutes=5)), NO_UNATTRIBUTED, pricing, DAY)
    with pytest.raises(ValueError, match="product id 'unattributed' is reserved"):
        allocate_day(usage((UNATTRIBUTED_PRODUCT, 1, 1)), NO_UNATTRIBUTED, pricing, DAY)


def test_monthly_statement_sums_days_per_product():
    pricing = make_pricing(only_hour=TEN)
    day_one = allocate_day(THREE_PRODUCTS, NO_UNATTRIBUTED, pricing, DAY)
    # Day two: only pay-as-you-go (the PTU deployment is gone): A spills 1,000,000 prompt tokens = $2.00.
    next_hour = TEN + timedelta(days=1)
    day_two = allocate_day(
        usage(("A", 1_000_000, 0, PAYGO_DEPLOYMENT, PAYGO), hour=next_hour),
        NO_UNATTRIBUTED,
        pricing,
        DAY + timedelta(1),
    )
    statement = monthly_statement(pa.concat_tables([day_one, day_two]), "2026-01")
    assert statement.schema == MONTHLY_STATEMENT_SCHEMA
    rows = {row["product_id"]: row for row in statement.to_pylist()}
    assert rows["A"]["ptu_usage_cost"] == Decimal("33.33")
    assert rows["A"]["paygo_cost"] == Decimal("2.00")
    assert rows["A"]["total_cost"] == Decimal("35.33")
    assert rows["A"]["total_tokens"] == 2_200_000
    assert {row["days_covered"] for row in rows.values()} == {2}
    assert {row["days_in_month"] for row in rows.values()} == {31}
    assert total(statement) == Decimal("102.00")
    assert monthly_statement(day_one, date(2026, 2, 1)).num_rows == 0


def test_largest_remainder_split():
    thirds = [Fraction(100, 3)] * 3
    assert split_by_largest_remainder(100, thirds, [("b",), ("a",), ("c",)]) == [33, 34, 33]
    assert split_by_largest_remainder(10, [Fraction(25, 10), Fraction(75, 10)], [("a",), ("b",)]) == [3, 7]
    with pytest.raises(ValueError, match="cannot split"):
        split_by_largest_remainder(5, [Fraction(1), Fraction(1)], [("a",), ("b",)])


# --- Properties -----------------------------------------------------------------------------------

POLICIES = st.sampled_from(["proportional", "unallocated", "fixed"])
TOKENS = st.integers(min_value=0, max_value=5_000_000)


@st.composite
def fixed_shares(draw) -> dict[str, str]:
    """1 to 4 products with shares of whole percents summing to exactly 1."""
    cuts = sorted(draw(st.sets(st.integers(1, 99), max_size=3)))
    bounds = [0, *cuts, 100]
    return {f"p{i}": str(Decimal(high - low) / 100) for i, (low, high) in enumerate(pairwise(bounds))}


@st.composite
def ptu_rates(draw) -> list[dict]:
    count = draw(st.integers(1, 500))
    if draw(st.booleans()):
        rate = {"hourly_rate_per_ptu": str(Decimal(draw(st.integers(1, 100_000))) / 10_000)}
    else:
        rate = {"monthly_reservation_per_ptu": str(Decimal(draw(st.integers(1, 10_000_000))) / 100)}
    return [{"effective_from": "2026-01-01", "ptu_count": count, **rate}]


def january_hour_costs(rate: dict, day: date, minor_unit: int) -> list[Decimal]:
    """The 24 hour costs of a January day, worked out here from the rate alone: ptu_count x the hourly rate,
    or x the monthly reservation / 744 (January's 31 days x 24 hours); the month's hours rounded
    cumulatively (half to even), so hour h costs round(C(h + 1)) - round(C(h))."""
    assert day.month == 1
    if "hourly_rate_per_ptu" in rate:
        per_hour = rate["ptu_count"] * Fraction(rate["hourly_rate_per_ptu"])
    else:
        per_hour = rate["ptu_count"] * Fraction(rate["monthly_reservation_per_ptu"]) / 744
    scale = 10**minor_unit
    first = (day.day - 1) * 24
    cumulative = [round(per_hour * hours * scale) for hours in range(first, first + 25)]
    return [Decimal(after - before).scaleb(-minor_unit) for before, after in pairwise(cumulative)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=POLICIES,
    shares=fixed_shares(),
    rates=ptu_rates(),
    users=st.lists(st.tuples(TOKENS, TOKENS), max_size=6),
    unattributed_tokens=st.none() | st.tuples(TOKENS, TOKENS),
    hour=st.integers(0, 23),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_ptu_hour_lines_sum_to_its_cost_and_follow_weighted_tokens(
    policy, shares, rates, users, unattributed_tokens, hour, currency
):
    pricing = make_pricing(policy=policy, fixed_shares=shares, ptu_rates=rates, currency=currency)
    at = datetime(2026, 1, 5, hour, tzinfo=UTC)
    # Products u0.. are distinct from the fixed-share products p0..; u0 sorts after "platform-unallocated".
    table = usage(*[(f"u{i}", prompt, completion) for i, (prompt, completion) in enumerate(users)], hour=at)
    extra = unattributed((PTU_DEPLOYMENT, *unattributed_tokens), hour=at) if unattributed_tokens else NO_UNATTRIBUTED
    lines = allocate_day(table, extra, pricing, DAY)
    minor = Decimal(1).scaleb(-pricing.currency_minor_unit)

    hour_costs = january_hour_costs(rates[0], DAY, pricing.currency_minor_unit)  # not the engine's helper
    assert total(lines, "ptu_cost") == sum(hour_costs)  # no unit appears or vanishes
    assert all(row["total_cost"] >= 0 for row in lines.to_pylist())
    assert all(row["total_cost"] % minor == 0 for row in lines.to_pylist())

    # Users only used `hour`, so their `ptu` lines hold exactly their share of that hour.
    cost = Fraction(hour_costs[hour])
    weights = {f"u{i}": prompt + 4 * completion for i, (prompt, completion) in enumerate(users)}
    if unattributed_tokens:
        weights[UNATTRIBUTED_PRODUCT] = unattributed_tokens[0] + 4 * unattributed_tokens[1]
    used = sum(weights.values())
    capacity = rates[0]["ptu_count"] * 3000 * 60
    denominator = used if policy == "proportional" else max(used, capacity)
    shares_paid = costs(lines, "ptu_cost")
    for product, weight in weights.items():
        exact = cost * weight / denominator if denominator else Fraction(0)
        paid = Fraction(shares_paid.get((product, "ptu"), Decimal(0)))
        assert abs(paid - exact) < Fraction(minor), (product, paid, exact)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=POLICIES,
    rows=st.lists(st.tuples(st.integers(0, 23), st.sampled_from("ABCD"), st.booleans(), TOKENS, TOKENS), max_size=20),
)
def test_day_lines_sum_to_ptu_cost_plus_rounded_paygo_cost(policy, rows):
    pricing = make_pricing(policy=policy, fixed_shares={"A": "0.6", "B": "0.4"})
    records = []
    for hour, product, spilled, prompt, completion in rows:
        where = (PAYGO_DEPLOYMENT, PAYGO) if spilled else (PTU_DEPLOYMENT, PTU)
        records.append(usage((product, prompt, completion, *where), hour=datetime(2026, 1, 5, hour, tzinfo=UTC)))
    table = pa.concat_tables([usage(), *records])
    lines = allocate_day(table, NO_UNATTRIBUTED, pricing, DAY)

    exact_paygo = sum(
        (Fraction(p) * Fraction("0.002") + Fraction(c) * Fraction("0.008")) * 100 / 1000
        for _, _, spilled, p, c in rows
        if spilled
    )
    assert total(lines, "paygo_cost") * 100 == round(Fraction(exact_paygo))
    assert total(lines, "ptu_cost") == sum(ptu_hourly_costs(pricing, PTU, PTU_DEPLOYMENT, DAY)) == Decimal("2400.00")
    assert all(row["ptu_cost"] >= 0 and row["paygo_cost"] >= 0 for row in lines.to_pylist())
    tokens = sum(p + c for *_, p, c in rows)
    assert sum(lines["total_tokens"].to_pylist()) == tokens

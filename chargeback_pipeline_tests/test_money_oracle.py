"""The money of a simulated day against the simulator's money oracle (`sources/simulated/money_oracle.py`:
its own requests and the pricing file, exact fractions, rounded once), on months of 28, 29, 30 and 31 days,
a mid-month rate change, every unused-capacity policy and the spillover of every day's peak. The same days
run the audit (`chargeback_audit`), which must pass too. The oracle shares no code with the money engine."""

from collections import Counter
from datetime import date
from fractions import Fraction

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.money_oracle import compare_with_published
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import REPO, local_resources, pipeline

RATE = 60
# The simulated deployments' PTU counts, small for this volume so that the day's busy minutes spill to the
# pay-as-you-go twins (the pricing file still bills the example's 65 and 60 PTU).
PTU_COUNTS = (("gpt-4.1", 2), ("gpt-4o", 2))
PROFILE = SimulationProfile(requests_per_hour=RATE, ptu_counts=PTU_COUNTS)
EXAMPLE = yaml.safe_load((REPO / "pricing.example.yaml").read_text())


def pricing_file(tmp_path, policy: str, ptu_rates: list[dict] | None = None):
    document = yaml.safe_load((REPO / "pricing.example.yaml").read_text())
    document["unused_capacity"] = {"policy": policy}
    if policy == "fixed":
        document["unused_capacity"]["fixed_shares"] = {"customer-support-bot": 0.75, "hr-assistant": 0.25}
    document["models"]["gpt-4.1"]["ptu_input_tokens_per_minute"] = 3000
    document["models"]["gpt-4o"]["ptu_input_tokens_per_minute"] = 2500
    if ptu_rates is not None:
        document["backends"]["aoai-ptu-eastus"]["deployments"]["gpt-4.1"]["rates"] = ptu_rates
    path = tmp_path / f"pricing-{policy}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


# 31-day December, its gpt-4.1 reservation replaced on the 16th by a smaller hourly one.
MID_MONTH_CHANGE = [
    {"effective_from": date(2025, 1, 1), "ptu_count": 100, "monthly_reservation_per_ptu": 260.0},
    {"effective_from": date(2026, 12, 16), "ptu_count": 50, "hourly_rate_per_ptu": 1.5},
]
CASES = {
    "28-day month, proportional": (date(2026, 2, 10), "proportional", None),
    "29-day month, unallocated": (date(2028, 2, 10), "unallocated", None),
    "30-day month, fixed": (date(2026, 11, 10), "fixed", None),
    "31-day month, rate change on the day, proportional": (date(2026, 12, 16), "proportional", MID_MONTH_CHANGE),
}


@pytest.mark.parametrize(("day", "policy", "ptu_rates"), list(CASES.values()), ids=list(CASES))
def test_each_products_cost_is_the_oracles_and_the_audit_passes(tmp_path, day, policy, ptu_rates):
    path = pricing_file(tmp_path, policy, ptu_rates)
    simulated = SimulatedSourceResource(
        simulated_requests_per_hour=RATE, simulated_ptu_counts=[f"{name}={count}" for name, count in PTU_COUNTS]
    )
    resources = local_resources(tmp_path, simulated)
    resources["pricing"] = PricingResource(path=str(path))
    with dg.instance_for_test() as instance:
        [chunk] = backfill(day, day, pipeline(resources), instance)

    lines = pq.read_table(tmp_path / "reports" / f"daily/usage_date={day}/chargeback.parquet").to_pylist()
    published = Counter()
    for line in lines:
        published[line["product_id"]] += line["total_cost"]
    oracle = SimulatedSource(PROFILE).expected_product_costs(day, path, 2)

    assert compare_with_published(oracle, dict(published), 2) == []
    # The tolerance is rounding, far below a wrong month length: 31 / 30 of a 31-day month's PTU day is
    # 40 x $260 / 720 x 24 - 40 x $260 / 744 x 24 = $11.18 for gpt-4.1 alone.
    assert sum(cost.tolerance_minor_units for cost in oracle.values()) < 1118
    assert {line["backend_id"] for line in lines if line["deployment_name"] == "gpt-4.1"} == {
        "aoai-ptu-eastus",
        "aoai-paygo-eastus",
    }, "the day's peak spills gpt-4.1 over to pay-as-you-go"
    if policy != "proportional":
        assert published["platform-unallocated"] > 0 or policy == "fixed"
    if policy == "fixed":
        assert {line["cost_type"] for line in lines if line["product_id"] == "hr-assistant"} >= {"ptu_unused"}
    audit = {
        e.check_name: e.passed for e in chunk.check_evaluations().values() if e.asset_key.path == ["chargeback_audit"]
    }
    assert len(audit) == 5 and all(audit.values()), audit


def test_the_oracle_prices_a_reserved_hour_over_the_months_real_length(tmp_path):
    """December 1: the PTU part of the oracle sums to the month's reservation over
    744 hours: $545.16 a day for the example's 65 PTU at $260 (not the $563.33 a 720-hour month would give),
    and $503.23 for its 60 PTU."""
    path = pricing_file(tmp_path, "proportional")
    day = date(2026, 12, 1)
    oracle = SimulatedSource(PROFILE).expected_product_costs(day, path, 2)
    paygo = SimulatedSource(PROFILE).expected_product_costs(day, pricing_file_without_ptu(tmp_path), 2)
    ptu_total = sum(cost.exact_minor_units for cost in oracle.values()) - sum(
        cost.exact_minor_units for cost in paygo.values()
    )
    gpt_41 = Fraction(65 * 260 * 100 * 24, 744)  # minor units
    gpt_4o = Fraction(60 * 260 * 100 * 24, 744)
    assert ptu_total == gpt_41 + gpt_4o


def pricing_file_without_ptu(tmp_path):
    document = yaml.safe_load((REPO / "pricing.example.yaml").read_text())
    for deployment in document["backends"]["aoai-ptu-eastus"]["deployments"].values():
        deployment["deployed_until"] = date(2020, 1, 1)
    path = tmp_path / "pricing-no-ptu.yaml"
    path.write_text(yaml.safe_dump(document))
    return path

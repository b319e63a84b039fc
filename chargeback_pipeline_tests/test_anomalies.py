"""Cost anomalies in exact numbers: the robust score, injected spikes and step changes found, a quiet month
raising nothing, tiny products and short histories never paging anyone."""

import math
import random
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from chargeback_pipeline.cli import check_summary
from chargeback_pipeline.core.finops.anomalies import day_costs, judge_day, robust_score
from chargeback_pipeline.core.finops.policy import FinOpsPolicy
from chargeback_pipeline.defs.anomalies import checks

POLICY = FinOpsPolicy()  # 28 days, at least 7, score 3.5, at least 25 of the currency more
FIRST = date(2026, 10, 1)
CHAT, SEARCH, TINY = ("chat", "gpt-4.1"), ("search", "gpt-4o"), ("tiny", "gpt-4o")


def quiet_history(days: int, seed: int = 7) -> dict[date, dict]:
    """Three products with +-5 % day-to-day noise: chat ~500, search ~200 a day, tiny ~3."""
    rng = random.Random(seed)
    history = {}
    for n in range(days):
        day = FIRST + timedelta(days=n)
        history[day] = {
            key: (Decimal(str(round(base * rng.gauss(1, 0.05), 2))), int(tokens * rng.gauss(1, 0.05)))
            for key, base, tokens in ((CHAT, 500, 2_000_000), (SEARCH, 200, 900_000), (TINY, 3, 10_000))
        }
    return history


def judge_all(history: dict, policy: FinOpsPolicy = POLICY) -> dict[date, list]:
    return {
        day: judge_day(day, today, {d: c for d, c in history.items() if d < day}, policy)
        for day, today in sorted(history.items())
    }


def anomalies(judged: dict[date, list]) -> list[tuple[date, str, str]]:
    return [(j.usage_date, j.product_id, j.model_name) for js in judged.values() for j in js if j.is_anomaly]


def test_robust_score_is_the_distance_to_the_median_in_mads():
    center, mad, score = robust_score(20, [10, 12, 11, 13, 9, 10, 12])

    assert (center, mad) == (11, 1)  # deviations 1, 1, 0, 2, 2, 1, 1
    assert score == pytest.approx(9 / 1.4826)
    assert robust_score(11.5, [10, 10, 10, 10])[2] == pytest.approx(1.5 / 0.5)  # MAD 0: 5 % of the median
    assert robust_score(1, [0, 0, 0])[2] == math.inf and robust_score(0, [0, 0, 0])[2] == 0


def test_a_quiet_two_months_raise_nothing():
    judged = judge_all(quiet_history(60))

    assert anomalies(judged) == []
    assert sum(1 for js in judged.values() for j in js if j.cost_score is not None) == (60 - 7) * 3


def test_an_injected_spike_is_found_with_the_numbers_that_explain_it():
    history = quiet_history(40)
    spike_day = FIRST + timedelta(days=35)
    cost, tokens = history[spike_day][SEARCH]
    history[spike_day][SEARCH] = (cost * 3, tokens * 3)

    judged = judge_all(history)
    (found,) = [j for j in judged[spike_day] if j.is_anomaly]

    assert anomalies(judged) == [(spike_day, "search", "gpt-4o")]
    assert found.history_days == 28
    assert found.cost_score > 10 and found.tokens_score > 10
    assert found.cost_change == pytest.approx(float(cost * 3) - found.baseline_cost)
    result = checks.no_cost_anomaly(dg.AssetKey("cost_anomalies"), judged[spike_day], "USD", POLICY)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["anomalies"].value == 1 and result.metadata["anomalous"].value == ["search/gpt-4o"]
    assert "search / gpt-4o cost" in result.description and "over 28 days" in result.description
    # Money in the table the UI shows: at the minor unit, thousands separators, the currency (not 202.655).
    header, _, row = result.metadata["explained"].value.splitlines()
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True))
    for name, value in [("cost", cost * 3), ("baseline_median_cost", found.baseline_cost),
                        ("cost_change", found.cost_change)]:  # fmt: skip
        assert cells[name] == f"{round(Decimal(str(value)), 2):,.2f} USD", name
    assert f"a median of {round(Decimal(str(found.baseline_cost)), 2):,.2f} USD" in result.description


def test_a_step_change_is_found_on_its_first_days_until_it_is_the_new_normal():
    history = quiet_history(70)
    step = FIRST + timedelta(days=35)
    for day in history:
        if day >= step:
            cost, tokens = history[day][CHAT]
            history[day][CHAT] = (cost * Decimal("1.6"), int(tokens * 1.6))

    found = anomalies(judge_all(history))

    assert found[0] == (step, "chat", "gpt-4.1")
    assert {product for _, product, _ in found} == {"chat"}
    # Flagged until the step fills half the 28-day baseline (then the median has moved to it), never after.
    assert [d for d, _, _ in found] == [step + timedelta(days=n) for n in range(len(found))]
    assert 10 <= len(found) <= 15


def test_tiny_products_and_decreases_never_page():
    history = quiet_history(40)
    day = FIRST + timedelta(days=35)
    history[day][TINY] = (Decimal(30), 100_000)  # 10x: +27 a day
    history[day][SEARCH] = (Decimal(20), 90_000)  # a 90 % drop

    judged = {j.product_id: j for j in judge_day(day, history[day], history, POLICY)}
    small = FinOpsPolicy(anomaly_min_cost_change=50)

    assert judged["tiny"].is_anomaly  # +27 reaches the default floor of 25
    assert not judged["search"].is_anomaly and judged["search"].cost_score < -3.5
    assert {j.product_id: j.is_anomaly for j in judge_day(day, history[day], history, small)}["tiny"] is False
    assert {j.product_id: j.reason for j in judge_day(day, history[day], history, small)}["tiny"] == (
        "below the cost floor"
    )


def test_fewer_published_days_than_the_minimum_history_judge_nothing():
    history = quiet_history(7)
    day = FIRST + timedelta(days=6)
    history[day][CHAT] = (Decimal(5000), 20_000_000)

    judged = judge_day(day, history[day], {d: c for d, c in history.items() if d < day}, POLICY)

    assert [j.is_anomaly for j in judged] == [False, False, False]
    assert {j.reason for j in judged} == {"insufficient history (6 days)"}
    result = checks.no_cost_anomaly(dg.AssetKey("cost_anomalies"), judged, "USD", POLICY)
    # Could not judge: not a pass, a warning that says why (and no alert on the command line).
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["judged"].value is False and result.metadata["anomalies"].value == 0
    assert result.description.startswith("Not judged: 6 published day(s)")
    assert "CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS=7" in result.description
    evaluation = dg.AssetCheckEvaluation(
        asset_key=result.asset_key, check_name=result.check_name, passed=result.passed,
        metadata=result.metadata, severity=result.severity, description=result.description,
    )  # fmt: skip
    assert check_summary.alerts([(evaluation, "2026-11-07")]) == []


def test_a_product_absent_on_a_published_day_counted_zero_and_day_costs_sum_lines():
    lines = [
        {"product_id": "chat", "model_name": "gpt-4.1", "total_cost": Decimal("1.5"), "prompt_tokens": 10,
         "completion_tokens": 5},
        {"product_id": "chat", "model_name": "gpt-4.1", "total_cost": Decimal("2"), "prompt_tokens": 1,
         "completion_tokens": 0},
    ]  # fmt: skip
    assert day_costs(lines) == {("chat", "gpt-4.1"): (Decimal("3.5"), 16)}
    history = {FIRST + timedelta(days=n): {} for n in range(10)}  # published, nobody used it
    day = FIRST + timedelta(days=10)

    (judged,) = judge_day(day, {CHAT: (Decimal(100), 1000)}, history, POLICY)

    assert judged.baseline_cost == 0 and judged.cost_score == math.inf and judged.is_anomaly

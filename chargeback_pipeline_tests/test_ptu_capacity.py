"""PTU utilisation and rightsizing: the what-if arithmetic on hand-made hourly demand (exact values), the
hourly measure and the month's tables from a hand-made pricing file, and the assets on the simulator, whose
minute-level saturation (load against its PTU count) they must reproduce before advising, read back from
the published files."""

import copy
import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.core.attribution import hour_params
from chargeback_pipeline.core.billing.pricing import PricingError, parse_pricing
from chargeback_pipeline.core.capacity.monthly import month_rightsizing
from chargeback_pipeline.core.capacity.rightsizing import (
    DemandHour,
    candidate_counts,
    nearest_rank_percentile,
    rightsize,
    what_if,
)
from chargeback_pipeline.core.capacity.utilisation import hour_utilisation, ptu_sizings
from chargeback_pipeline.core.reconciliation import HOURLY_MODEL
from chargeback_pipeline.core.topology import NO_TOPOLOGY
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.folder import FolderSource
from chargeback_pipeline.sources.simulated import SimulatedSource
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA, METRIC_PTU_UTILIZATION
from chargeback_pipeline_tests.conftest import REPO, local_resources, pipeline

H0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def demand(weighted: list[int], paygo_per_weighted: Fraction) -> list[DemandHour]:
    """Hours with 4 PTU deployed at 1 per PTU-hour, the whole demand priced pay-as-you-go at a flat rate."""
    return [
        DemandHour(H0 + i * HOUR, Fraction(w), ptu_count=4, cost_per_ptu=Fraction(1), paygo_cost=w * paygo_per_weighted)
        for i, w in enumerate(weighted)
    ]


def test_what_if_prices_ptu_hours_and_the_overflow_that_would_spill():
    # 1,000 weighted tokens per PTU-hour; demand 500, 1,500, 2,500, 0; pay-as-you-go 1 per 200 weighted tokens.
    hours = demand([500, 1500, 2500, 0], Fraction(1, 200))
    one = what_if(hours, 1, 1000)  # spills 500 of 1,500 (2.5 of 7.5) and 1,500 of 2,500 (7.5 of 12.5)
    assert (one.ptu_cost, one.paygo_cost, one.total_cost) == (4, 10, 14)
    assert (one.saturated_hours, one.overflow_weighted_tokens) == (2, 2000)
    two = what_if(hours, 2, 1000)  # spills 500 of 2,500: 2.5
    assert (two.ptu_cost, two.paygo_cost, two.total_cost, two.saturated_hours) == (
        8,
        Fraction(5, 2),
        Fraction(21, 2),
        1,
    )
    assert what_if(hours, 3, 1000).total_cost == 12 and what_if(hours, 3, 1000).saturated_hours == 0
    assert what_if(hours, None, 1000).total_cost == 16  # as deployed: 4 PTU every hour, nothing spills

    result = rightsize(hours, current_count=4, tokens_per_ptu_hour=1000, increment=1, minimum=1)
    assert [(s.ptu_count, s.total_cost) for s in result.scenarios] == [
        (1, 14), (2, Fraction(21, 2)), (3, 12), (4, 16), (5, 20)
    ]  # fmt: skip
    assert result.best.ptu_count == 2 and result.best.saturated_hours == 1
    assert result.saving == Fraction(11, 2)


def test_a_tie_keeps_the_current_count_and_otherwise_prefers_the_larger():
    # 2,000 weighted tokens in one hour; pay-as-you-go costs what a PTU-hour does per 1,000 tokens:
    # 1 PTU + 1,000 spilled = 2 = 2 PTU and nothing spilled; 3 PTU = 3.
    hours = demand([2000], Fraction(1, 1000))
    assert [s.total_cost for s in rightsize(hours, 3, 1000, increment=1, minimum=1).scenarios] == [2, 2, 3, 4]
    assert rightsize(hours, 3, 1000, increment=1, minimum=1).best.ptu_count == 2  # no saturated hour
    assert rightsize(hours, 1, 1000, increment=1, minimum=1).best.ptu_count == 1  # the current one


def test_candidates_step_from_the_minimum_by_the_increment_and_keep_the_current_count():
    # 100 PTU today, the peak needs 23 (of 180,000 weighted tokens each): 15, 20, ... 105, and 100 itself.
    assert candidate_counts(100, Fraction(23 * 180_000), 180_000, increment=5, minimum=15) == list(range(15, 106, 5))
    # a current count off the steps is priced too; the peak reaching above it extends the steps
    assert candidate_counts(17, Fraction(31 * 1000), 1000, increment=5, minimum=15) == [15, 17, 20, 25, 30, 35, 40]
    assert len(candidate_counts(1, Fraction(10**12), 1, increment=1, minimum=1)) == 200  # bounded


def test_nearest_rank_percentiles_are_hours_that_happened():
    values = [float(v) for v in range(1, 101)]
    assert [nearest_rank_percentile(values, p) for p in (50, 95, 99)] == [50.0, 95.0, 99.0]
    assert [nearest_rank_percentile([0.0, 33.333, 100.0], p) for p in (50, 95, 99)] == [33.333, 100.0, 100.0]
    assert nearest_rank_percentile([], 50) is None


PRICES = {
    "currency": "USD",
    "models": {
        "chat": {
            "output_token_weight": 4,
            "ptu_input_tokens_per_minute": 1000,  # 60,000 weighted tokens per PTU-hour
            "rates": [{"effective_from": "2026-01-01", "input_per_1k": "0.002", "output_per_1k": "0.008"}],
        }
    },
    "backends": {
        "ptu": {
            "kind": "ptu",
            "deployments": {
                "chat": {
                    "model": "chat",
                    "rates": [{"effective_from": "2026-01-01", "ptu_count": 3, "hourly_rate_per_ptu": "2.00"}],
                }
            },
        },
        "paygo": {"kind": "paygo", "deployments": {"chat": {"model": "chat"}}},
    },
}
EMPTY = {"requests": 0, "throttled_requests": 0, "prompt_tokens": 0, "completion_tokens": 0}


def traffic(backend: str, requests: int, throttled: int, prompt: int, completion: int, name: str = "chat") -> dict:
    return dict(
        backend_id=backend,
        deployment_name=name,
        requests=requests,
        throttled_requests=throttled,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def test_hours_are_measured_against_capacity_and_the_month_is_priced_exactly():
    pricing = parse_pricing(PRICES)
    sizing = ptu_sizings(pricing, H0, "prices.yaml")
    assert [(s.backend_id, s.deployment_name, s.capacity, s.spillover_backends) for s in sizing] == [
        ("ptu", "chat", 180_000, ("paygo",))
    ]
    hours = [
        hour_utilisation(H0, sizing, [traffic("ptu", 10, 0, 60_000, 0)], {}),
        # full: 120,000 + 4 x 15,000 = 180,000 served, 40,000 + 4 x 5,000 spilled, two 429s and three more
        # without an LLM record (no deployment named: the backend's only PTU deployment's); Azure says 100 %
        hour_utilisation(
            H0 + HOUR,
            sizing,
            [
                traffic("ptu", 30, 2, 120_000, 15_000),
                traffic("paygo", 5, 0, 40_000, 5_000),
                traffic("ptu", 3, 3, 0, 0, name="unknown"),
            ],
            {("ptu", "chat"): [100]},
        ),
        hour_utilisation(H0 + 2 * HOUR, sizing, [], {}),
    ]
    rows = [table.to_pylist()[0] for table in hours]
    assert [(r["served_weighted_tokens"], r["utilization_percent"], r["saturated"]) for r in rows] == [
        (60_000, 33.333, False),
        (180_000, 100.0, True),
        (0, 0.0, False),
    ]
    busy = rows[1]
    assert (busy["served_requests"], busy["throttled_requests"], busy["spillover_requests"]) == (28, 5, 5)
    assert (busy["spillover_weighted_tokens"], busy["demand_weighted_tokens"]) == (60_000, 240_000)
    assert busy["azure_utilization_percent"] == 100 and rows[0]["azure_utilization_percent"] is None

    def advise(min_hours_to_cut: int):
        return month_rightsizing(
            pa.concat_tables(hours),
            pricing,
            date(2026, 3, 1),
            increment=1,
            minimum=1,
            pricing_file="prices.yaml",
            min_hours_to_cut=min_hours_to_cut,
        )

    summary, scenarios = advise(min_hours_to_cut=3)
    # PTU: 3 hours x 2.00 per PTU. The busy hour's demand (160,000 prompt, 20,000 completion) costs 0.48
    # pay-as-you-go; at N PTU the part above N x 60,000 of its 240,000 weighted tokens spills.
    # 3 PTU (current): 18 + 0.48 x 60/240 = 18.12; 1 PTU: 6 + 0.48 x 180/240 = 6.36 (the quiet hour fits).
    assert [(r["ptu_count"], r["total_cost"], r["saturated_hours"]) for r in scenarios.to_pylist()] == [
        (1, Decimal("6.36"), 1),
        (2, Decimal("12.24"), 1),
        (3, Decimal("18.12"), 1),
        (4, Decimal("24.00"), 0),
        (5, Decimal("30.00"), 0),
    ]
    (row,) = summary.to_pylist()
    assert (row["current_ptu_count"], row["best_ptu_count"], row["saving"]) == (3, 1, Decimal("11.76"))
    # No minute data here: each hour is one block; nothing saturates a minute, so the cheapest count meets
    # the target, and the saving is the 3 hours' scaled to a 730-hour month (11.76 x 730 / 3 = 2,861.60).
    assert row["action"] == "cut" and row["calibrated"]
    assert row["recommendation"].startswith("cut 2 PTU (3 -> 1): saturated minutes 0 -> 0 (target <= 1% of minutes)")
    assert (
        "saves 2,861.60 USD a month at the run-rate of the measured 2026-03-02 10:00 to 2026-03-02 13:00"
        in (row["recommendation"])
    )
    assert row["recommendation"].endswith("3 hours; hourly rate: from now")
    assert [row[f"p{p}_utilization_percent"] for p in (50, 95, 99)] == [33.333, 100.0, 100.0]
    assert (row["saturated_hours"], row["spillover_requests"], row["throttled_requests"]) == (1, 5, 5)
    assert row["spillover_paygo_cost"] == Decimal("0.12")  # 40,000 x 0.002/1k + 5,000 x 0.008/1k

    # The same 3 hours where a cut needs a day: "keep", the cut named but not advised, nothing to save.
    (thin,) = advise(min_hours_to_cut=24)[0].to_pylist()
    assert (thin["action"], thin["best_ptu_count"], thin["saving"], thin["monthly_run_rate_saving"]) == (
        "keep", 3, Decimal(0), Decimal(0)
    )  # fmt: skip
    assert thin["recommendation"].startswith(
        "keep 3 PTU: saturated minutes 0 -> 0 (target <= 1% of minutes); too little evidence to cut: "
        "3 of the 24 hours a cut needs (these hours alone would suggest 1 PTU, saturated minutes 0; "
        "CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT); measured 2026-03-02 10:00 to 2026-03-02 13:00 UTC, 3 hours"
    )


def with_deployment_settings(backend: str, **settings) -> dict:
    prices = copy.deepcopy(PRICES)
    prices["backends"][backend]["deployments"]["chat"].update(settings)
    return prices


def test_a_deployments_own_ptu_steps_override_the_defaults():
    pricing = parse_pricing(with_deployment_settings("ptu", ptu_minimum=2, ptu_increment=2))
    sizing = ptu_sizings(pricing, H0, "prices.yaml")
    busy = [traffic("ptu", 30, 0, 120_000, 15_000), traffic("paygo", 5, 0, 40_000, 5_000)]
    hourly = pa.concat_tables([hour_utilisation(H0, sizing, busy, {}), hour_utilisation(H0 + HOUR, sizing, [], {})])
    summary, scenarios = month_rightsizing(hourly, pricing, date(2026, 3, 1), 1, 1, "prices.yaml", min_hours_to_cut=0)
    # 2, then steps of 2 up to one above the peak's 4 PTU; and the current 3
    assert [r["ptu_count"] for r in scenarios.to_pylist()] == [2, 3, 4, 6]
    assert summary["best_ptu_count"].to_pylist() == [2]


@pytest.mark.parametrize(
    ("backend", "settings", "message"),
    [
        ("ptu", {"ptu_increment": 0}, "pricing.backends.ptu.deployments.chat.ptu_increment: Input should be greater"),
        ("paygo", {"ptu_minimum": 15}, "pricing.backends.paygo.deployments.chat.ptu_minimum: only a PTU deployment"),
        (
            "ptu",
            {"deployment_type": "regional", "ptu_minimum": 50},
            "pricing.backends.ptu.deployments.chat.ptu_minimum / ptu_increment: a regional provisioned deployment",
        ),
    ],
)
def test_ptu_steps_in_the_pricing_file_are_validated_naming_the_setting(backend, settings, message):
    with pytest.raises(PricingError, match=message):
        parse_pricing(with_deployment_settings(backend, **settings))


def test_a_model_without_a_capacity_figure_names_the_setting_and_the_file():
    prices = {**PRICES, "models": {"chat": {**PRICES["models"]["chat"]}}}
    del prices["models"]["chat"]["ptu_input_tokens_per_minute"]  # "chat" has no default
    with pytest.raises(PricingError) as error:
        ptu_sizings(parse_pricing(prices), H0, "/etc/chargeback/prices.yaml")
    assert str(error.value).startswith(
        "/etc/chargeback/prices.yaml: pricing.models.chat.ptu_input_tokens_per_minute is needed to measure the "
        "utilisation of PTU deployment pricing.backends.ptu.deployments.chat"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CHARGEBACK_PTU_INCREMENT", "0", "CHARGEBACK_PTU_INCREMENT: Input should be greater than or equal to 1"),
        ("CHARGEBACK_PTU_MINIMUM", "fifteen", "CHARGEBACK_PTU_MINIMUM: Input should be a valid integer"),
        ("CHARGEBACK_RIGHTSIZING_WARN_SAVING", "-5", "CHARGEBACK_RIGHTSIZING_WARN_SAVING: Input should be greater"),
        (
            "CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT",
            "32",
            "CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT: Input should be less",
        ),
    ],
)
def test_rightsizing_settings_are_validated_at_load_naming_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert message in str(raised.value)


def test_rightsizing_settings_reach_the_resource(monkeypatch):
    monkeypatch.setenv("CHARGEBACK_PTU_INCREMENT", "50")
    monkeypatch.setenv("CHARGEBACK_PTU_MINIMUM", "50")
    monkeypatch.setenv("CHARGEBACK_RIGHTSIZING_WARN_SAVING", "250.50")
    monkeypatch.setenv("CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT", "14")
    pricing = build_resources(load_settings())["pricing"]
    assert (pricing.ptu_increment, pricing.ptu_minimum, pricing.rightsizing_warn_saving) == (50, 50, "250.50")
    assert pricing.rightsizing_min_days_to_cut == 14


DAY = date(2026, 11, 18)
REQUESTS_PER_HOUR = 300


def sized_pricing(tmp_path, counts: dict[str, int], tokens_per_minute: dict[str, int] | None = None) -> str:
    """The example pricing file with these PTU counts (hourly rate, steps of 1) and, optionally, wrong
    capacity figures; written beside the test's data."""
    import yaml

    prices = yaml.safe_load((REPO / "pricing.example.yaml").read_text(encoding="utf-8"))
    for name, count in counts.items():
        deployment = prices["backends"]["aoai-ptu-eastus"]["deployments"][name]
        deployment["rates"] = [{"effective_from": "2025-01-01", "ptu_count": count, "hourly_rate_per_ptu": "1.00"}]
        deployment.update(ptu_minimum=1, ptu_increment=1)
    for model, figure in (tokens_per_minute or {}).items():
        prices["models"][model]["ptu_input_tokens_per_minute"] = figure
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"pricing-{'-'.join(map(str, counts.values()))}.yaml"
    path.write_text(yaml.safe_dump(prices), encoding="utf-8")
    return str(path)


def run_day(tmp_path, instance, counts: dict[str, int], tokens_per_minute=None) -> tuple[SimulatedSource, dict]:
    """A simulated day whose PTU deployments have `counts` PTU, through the pipeline with a pricing file
    stating the same counts; returns the simulator and the published rightsizing rows by deployment."""
    entries = [f"{name}={count}" for name, count in counts.items()]
    source = SimulatedSourceResource(simulated_requests_per_hour=REQUESTS_PER_HOUR, simulated_ptu_counts=entries)
    resources = local_resources(tmp_path, source)
    # one day measured: enough for a cut here (the default asks a week)
    resources["pricing"] = PricingResource(
        path=sized_pricing(tmp_path, counts, tokens_per_minute), rightsizing_min_days_to_cut=1
    )
    backfill(DAY, DAY, pipeline(resources), instance)
    month = tmp_path / "reports" / f"monthly/month={DAY:%Y-%m}"
    rows = {r["deployment_name"]: r for r in pq.read_table(month / "ptu_rightsizing.parquet").to_pylist()}
    return source.build_source(), rows


def test_the_advice_reproduces_the_observed_saturation_and_says_add_cut_keep(tmp_path, instance):
    """gpt-4.1 on too few PTU gets "add", gpt-4o on too many "cut"; each advice first reproduces the
    saturated minutes Azure's per-minute metric showed (and the spill, and the 429s). Deployed at the
    advised count, the next run says "keep"."""
    simulator, rows = run_day(tmp_path / "first", instance, {"gpt-4.1": 4, "gpt-4o": 30})
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    window = TimeWindow(start, start + timedelta(days=1))
    saturated = simulator.expected_saturated_minutes(window)
    hourly = pq.read_table(tmp_path / "first" / "lake" / "ptu_utilization").to_pylist()
    for deployment, row in rows.items():
        key = ("aoai-ptu-eastus", deployment)
        measured = [r for r in hourly if r["deployment_name"] == deployment]
        assert len(measured) == 24 and all(r["azure_minutes_reported"] == 60 for r in measured)
        # the per-minute metric, read through the MetricsClient path's landing, is the simulator's own
        assert sum(r["azure_saturated_minutes"] for r in measured) == saturated[key] == row["saturated_minutes"]
        spilled, throttled = simulator.expected_ptu_turned_away(window)[key]
        assert sum(r["spillover_requests"] for r in measured) == spilled
        assert sum(r["throttled_requests"] for r in measured) == throttled
        assert row["calibrated"], row["calibration"]
        # reproduced within the stated tolerance: at most 10 minutes or a quarter apart
        assert abs(row["model_saturated_minutes"] - row["saturated_minutes"]) <= max(10, row["saturated_minutes"] / 4)
        assert row["measured_from"] == start and row["measured_until"] == start + timedelta(days=1)
        assert "24 hours" in row["recommendation"]
    add, cut = rows["gpt-4.1"], rows["gpt-4o"]
    assert add["action"] == "add" and add["best_ptu_count"] > 4 and add["saturated_minutes"] > 100
    assert add["best_saturated_minutes"] <= 14  # 1 % of 1,440 minutes
    assert add["recommendation"].startswith(f"add {add['best_ptu_count'] - 4} PTU (4 -> {add['best_ptu_count']})")
    assert add["monthly_run_rate_saving"] < 0  # adding costs more
    assert cut["action"] == "cut" and cut["best_ptu_count"] < 30 and cut["monthly_run_rate_saving"] > 0
    # the window's saving scaled to a 730-hour month (from the exact amounts: within two roundings to the cent)
    assert abs(cut["monthly_run_rate_saving"] - cut["saving"] * 730 / 24) <= Decimal("0.01") * 730 / 24

    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("ptu_rightsizing"), "ptu_count_is_cheapest")]
    )
    evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["deployments_to_resize"].value == 2  # add one, cut the other
    assert_one_month_text_and_one_money_format(tmp_path / "first", instance, rows, evaluation)

    advised = add["best_ptu_count"]
    _, again = run_day(tmp_path / "second", instance, {"gpt-4.1": advised, "gpt-4o": cut["best_ptu_count"]})
    for deployment in ("gpt-4.1", "gpt-4o"):
        assert again[deployment]["calibrated"] and again[deployment]["action"] == "keep", again[deployment]


def assert_one_month_text_and_one_money_format(folder, instance, rows: dict, evaluation) -> None:
    """The month is `2026-11` in every capacity file (CSV and Parquet) as in their folder, and the asset's and
    its check's money reads `1,234.56 USD`, recomputed here from the published rows."""
    month = folder / "reports" / f"monthly/month={DAY:%Y-%m}"
    for name in ("ptu_rightsizing", "ptu_what_if", "ptu_capacity"):
        with open(month / f"{name}.csv", newline="") as file:
            assert {row["month"] for row in csv.DictReader(file)} == {f"{DAY:%Y-%m}"}, name
        assert set(pq.read_table(month / f"{name}.parquet")["month"].to_pylist()) == {f"{DAY:%Y-%m}"}, name

    def usd(amount) -> str:
        return f"{amount:,.2f} USD"

    materialization = instance.get_latest_materialization_event(dg.AssetKey("ptu_rightsizing")).asset_materialization
    shown = {name: value.value for name, value in materialization.metadata.items()}
    assert shown["current_cost"] == usd(sum(r["current_cost"] for r in rows.values()))
    assert shown["best_cost"] == usd(sum(r["best_cost"] for r in rows.values()))
    assert shown["possible_saving"] == usd(sum(r["saving"] for r in rows.values()))
    assert shown["spillover_paygo_cost"] == usd(sum(r["spillover_paygo_cost"] for r in rows.values()))
    flagged_saving = sum(max(r["saving"], 0) for r in rows.values())
    assert evaluation.metadata["possible_saving"].value == usd(flagged_saving)
    assert evaluation.metadata["warn_saving"].value == usd(Decimal(PricingResource(path="").rightsizing_warn_saving))
    assert f"| {usd(rows['gpt-4o']['current_cost'])} |" in evaluation.metadata["to_resize"].value


def test_a_wrong_capacity_figure_cannot_calibrate_and_advises_nothing(tmp_path, instance):
    """The pricing file says one gpt-4.1 PTU holds twice what Azure's does: the what-if sees room where Azure
    saturated, so it says "cannot calibrate" instead of a count."""
    _, rows = run_day(tmp_path, instance, {"gpt-4.1": 4, "gpt-4o": 30}, tokens_per_minute={"gpt-4.1": 6000})
    wrong = rows["gpt-4.1"]
    assert wrong["action"] == "cannot calibrate" and not wrong["calibrated"]
    assert wrong["best_ptu_count"] is None and wrong["saving"] is None and wrong["monthly_run_rate_saving"] is None
    assert wrong["recommendation"].startswith("cannot calibrate: at 4 PTU")
    assert "ptu_input_tokens_per_minute" in wrong["recommendation"]
    assert wrong["model_saturated_minutes"] < wrong["saturated_minutes"] / 2
    assert rows["gpt-4o"]["calibrated"]  # its figure is right


def test_the_folder_source_reads_the_utilization_from_metric_lines(tmp_path):
    ptu = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-ptu"
    lines = [
        {"TimeStamp": "2026-03-02T10:00:00Z", "ResourceId": ptu, "ModelDeploymentName": "gpt-4.1",
         "MetricName": "ProcessedPromptTokens", "Total": 5000},
        {"TimeStamp": "2026-03-02T10:00:00Z", "ResourceId": ptu, "ModelDeploymentName": "gpt-4.1",
         "MetricName": "AzureOpenAIProvisionedManagedUtilizationV2", "Total": 100},
    ]  # fmt: skip
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "hour.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    fetched = FolderSource(tmp_path).deployment_metrics(TimeWindow(H0, H0 + HOUR))
    rows = {row["MetricName"]: row["Total"] for row in fetched.rows.to_pylist()}
    assert rows == {"ProcessedPromptTokens": 5000, "AzureOpenAIProvisionedManagedUtilizationV2": 100}


def test_utilization_rows_change_no_reconciliation_number():
    account = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/"
    tokens = [
        (H0, account + "aoai-ptu", "gpt-4.1", "ProcessedPromptTokens", 9000),
        (H0, account + "aoai-ptu", "gpt-4.1", "GeneratedTokens", 1000),
    ]
    utilization = [
        (H0, account + "aoai-ptu", "gpt-4.1", METRIC_PTU_UTILIZATION, 100),
        (H0, account + "aoai-ptu", "gpt-4o", METRIC_PTU_UTILIZATION, 0),  # an idle deployment: no token point
    ]
    logged = pa.Table.from_pylist(
        [
            {
                "backend_id": "aoai-ptu",
                "deployment_name": "gpt-4.1",
                "logged_prompt_tokens": 8000,
                "logged_completion_tokens": 900,
                "logged_requests": 12,
            }
        ]
    )

    def reconciled(rows: list[tuple]) -> list[dict]:
        names = DEPLOYMENT_METRICS_SCHEMA.names
        metrics = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], DEPLOYMENT_METRICS_SCHEMA)
        con = sql.connect()
        try:
            relations = {"hourly_logged_tokens": logged, "raw_deployment_metrics": metrics, **NO_TOPOLOGY.relations()}
            return sql.run_models(con, [HOURLY_MODEL], relations, hour_params(H0, [])).to_pylist()
        finally:
            con.close()

    assert reconciled(tokens + utilization) == reconciled(tokens)
    assert [(r["deployment_name"], r["metric_prompt_tokens"]) for r in reconciled(tokens + utilization)] == [
        ("gpt-4.1", 9000)
    ]

"""The money assets end to end: simulated days priced with the repository's pricing file, checked against
prices the test reads from that file itself (plain YAML, not the engine's model)."""

import calendar
import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from chargeback_pipeline import settings
from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.cli.commands import main
from chargeback_pipeline.core.billing.pricing import PricingError, load_pricing
from chargeback_pipeline.core.cost_inputs import UNATTRIBUTED_MODEL
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.audit import checks as audit_checks
from chargeback_pipeline.defs.billing import checks as cost_checks
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import sql
from chargeback_pipeline_tests.conftest import REPO, local_resources, pipeline
from chargeback_pipeline_tests.test_focus import MANDATORY_COLUMNS

# Days of a 31-day month: a monthly reservation spread over 720 hours (a 30-day month's) would show here.
DAYS = [date(2026, 10, 19), date(2026, 10, 20)]
MONTH = f"{DAYS[0]:%Y-%m}"
RATE = 200
# The simulated PTU deployments sized for this small volume (its busy minutes spill to the pay-as-you-go
# twins); the pricing file's counts are what is billed.
PTU_COUNTS = (("gpt-4.1", 10), ("gpt-4o", 12))
SMALL_PTU = [f"{name}={count}" for name, count in PTU_COUNTS]
PRICING_YAML = yaml.safe_load((REPO / "pricing.example.yaml").read_text())
MONEY_ASSETS = ("daily_chargeback:", "focus_export:", "monthly_statement:")


def daily(folder, day: date, name: str) -> str:
    return str(folder / "reports" / f"daily/usage_date={day}/{name}")


def in_force(rates: list[dict], day: date) -> dict:
    return [rate for rate in rates if rate["effective_from"] <= day][-1]


def cents(amount: Fraction) -> Decimal:
    return Decimal(round(amount * 100)) / 100  # half to even, like the engine


def ptu_cost_of_day(deployment: dict, day: date) -> Decimal:
    """The day's cost from the file: ptu_count x price, a month's hours rounded cumulatively to the cent."""
    rate = in_force(deployment["rates"], day)
    assert rate == in_force(deployment["rates"], day.replace(day=1)), "one rate all month, for this arithmetic"
    if "monthly_reservation_per_ptu" in rate:
        hours_in_month = calendar.monthrange(day.year, day.month)[1] * 24
        per_hour = rate["ptu_count"] * Fraction(str(rate["monthly_reservation_per_ptu"])) / hours_in_month
    else:
        per_hour = rate["ptu_count"] * Fraction(str(rate["hourly_rate_per_ptu"]))
    hours_before = (day.day - 1) * 24
    return cents(per_hour * (hours_before + 24)) - cents(per_hour * hours_before)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("costs")
    resources = local_resources(
        folder, SimulatedSourceResource(simulated_requests_per_hour=RATE, simulated_ptu_counts=SMALL_PTU)
    )
    with dg.instance_for_test() as instance:
        [chunk] = backfill(DAYS[0], DAYS[-1], pipeline(resources), instance, days_per_run=2)
    return folder, chunk


def test_backfill_publishes_chargeback_focus_and_statement(backfilled):
    folder, chunk = backfilled
    for day in DAYS:
        for name in ("chargeback", "focus"):
            table = pq.read_table(daily(folder, day, f"{name}.parquet"))
            assert table.num_rows > 10
            assert pa_csv.read_csv(daily(folder, day, f"{name}.csv")).column_names == table.column_names
    statement = folder / "reports" / f"monthly/month={MONTH}/statement"
    assert pq.read_table(f"{statement}.parquet").num_rows == pa_csv.read_csv(f"{statement}.csv").num_rows > 3
    money_checks = {n: e.passed for n, e in chunk.check_evaluations().items() if n.startswith(MONEY_ASSETS)}
    assert money_checks == {
        "daily_chargeback:costs_add_up": True,
        "daily_chargeback:paygo_matches_metered_tokens": True,
        "daily_chargeback:no_negative_lines": True,
        "focus_export:focus_matches_chargeback": True,
        "monthly_statement:statement_matches_daily_chargeback": True,
    }


def test_the_audit_judges_every_day_with_its_own_evidence_and_passes(backfilled):
    """The independent checks (chargeback_audit) ran on both days, judging real amounts, and passed."""
    _, chunk = backfilled
    audit = [e for e in chunk.daily.get_asset_check_evaluations() if e.asset_key.to_user_string() == "chargeback_audit"]
    assert sorted({(e.check_name, e.partition) for e in audit}) == sorted(
        (name, str(day)) for name in audit_checks.DESCRIPTIONS for day in DAYS
    )
    assert [(e.check_name, e.partition, e.description) for e in audit if not e.passed] == []
    by_name = {(e.check_name, e.partition): e.metadata for e in audit}
    for day in DAYS:
        assert by_name[(audit_checks.BILLED_WITHIN_SUCCESSFUL, str(day))]["periods_compared"].value > 24
        assert by_name[(audit_checks.PTU_COST_MATCHES_RATE, str(day))]["ptu_deployment_days_checked"].value == 2
        assert by_name[(audit_checks.NOT_BILLABLE_MATCHES_RAW, str(day))]["raw_logs_tokens"].value > 0


def test_ptu_cost_per_deployment_is_the_pricing_files_cost_of_24_hours(backfilled):
    folder, _ = backfilled
    ptu_backends = {bid: b for bid, b in PRICING_YAML["backends"].items() if b["kind"] == "ptu"}
    for day in DAYS:
        lines = pq.read_table(daily(folder, day, "chargeback.parquet")).to_pylist()
        for backend_id, backend in ptu_backends.items():
            for name, deployment in backend["deployments"].items():
                charged = sum(
                    r["ptu_cost"] for r in lines if (r["backend_id"], r["deployment_name"]) == (backend_id, name)
                )
                assert charged == ptu_cost_of_day(deployment, day), (day, name)
                assert charged > 300  # 545.16 (gpt-4.1, 65 PTU) and 503.23 (gpt-4o, 60 PTU) a day in October
    assert {r["paygo_cost"] for r in lines if r["backend_id"] in ptu_backends} == {Decimal(0)}


def test_paygo_lines_are_tokens_times_the_files_prices(backfilled):
    folder, _ = backfilled
    paygo = {bid for bid, b in PRICING_YAML["backends"].items() if b["kind"] == "paygo"}
    for day in DAYS:
        lines = [
            r for r in pq.read_table(daily(folder, day, "chargeback.parquet")).to_pylist() if r["backend_id"] in paygo
        ]
        assert len({r["deployment_name"] for r in lines}) == 3 and {r["cost_type"] for r in lines} == {"paygo"}
        exact_by_deployment = {}
        for line in lines:
            model = PRICING_YAML["backends"][line["backend_id"]]["deployments"][line["deployment_name"]]["model"]
            prices = in_force(PRICING_YAML["models"][model]["rates"], day)
            exact = (
                line["prompt_tokens"] * Fraction(str(prices["input_per_1k"]))
                + line["completion_tokens"] * Fraction(str(prices["output_per_1k"]))
            ) / 1000
            assert abs(Fraction(line["paygo_cost"]) - exact) < Fraction(1, 100)  # within a cent: a fair split
            exact_by_deployment[line["deployment_name"]] = exact_by_deployment.get(line["deployment_name"], 0) + exact
        for name, exact in exact_by_deployment.items():
            charged = sum(r["paygo_cost"] for r in lines if r["deployment_name"] == name)
            assert charged == cents(exact), name  # the deployment-day, rounded once, to the cent
            assert charged == sum(r["total_cost"] for r in lines if r["deployment_name"] == name)


def azure_invoice(day: date) -> dict[str, Decimal]:
    """What Azure invoices for `day` per resource, from the simulator's own metrics and the pricing file
    alone: every PTU deployment's deployed hours at its rates, every pay-as-you-go deployment's metered
    tokens at its model's prices, rounded to the cent once per resource-deployment-day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    metrics = SimulatedSource(SimulationProfile(requests_per_hour=RATE, ptu_counts=PTU_COUNTS)).deployment_metrics(
        TimeWindow(start, start + timedelta(days=1))
    )
    metered: dict[tuple[str, str], dict[str, int]] = {}
    for row in metrics.rows.to_pylist():
        key = (row["ResourceId"].rsplit("/", 1)[-1], row["ModelDeploymentName"])  # backend = account name
        metered.setdefault(key, {}).setdefault(row["MetricName"], 0)
        metered[key][row["MetricName"]] += row["Total"]
    invoice: dict[str, Decimal] = {}
    for backend_id, backend in PRICING_YAML["backends"].items():
        for name, deployment in backend["deployments"].items():
            if backend["kind"] == "ptu":
                cost = ptu_cost_of_day(deployment, day)
            else:
                prices = in_force(PRICING_YAML["models"][deployment["model"]]["rates"], day)
                tokens = metered.get((backend_id, name), {})
                cost = cents(
                    (
                        tokens.get("ProcessedPromptTokens", 0) * Fraction(str(prices["input_per_1k"]))
                        + tokens.get("GeneratedTokens", 0) * Fraction(str(prices["output_per_1k"]))
                    )
                    / 1000
                )
            invoice[backend_id] = invoice.get(backend_id, Decimal(0)) + cost
    return invoice


def test_each_day_adds_up_to_what_azure_invoices_per_resource(backfilled):
    """The spillover topology (the same deployment names on the PTU resource and the pay-as-you-go one):
    per resource and day, the chargeback's lines sum to the invoice, to the cent."""
    folder, _ = backfilled
    for day in DAYS:
        lines = pq.read_table(daily(folder, day, "chargeback.parquet")).to_pylist()
        charged: dict[str, Decimal] = {}
        for line in lines:
            charged[line["backend_id"]] = charged.get(line["backend_id"], Decimal(0)) + line["total_cost"]
        assert charged == azure_invoice(day), day
        spilled = {r["deployment_name"] for r in lines if r["backend_id"] == "aoai-paygo-eastus"}
        assert {"gpt-4.1", "gpt-4o"} <= spilled  # the PTU's names, spilled at the peak


def test_statement_total_is_the_sum_of_its_days(backfilled):
    folder, _ = backfilled
    statement = pq.read_table(folder / "reports" / f"monthly/month={MONTH}/statement.parquet").to_pylist()
    days = [r for day in DAYS for r in pq.read_table(daily(folder, day, "chargeback.parquet")).to_pylist()]
    assert sum(r["total_cost"] for r in statement) == sum(r["total_cost"] for r in days) > 1500
    for product in {r["product_id"] for r in days}:
        [row] = [r for r in statement if r["product_id"] == product]
        assert row["total_cost"] == sum(r["total_cost"] for r in days if r["product_id"] == product)
        assert row["total_tokens"] == sum(r["total_tokens"] for r in days if r["product_id"] == product)
    assert {(r["days_covered"], r["days_in_month"]) for r in statement} == {(2, 31)}


def test_statement_lists_the_days_it_lacks(backfilled):
    _, chunk = backfilled
    [materialization] = chunk.monthly.asset_materializations_for_node("monthly_statement")
    missing = materialization.metadata["days_missing"].value
    assert len(missing) == 29 and "2026-10-18" in missing and "2026-10-19" not in missing


def test_focus_export_has_every_mandatory_column_and_bills_the_chargeback(backfilled):
    folder, _ = backfilled
    for day in DAYS:
        focus = pq.read_table(daily(folder, day, "focus.parquet"))
        assert set(MANDATORY_COLUMNS) <= set(focus.column_names)
        assert set(MANDATORY_COLUMNS) <= set(pa_csv.read_csv(daily(folder, day, "focus.csv")).column_names)
        chargeback = pq.read_table(daily(folder, day, "chargeback.parquet"))
        assert sum(focus["BilledCost"].to_pylist()) == sum(chargeback["total_cost"].to_pylist())


def test_blocked_day_publishes_no_chargeback_until_overridden(tmp_path, instance):
    day = DAYS[-1]
    source = SimulatedSourceResource(simulated_requests_per_hour=RATE, simulated_faults={"bypass_fraction": 0.25})

    held = r"not published, none of their outputs replaced \(usage report, chargeback, .*reconciliation blocked"
    with pytest.raises(BackfillFailed, match=held):
        backfill(day, day, pipeline(local_resources(tmp_path, source)), instance)

    for name in ("chargeback.csv", "chargeback.parquet", "focus.csv", "focus.parquet"):
        assert not (tmp_path / "reports" / f"daily/usage_date={day}" / name).exists()
    assert not (tmp_path / "reports" / "monthly").exists()

    backfill(day, day, pipeline(local_resources(tmp_path, source)), instance, publish_override_reason="INC-7")

    lines = pq.read_table(daily(tmp_path, day, "chargeback.parquet")).to_pylist()
    unattributed = sum(r["total_cost"] for r in lines if r["product_id"] == "unattributed")
    assert unattributed > Decimal("0.2") * sum(r["total_cost"] for r in lines)  # a quarter of tokens bypassed APIM


@pytest.fixture
def environment(tmp_path, monkeypatch):
    """CHARGEBACK_* variables pointing into tmp_path; the settings cache is cleared on both sides."""
    for name, value in {
        "CHARGEBACK_LAKE_DIR": tmp_path / "lake",
        "CHARGEBACK_OUTPUT_DIR": tmp_path / "reports",
        "DAGSTER_HOME": tmp_path / "dagster_home",
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": 50,
        # At 50 requests an hour a few hours judge small numbers by chance: these tests are about the command.
        "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": 100,
        "CHARGEBACK_RECONCILIATION_MIN_TOKENS": 1_000_000_000,
    }.items():
        monkeypatch.setenv(name, str(value))
    settings.current_settings.cache_clear()
    yield monkeypatch
    settings.current_settings.cache_clear()


def test_cli_backfill_prints_where_the_files_are(tmp_path, environment):
    day = DAYS[0]
    result = CliRunner().invoke(main, ["backfill", str(day)])

    assert result.exit_code == 0, result.output
    reports = tmp_path / "reports"
    for path in (
        reports / f"daily/usage_date={day}/chargeback.csv",
        reports / f"daily/usage_date={day}/focus.csv",
        reports / f"monthly/month={MONTH}/statement.csv",
    ):
        assert str(path) in result.output and path.exists()
        assert path.with_suffix(".parquet").exists()


def test_bad_pricing_file_fails_at_load_naming_the_variable_and_setting(tmp_path, environment):
    bad = tmp_path / "pricing.yaml"
    bad.write_text((REPO / "pricing.example.yaml").read_text().replace("ptu_count: 65", "ptu_count: -1"))
    environment.setenv("CHARGEBACK_PRICING_FILE", str(bad))

    result = CliRunner().invoke(main, ["backfill", str(DAYS[0])])

    assert result.exit_code != 0
    assert f"CHARGEBACK_PRICING_FILE={bad}" in result.output
    assert "pricing.backends.aoai-ptu-eastus.deployments.gpt-4.1.rates[0].ptu_count" in result.output


def test_every_deployment_is_known_unless_an_allow_list_is_set(environment):
    """Usage needs no pricing: every deployment the source shows is attributed; CHARGEBACK_DEPLOYMENTS is
    an optional allow-list."""
    assert build_resources(settings.load_settings())["policy"].known_deployments == []
    environment.setenv("CHARGEBACK_DEPLOYMENTS", "gpt-4.1, gpt-4o")
    assert build_resources(settings.load_settings())["policy"].known_deployments == ["gpt-4.1", "gpt-4o"]


def test_no_pricing_file_is_a_choice_and_the_cost_assets_say_what_to_set(environment):
    environment.setenv("CHARGEBACK_PRICING_FILE", "")
    loaded = settings.load_settings()
    assert loaded.pricing_file is None and loaded.pricing is None
    with pytest.raises(PricingError, match=r"no pricing file is configured.*CHARGEBACK_PRICING_FILE"):
        build_resources(loaded)["pricing"].pricing()


def test_relative_pricing_file_is_read_from_the_current_directory(tmp_path, environment):
    (tmp_path / "prices.yaml").write_text((REPO / "pricing.example.yaml").read_text())
    environment.chdir(tmp_path)
    environment.setenv("CHARGEBACK_PRICING_FILE", "prices.yaml")
    assert settings.load_settings().pricing_file == tmp_path / "prices.yaml"
    assert build_resources(settings.load_settings())["pricing"].pricing().currency == "USD"


def test_costs_add_up_fails_naming_the_deployment_day_that_is_off():
    pricing = load_pricing(REPO / "pricing.example.yaml")
    day = date(2026, 11, 19)  # a 30-day month: 65 x $260 / 720 x 24 = $563.33, 60 x $260 / 720 x 24 = $520.00
    lines = [
        {"backend_id": "aoai-ptu-eastus", "deployment_name": "gpt-4.1", "total_cost": Decimal("563.33")},
        {"backend_id": "aoai-ptu-eastus", "deployment_name": "gpt-4o", "total_cost": Decimal("519.99")},
    ]

    comparison = cost_checks.ptu_cost_comparison(pricing, day, pa.Table.from_pylist(lines))
    result = cost_checks.costs_add_up(dg.AssetKey("daily_chargeback"), comparison)

    assert not result.passed
    assert result.metadata["ptu_deployment_days_off"].value == 1
    assert [(r["deployment_name"], r["difference"]) for r in comparison] == [
        ("gpt-4.1", Decimal(0)),
        ("gpt-4o", Decimal("-0.01")),
    ]


def test_no_negative_lines_counts_them():
    columns = dict.fromkeys(cost_checks.NUMERIC_COLUMNS, 0)
    lines = pa.Table.from_pylist([columns, {**columns, "paygo_cost": Decimal("-0.01")}, {**columns, "calls": -1}])

    result = cost_checks.no_negative_lines(dg.AssetKey("daily_chargeback"), lines)

    assert not result.passed and result.metadata["negative_lines"].value == 2


def test_unattributed_tokens_are_clipped_at_zero_and_the_clipped_amount_kept():
    hour = datetime(2026, 11, 20, 5, tzinfo=UTC)

    def hour_of(deployment: str, has_metrics: bool, metric: tuple[int, int], logged: tuple[int, int]) -> dict:
        return {
            "usage_hour": hour,
            "backend_id": "aoai-ptu-eastus",
            "deployment_name": deployment,
            "has_metrics": has_metrics,
            **dict(zip(("metric_prompt_tokens", "metric_completion_tokens"), metric, strict=True)),
            **dict(zip(("logged_prompt_tokens", "logged_completion_tokens"), logged, strict=True)),
        }

    reconciliation = pa.Table.from_pylist(
        [hour_of("gpt-4.1", True, (900, 70), (800, 100)), hour_of("gpt-4o", False, (0, 0), (50, 5))]
    )
    con = sql.connect()
    try:
        rows = sql.run_models(con, [UNATTRIBUTED_MODEL], {"deployment_reconciliation": reconciliation}).to_pylist()
    finally:
        con.close()

    assert rows == [
        {
            "usage_hour": hour,
            "deployment_name": "gpt-4.1",
            "backend_id": "aoai-ptu-eastus",
            "prompt_tokens": 100,
            "completion_tokens": 0,  # 30 more logged than metered: not a negative charge ...
            "clipped_prompt_tokens": 0,
            "clipped_completion_tokens": 30,  # ... but kept, for the asset's metadata
        }
    ]  # an hour without metrics has no gap to charge


def test_money_in_the_csvs_is_at_the_minor_unit_and_the_parquet_keeps_exact_decimals(backfilled):
    """Read back as a spreadsheet or BI tool reads a CSV: 866.67, not 866.670000; the same amounts."""
    folder, _ = backfilled
    files = [daily(folder, DAYS[0], "chargeback"), daily(folder, DAYS[0], "focus")]
    files.append(str(folder / "reports" / f"monthly/month={MONTH}/statement"))
    for stem in files:
        exact = pq.read_table(f"{stem}.parquet")
        money = [f.name for f in exact.schema if f.type == pa.decimal128(18, 6)]
        assert money, stem
        with open(f"{stem}.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for column in money:
            cells = [row[column] for row in rows]
            assert all(cell == "" or len(cell.partition(".")[2]) <= 2 for cell in cells), (stem, column)
            assert [Decimal(c) if c else None for c in cells] == exact[column].to_pylist(), (stem, column)

"""Every asset check passes on clean simulated data and fails, with the right numbers, on injected faults."""

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.core.quality import QualityPolicy
from chargeback_pipeline.core.reconciliation import BLOCK, OK, TOO_SMALL, WARN, judge
from chargeback_pipeline.defs.attribution import checks
from chargeback_pipeline.defs.attribution.attributed_requests import ATTRIBUTED_KEY
from chargeback_pipeline.defs.billing import checks as billing_checks
from chargeback_pipeline.defs.resources import DataQualityPolicy
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.publication_manifest import MANIFEST_NAME, Manifest
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY, gateway, llm, write_export

SIM_DAY = date(2026, 11, 20)
RATE = 400
RIGHTSIZING_CHECK = "ptu_rightsizing:ptu_count_is_cheapest"
ALL_CHECKS = {
    "attributed_requests:one_row_per_correlation_id",
    "attributed_requests:tokens_only_from_sequence_zero",
    "attributed_requests:gateway_log_complete",
    "attributed_requests:quarantine_rate_within_limit",
    "daily_product_usage:daily_totals_equal_hourly_sum",
    "deployment_reconciliation:tokens_reconcile_with_azure_monitor",
    "daily_reconciliation:tokens_reconcile_with_azure_monitor",
    "product_usage_report:report_files_match_rollup",
    "daily_chargeback:costs_add_up",
    "daily_chargeback:paygo_matches_metered_tokens",
    "daily_chargeback:no_negative_lines",
    "focus_export:focus_matches_chargeback",
    "monthly_statement:statement_matches_daily_chargeback",
    # No budgets file by default: nothing to exceed, no budget naming an unknown product.
    "budget_status:within_budget",
    "budget_status:budgets_name_known_products",
    # A single day has no history to judge: not judged (a WARN saying so), never an anomaly.
    "cost_anomalies:no_cost_anomaly",
    # The audit's independent evidence (raw logs, the pricing file priced again) agrees on clean data.
    "chargeback_audit:billed_within_successful_logged_tokens",
    "chargeback_audit:logged_not_billable_matches_raw_logs",
    "chargeback_audit:unattributed_share_within_limits",
    "chargeback_audit:ptu_cost_is_deployed_hours_at_rate",
    "chargeback_audit:costs_within_price_list",
    # No Cost Management export configured: every day is an estimate, and both checks pass saying so.
    "billed_chargeback:actual_matches_export",
    "billed_chargeback:estimate_variance_within_share",
}
NOT_JUDGED = "cost_anomalies:no_cost_anomaly"


def simulated(tmp_path, **faults):
    missing = faults.pop("missing_gateway_hours", [])
    source = SimulatedSourceResource(
        simulated_requests_per_hour=RATE,
        simulated_faults=faults,
        simulated_missing_gateway_hours=[h.isoformat() for h in missing],
    )
    return local_resources(tmp_path, source)


def profile(**faults) -> SimulatedSource:
    return SimulatedSource(SimulationProfile(requests_per_hour=RATE, **faults))


def test_all_checks_pass_on_clean_simulated_data(tmp_path, instance):
    [chunk] = backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path)), instance)

    evaluations = chunk.check_evaluations()
    assert set(evaluations) == ALL_CHECKS | {RIGHTSIZING_CHECK}
    assert {name: e.passed for name, e in evaluations.items()} == dict.fromkeys(ALL_CHECKS, True) | {
        # the example pricing file's PTU counts are far above this load, yet one day is too little evidence
        # to cut them (CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT, a week): the advice keeps them, named
        RIGHTSIZING_CHECK: True,
        NOT_JUDGED: False,
    }
    assert evaluations[NOT_JUDGED].metadata["judged"].value is False
    assert evaluations[RIGHTSIZING_CHECK].severity == dg.AssetCheckSeverity.WARN
    daily = evaluations["daily_reconciliation:tokens_reconcile_with_azure_monitor"].metadata
    truth = profile().expected_unattributed_tokens(TimeWindow(*_day_bounds(SIM_DAY)))
    assert daily["unattributed_tokens"].value == sum(truth["prompt_tokens"].to_pylist()) + sum(
        truth["completion_tokens"].to_pylist()
    )


def _day_bounds(day: date):
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def test_bypass_above_threshold_blocks_the_report_and_keeps_the_old_one(tmp_path, instance):
    backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path)), instance)
    report = tmp_path / "reports" / f"daily/usage_date={SIM_DAY}/product_usage.csv"
    before = report.read_bytes()

    with pytest.raises(BackfillFailed, match=r"reconciliation blocked .*gpt-4\.1 .*2026-11-20") as failure:
        backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path, bypass_fraction=0.25)), instance)

    assert report.read_bytes() == before
    [evaluation] = [
        e
        for e in failure.value.result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("daily_reconciliation")
    ]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["gates_publication"].value is True
    # Where publication is gated, in its metadata (the UI calls the check non-blocking).
    assert evaluation.metadata["publication_gate"].value.startswith("Gates publication, not as a Dagster blocking")
    blocked = evaluation.metadata["blocked"].value
    assert any("gpt-4.1 (aoai-ptu-eastus) 2026-11-20" in line and "%)" in line for line in blocked)
    truth = profile(bypass_fraction=0.25).expected_unattributed_tokens(TimeWindow(*_day_bounds(SIM_DAY)))
    expected_gap = sum(truth["prompt_tokens"].to_pylist()) + sum(truth["completion_tokens"].to_pylist())
    assert evaluation.metadata["unattributed_tokens"].value == expected_gap


def test_override_publishes_a_blocked_day_and_records_it(tmp_path, instance):
    backfill(
        SIM_DAY,
        SIM_DAY,
        pipeline(simulated(tmp_path, bypass_fraction=0.25)),
        instance,
        publish_override_reason="INC-42",
    )

    folder = tmp_path / "reports" / f"daily/usage_date={SIM_DAY}"
    record = json.loads((folder / "reconciliation_override.json").read_text())
    assert record["reason"] == "INC-42" and record["blocked"]
    assert "unattributed" in (folder / "product_usage.csv").read_text()
    assert _vouched(folder) >= {f"daily/usage_date={SIM_DAY}/reconciliation_override.json"}

    # The traffic is found again (no bypass): the day reconciles, the override record is withdrawn, and the
    # day's manifest no longer vouches for it (it did, and every later run warned of a "damaged" file).
    backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path)), instance)
    assert not (folder / "reconciliation_override.json").exists()
    assert f"daily/usage_date={SIM_DAY}/reconciliation_override.json" not in _vouched(folder)
    assert all((tmp_path / "reports" / key).exists() for key in _vouched(folder))


def _vouched(folder) -> set[str]:
    """Every file a day's publication manifest vouches for."""
    return set(Manifest.from_bytes((folder / MANIFEST_NAME).read_bytes(), str(folder)).files())


def test_warning_level_warns_without_blocking(tmp_path, instance):
    [chunk] = backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path, bypass_fraction=0.05)), instance)

    evaluation = chunk.check_evaluations()["daily_reconciliation:tokens_reconcile_with_azure_monitor"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["warnings"].value and "blocked" not in evaluation.metadata  # empty: left out
    assert (tmp_path / "reports" / f"daily/usage_date={SIM_DAY}/product_usage.csv").exists()


def test_missing_gateway_hour_fails_completeness_naming_the_hour(tmp_path, instance):
    lost = datetime(2026, 11, 20, 14, tzinfo=UTC)
    [chunk] = backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path, missing_gateway_hours=[lost])), instance)

    evaluation = chunk.check_evaluations()["attributed_requests:gateway_log_complete"]
    assert not evaluation.passed
    assert evaluation.metadata["incomplete_hours"].value == ["2026-11-20 14:00"]
    assert evaluation.metadata["max_percent_without_gateway_row"].value == 100.0


def test_duplicates_are_removed_and_counted_exactly(tmp_path, instance):
    [chunk] = backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path, duplicate_fraction=0.3)), instance)

    evaluations = chunk.check_evaluations()
    unique = evaluations["attributed_requests:one_row_per_correlation_id"]
    assert unique.passed and unique.metadata["extra_rows"].value == 0
    # each hour's event carries that hour's own count
    materializations = [
        m for m in chunk.hourly.asset_materializations_for_node("attributed_requests") if m.asset_key == ATTRIBUTED_KEY
    ]
    source = profile(duplicate_fraction=0.3)
    expected = sum(source.expected_hourly_requests(h)["duplicate_gateway_rows"] for h in _hours(SIM_DAY))
    assert sum(m.metadata["duplicate_gateway_rows_removed"].value for m in materializations) == expected > 0


def _hours(day: date):
    start, _ = _day_bounds(day)
    return [start + timedelta(hours=n) for n in range(24)]


def test_uniqueness_check_fails_on_duplicate_rows():
    result = checks.uniqueness(dg.AssetKey("attributed_requests"), rows=10, distinct_ids=8)
    assert not result.passed and result.metadata["extra_rows"].value == 2


def test_the_statement_check_fails_when_a_products_callers_do_not_add_up_to_it():
    key, name = dg.AssetKey("monthly_statement"), billing_checks.STATEMENT_MATCHES_DAYS
    lines = {("2026-11-01", "alpha"): Decimal("224.00"), ("2026-11-01", "beta"): Decimal("3.16")}
    held_day_counted = {**lines, ("2026-11-01", "alpha"): Decimal("155.85")}

    without_callers = billing_checks.totals_match(key, name, dict(lines), lines, "USD")
    callers_add_up = billing_checks.totals_match(key, name, dict(lines), lines, "USD", by_caller=dict(lines))
    callers_differ = billing_checks.totals_match(key, name, dict(lines), lines, "USD", by_caller=held_day_counted)

    assert without_callers.passed and "by_caller_total_cost" not in without_callers.metadata
    assert callers_add_up.passed and callers_add_up.metadata["by_caller_mismatches"].value == []
    assert not callers_differ.passed
    assert callers_differ.metadata["mismatches"].value == []  # the statement itself is right
    assert callers_differ.metadata["by_caller_mismatches"].value == [
        "('2026-11-01', 'alpha'): by caller 155.85, daily lines 224.00"
    ]


def test_tokens_on_later_chunks_are_flagged_not_counted(tmp_path, instance):
    [chunk] = backfill(SIM_DAY, SIM_DAY, pipeline(simulated(tmp_path, nonzero_chunk_token_fraction=0.5)), instance)

    evaluation = chunk.check_evaluations()["attributed_requests:tokens_only_from_sequence_zero"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    source = profile(nonzero_chunk_token_fraction=0.5)
    flagged = sum(source.expected_hourly_requests(h)["nonzero_token_chunk_records"] for h in _hours(SIM_DAY))
    assert evaluation.metadata["later_chunks_with_tokens"].value > 0
    assert evaluation.metadata["later_chunks_with_tokens"].value <= flagged  # requests whose gateway row is in the day
    truth = source.expected_daily_usage(SIM_DAY)
    report = pa.parquet.read_table(tmp_path / "reports" / f"daily/usage_date={SIM_DAY}/product_usage.parquet")
    billed = report.filter(
        pa.compute.invert(pa.compute.is_in(report["product_id"], pa.array(["unattributed", "logged-not-billable"])))
    )
    assert sum(billed["total_tokens"].to_pylist()) == sum(truth["total_tokens"].to_pylist())


def test_corrupt_rows_are_quarantined_with_reasons_and_fail_the_rate(tmp_path, instance):
    export = write_export(
        tmp_path / "export",
        gateway_rows=[gateway(f"ok-{n}", f"09:{n:02d}:00", "alpha") for n in range(20)]
        + [gateway("", "09:30:00", "alpha"), gateway("bad id with spaces", "09:31:00", "alpha")],
        llm_rows=[llm(f"ok-{n}", f"09:{n:02d}:01", 10, 1) for n in range(20)]
        + [llm("ok-neg", "09:40:00", -5, 1), llm("ok-x", "09:41:00", 1, 1, deployment="shadow-deployment")],
    )
    (export / "ApiManagementGatewayLlmLog" / "typed.jsonl").write_text(
        json.dumps({**llm("ok-t", "09:42:00", 1, 1), "PromptTokens": "12.5"}) + "\n"
    )
    resources = local_resources(
        tmp_path,
        FolderSourceResource(source_folder=str(export)),
        DataQualityPolicy(known_deployments=["gpt-4.1", "gpt-4o"], quarantine_max_percent=1.0),
    )

    [chunk] = backfill(date.fromisoformat(DAY), date.fromisoformat(DAY), pipeline(resources), instance)

    evaluation = chunk.check_evaluations()["attributed_requests:quarantine_rate_within_limit"]
    assert not evaluation.passed
    assert evaluation.metadata["quarantined_rows"].value == 5
    assert evaluation.metadata["by_reason"].value == {
        "ApiManagementGatewayLlmLog: PromptTokens is not a valid int64": 1,
        "ApiManagementGatewayLlmLog: deployment is not configured": 1,
        "ApiManagementGatewayLlmLog: token count is negative": 1,
        "ApiManagementGatewayLogs: CorrelationId is malformed": 1,
        "ApiManagementGatewayLogs: CorrelationId is missing": 1,
    }
    quarantine = pa.parquet.read_table(tmp_path / "lake" / f"quarantined_records/hour={DAY}T09/rows.parquet")
    assert quarantine.num_rows == 5 and all(quarantine["record"].to_pylist())
    # The hour's quarantined_records materialization counts them by reason, recomputed from the file.
    [hour] = [
        m for m in chunk.hourly.asset_materializations_for_node("attributed_requests")
        if m.asset_key == dg.AssetKey("quarantined_records") and m.partition == f"{DAY}-09:00"
    ]  # fmt: skip
    table = hour.metadata["counts_by_reason"].value
    pairs = zip(quarantine["source_table"].to_pylist(), quarantine["reason"].to_pylist(), strict=True)
    for (source, reason), rows in Counter(pairs).items():
        assert f"| {source}: {reason} | {rows} |" in table


@pytest.mark.parametrize(
    ("metric", "logged", "verdict"),
    [
        (100_000, 99_000, OK),
        (100_000, 97_000, WARN),
        (100_000, 85_000, BLOCK),
        (100_000, 120_000, BLOCK),
        (5_000, 0, TOO_SMALL),
    ],
)
def test_reconciliation_levels(metric, logged, verdict):
    row = {
        "deployment_name": "d",
        "has_metrics": True,
        "metric_prompt_tokens": metric,
        "metric_completion_tokens": 0,
        "logged_prompt_tokens": logged,
        "logged_completion_tokens": 0,
    }
    [judged] = judge(pa.Table.from_pylist([row]), QualityPolicy())
    assert judged["verdict"] == verdict
    assert judged["unattributed_tokens"] == metric - logged


def test_absolute_levels_spare_small_gaps():
    row = {
        "deployment_name": "d",
        "has_metrics": True,
        "metric_prompt_tokens": 20_000,
        "metric_completion_tokens": 0,
        "logged_prompt_tokens": 16_000,
        "logged_completion_tokens": 0,
    }
    policy = QualityPolicy(reconciliation_warn_tokens=5_000, reconciliation_block_tokens=5_000)
    assert judge(pa.Table.from_pylist([row]), policy)[0]["verdict"] == OK


def test_the_reconciliation_checks_say_first_where_publication_is_gated():
    specs = {
        (spec.asset_key.to_user_string(), spec.name): spec
        for asset in ASSETS
        if isinstance(asset, dg.AssetsDefinition)
        for spec in asset.check_specs
    }

    daily = specs[("daily_reconciliation", "tokens_reconcile_with_azure_monitor")]
    hourly = specs[("deployment_reconciliation", "tokens_reconcile_with_azure_monitor")]
    assert not daily.blocking and daily.description.startswith("Gates publication, not as a Dagster blocking check")
    assert "product_usage_report and daily_chargeback" in daily.description.split(".")[0]
    assert hourly.description.startswith("Does not gate publication")

"""What the Dagster UI shows of a backfill is true at a glance: runs of named jobs, one check result per
partition naming its partition (none skipped), each partition's own numbers on its materialization, money
at the currency's minor unit, every asset's columns described and typed before any run (and typed as its
rows are written), and days published by `chargeback backfill` not rolled up again by the sensor while
their inputs stay the same. (test_ui.py shows the same in a real browser.)"""

import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill, checks_with_partitions
from chargeback_pipeline.definitions import build_definitions
from chargeback_pipeline.defs import column_docs, partition_checks
from chargeback_pipeline.defs.automation.fingerprints import CONTENT_HASH_METADATA
from chargeback_pipeline.defs.automation.sensors import ROLLUP_INPUTS_TAG
from chargeback_pipeline.defs.jobs import CODE_LOCATION as LOCATION
from chargeback_pipeline.defs.jobs import DAILY_JOB, HOURLY_JOB, MONTHLY_JOB, with_jobs
from chargeback_pipeline.defs.partitions import Calendar, partitioned_keys
from chargeback_pipeline.settings import load_settings
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline_tests.conftest import ASSETS, CALENDAR, local_resources, pipeline
from chargeback_pipeline_tests.ticks import DAILY, HOURLY, MONTHLY, Daemon

DAY = date(2026, 1, 5)
HOURS = [f"{DAY}-{hour:02d}:00" for hour in range(24)]
MONTH = "2026-01-01"


# ---- 1. named jobs ----------------------------------------------------------------------------------


def test_the_schedule_and_the_sensors_run_named_jobs_of_one_partitioning_each():
    settings = load_settings()
    defs = build_definitions(settings)
    calendar = Calendar.starting(settings.partitions_start)
    expected = {HOURLY_JOB: calendar.hourly, DAILY_JOB: calendar.daily, MONTHLY_JOB: calendar.monthly}
    specs = list(defs.resolve_all_asset_specs())

    for name, partitions in expected.items():
        job = defs.resolve_job_def(name)
        assert job.partitions_def == partitions, name
        assert job.asset_layer.selected_asset_keys == {s.key for s in specs if s.partitions_def == partitions}
        assert job.description
    assert defs.resolve_schedule_def("hourly_attribution").job_name == HOURLY_JOB
    assert defs.resolve_sensor_def("daily_rollup").job_name == DAILY_JOB
    assert defs.resolve_sensor_def("monthly_rollup").job_name == MONTHLY_JOB


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """One day backfilled by `chargeback backfill`'s runner, on a SQLite instance (as `make demo` leaves it)."""
    tmp_path = tmp_path_factory.mktemp("backfilled")
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=200))
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        [chunk] = backfill(DAY, DAY, pipeline(resources), instance)
        yield tmp_path, resources, instance, chunk


def test_the_backfill_runs_the_named_jobs(backfilled):
    _, _, instance, chunk = backfilled

    runs = {run.job_name: run for run in instance.get_runs()}

    assert set(runs) == {HOURLY_JOB, DAILY_JOB, MONTHLY_JOB}
    assert [chunk.hourly.dagster_run.job_name, chunk.daily.dagster_run.job_name] == [HOURLY_JOB, DAILY_JOB]
    assert runs[HOURLY_JOB].tags["dagster/asset_partition_range_start"] == HOURS[0]
    assert runs[HOURLY_JOB].tags["dagster/asset_partition_range_end"] == HOURS[-1]
    # The Overview timeline groups runs by code location: the CLI's runs carry the label the UI's carry.
    assert {run.tags.get(".dagster/repository") for run in runs.values()} == {"__repository__@" + LOCATION}
    # ... and the origin the timeline draws runs by (GraphQL `repositoryOrigin`), as runs the UI launched.
    origins = {
        (r.remote_job_origin.location_name, r.remote_job_origin.repository_origin.repository_name)
        for r in runs.values()
    }
    assert origins == {(LOCATION, "__repository__")}


# ---- 2. one check result per partition, naming it ---------------------------------------------------


def _executions(instance, key: dg.AssetCheckKey):
    return instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)


def test_a_ranged_run_leaves_one_passed_result_per_partition_and_none_skipped(backfilled):
    _, _, instance, _ = backfilled
    specs = {spec.key: spec for a in ASSETS for spec in a.check_specs}
    expected = {HOURLY_JOB: HOURS, DAILY_JOB: [str(DAY)], MONTHLY_JOB: [MONTH]}
    keys_by_job = {HOURLY_JOB: set(HOURLY), DAILY_JOB: set(DAILY), MONTHLY_JOB: set(MONTHLY)}
    partitions_of_job = {HOURLY_JOB: CALENDAR.hourly, DAILY_JOB: CALENDAR.daily, MONTHLY_JOB: CALENDAR.monthly}

    for key, spec in specs.items():
        job = next(name for name, keys in keys_by_job.items() if key.asset_key in keys)
        assert spec.partitions_def == partitions_of_job[job], key  # partitioned like its asset
        executions = _executions(instance, key)
        # One day has no history to judge anomalies on: a WARN saying so ("Not judged"), not a pass. (The
        # example's PTU counts are far above this load, but a day is too little evidence to cut: passed.)
        outcome = "FAILED" if key.name == "no_cost_anomaly" else "SUCCEEDED"
        assert Counter(e.status.value for e in executions) == {outcome: len(expected[job])}, key
        assert sorted(e.partition for e in executions) == expected[job], key
        for execution in executions:  # each judged its own partition's materialization, so each is current
            evaluation = execution.event.dagster_event.event_specific_data
            assert evaluation.partition == execution.partition
            assert evaluation.target_materialization_data is not None, key
    assert len(specs) == 24


def test_each_hour_is_judged_on_its_own_numbers(backfilled):
    tmp_path, _, instance, _ = backfilled
    key = dg.AssetCheckKey(dg.AssetKey("attributed_requests"), "one_row_per_correlation_id")

    for execution in _executions(instance, key):
        hour = execution.partition  # 2026-01-05-07:00 is the lake's hour=2026-01-05T07
        rows = pq.ParquetFile(tmp_path / f"lake/attributed_requests/hour={hour[:10]}T{hour[11:13]}/rows.parquet")
        metadata = execution.event.dagster_event.event_specific_data.metadata
        assert metadata["rows"].value == rows.metadata.num_rows == metadata["distinct_correlation_ids"].value


def test_the_command_line_still_gets_one_result_per_check_and_run(backfilled):
    _, _, _, chunk = backfilled

    hourly = dict((e.check_name, (e, partitions)) for e, partitions in checks_with_partitions(chunk.hourly))
    evaluation, partitions = hourly["gateway_log_complete"]

    assert partitions == f"{HOURS[0]}..{HOURS[-1]}"
    assert evaluation.partition is None and evaluation.passed
    assert evaluation.metadata["hours_checked"].value == 24
    assert chunk.check_evaluations()["attributed_requests:one_row_per_correlation_id"].metadata["rows"].value == sum(
        m.metadata["dagster/row_count"].value
        for m in chunk.hourly.asset_materializations_for_node("attributed_requests")
        if m.asset_key == dg.AssetKey("attributed_requests")
    )


def _evaluation(partition: str, passed: bool, severity=dg.AssetCheckSeverity.ERROR, **metadata):
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("attributed_requests"),
        check_name="quarantine_rate_within_limit",
        passed=passed,
        severity=severity,
        description=f"judged {partition}",
        partition=partition,
        metadata=metadata,
    )


def test_a_runs_partitions_fold_into_one_result_by_the_rules():
    hours = [
        _evaluation("h0", True, quarantined_rows=0, rows_judged=90, quarantined_percent=0.0, threshold_percent=1.0,
                    max_percent_seen=0.0, by_reason={}, incomplete_hours=[]),
        _evaluation("h1", False, severity=dg.AssetCheckSeverity.WARN, quarantined_rows=1, rows_judged=10,
                    quarantined_percent=10.0, threshold_percent=1.0, max_percent_seen=10.0,
                    by_reason={"bad id": 1}, incomplete_hours=["h1"]),
        _evaluation("h2", False, quarantined_rows=3, rows_judged=100, quarantined_percent=3.0, threshold_percent=1.0,
                    max_percent_seen=3.0, by_reason={"bad id": 2, "negative": 1}, incomplete_hours=["h2"]),
    ]  # fmt: skip

    [folded] = partition_checks.run_level_by_check(hours)

    assert not folded.passed and folded.partition is None
    assert folded.severity == dg.AssetCheckSeverity.ERROR and folded.description == "judged h2"  # the worst
    assert {name: value.value for name, value in folded.metadata.items()} == {
        "quarantined_rows": 4,
        "rows_judged": 200,
        "quarantined_percent": 2.0,  # of the run, not a sum of percents
        "threshold_percent": 1.0,
        "max_percent_seen": 10.0,
        "by_reason": {"bad id": 3, "negative": 1},
        "incomplete_hours": ["h1", "h2"],
    }
    assert partition_checks.run_level_by_check(hours[:1])[0].passed


# ---- 3. each partition's own numbers; money and empty values -----------------------------------------


def test_each_partition_carries_its_own_numbers_and_no_run_totals(backfilled):
    _, _, _, chunk = backfilled
    hourly = [
        m
        for m in chunk.hourly.asset_materializations_for_node("attributed_requests")
        if m.asset_key == dg.AssetKey("attributed_requests")
    ]

    assert [m.partition for m in hourly] == HOURS
    for name in ("dagster/row_count", "billable_requests", "billable_total_tokens", "failed_requests"):
        values = [m.metadata[name].value for m in hourly]
        assert all(isinstance(v, int) for v in values) and len(set(values)) > 1, name  # a line, not a constant
    billable = sum(m.metadata["billable_total_tokens"].value for m in hourly)
    [usage] = chunk.daily.asset_materializations_for_node("daily_product_usage")
    assert usage.partition == str(DAY) and usage.metadata["total_tokens"].value == billable
    every_event = [
        event.step_materialization_data.materialization
        for run in (chunk.hourly, chunk.daily, chunk.monthly)
        for event in run.get_asset_materialization_events()
    ]
    assert not [name for event in every_event for name in event.metadata if name.startswith("run_")]
    assert all(CONTENT_HASH_METADATA in m.metadata for m in hourly)


def test_money_is_at_the_minor_unit_with_its_currency_and_empty_values_are_left_out(backfilled):
    tmp_path, _, _, chunk = backfilled
    [chargeback] = chunk.daily.asset_materializations_for_node("daily_chargeback")
    [report] = chunk.daily.asset_materializations_for_node("product_usage_report")
    lines = pq.read_table(tmp_path / f"reports/daily/usage_date={DAY}/chargeback.parquet")

    cost = chargeback.metadata["total_cost"].value
    assert cost == f"{sum(lines['total_cost'].to_pylist()):,.2f} USD" and sum(lines["total_cost"].to_pylist()) > 0
    assert chargeback.metadata["currency"].value == "USD"
    assert "published_despite_blocked_reconciliation" not in chargeback.metadata
    assert "published_despite_shrink" not in report.metadata
    preview = chargeback.metadata["cost_by_product"].value
    cells = [cell.strip() for line in preview.splitlines()[2:] for cell in line.strip("|").split("|")[1:]]
    assert cells and all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d USD", cell) for cell in cells)  # 1,234.50 USD
    assert any("," in cell for cell in report.metadata["top_products"].value.splitlines()[2].split("|")[2:])


# ---- 6. days published by the CLI are not rolled up again by the sensor ----------------------------


def test_days_the_cli_published_are_not_rolled_up_again_while_their_hours_stay_the_same(backfilled):
    _, resources, instance, chunk = backfilled
    daemon = Daemon(instance, resources)
    (daily_sensor, _), (monthly_sensor, _) = daemon.sensors
    assert chunk.daily.dagster_run.tags[ROLLUP_INPUTS_TAG]  # the fingerprint the sensor would compute

    assert daemon.sensor_requests(daily_sensor) == []
    assert daemon.sensor_requests(monthly_sensor) == []

    # The schedule's next tick re-pulls an hour of the day: the same rows, so the same content.
    repull = (
        with_jobs(pipeline(resources))
        .resolve_job_def(HOURLY_JOB)
        .execute_in_process(partition_key=HOURS[-1], instance=instance)
    )
    assert repull.success
    assert daemon.sensor_requests(daily_sensor) == []

    # An hour whose content changed (late rows) does roll the day up again.
    for key in partitioned_keys(ASSETS, CALENDAR.hourly):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, partition=HOURS[5], metadata={CONTENT_HASH_METADATA: "late rows"})
        )
    assert [request.partition_key for request in daemon.sensor_requests(daily_sensor)] == [str(DAY)]


def test_a_day_materialized_from_the_asset_page_is_not_rolled_up_again_by_a_quiet_re_pull(backfilled):
    # The asset page's Materialize runs Dagster's own asset job, with no fingerprint tag: what its run read
    # is judged by its inputs' fingerprint as they were when it started. A re-pull of the same rows after it
    # changes no fingerprint and starts nothing; the old rule (inputs newer than the run) rolled it up again.
    _, resources, instance, _ = backfilled
    daemon = Daemon(instance, resources)
    (daily_sensor, _), _ = daemon.sensors
    from_the_ui = dg.materialize(
        ASSETS, selection=partitioned_keys(ASSETS, CALENDAR.daily), partition_key=str(DAY),
        resources=resources, instance=instance,
    )  # fmt: skip
    assert from_the_ui.success and ROLLUP_INPUTS_TAG not in from_the_ui.dagster_run.tags
    assert daemon.sensor_requests(daily_sensor) == []

    repull = (
        with_jobs(pipeline(resources))
        .resolve_job_def(HOURLY_JOB)
        .execute_in_process(partition_key=HOURS[-1], instance=instance)
    )
    assert repull.success
    assert daemon.sensor_requests(daily_sensor) == []


# ---- 4. column schemas and code references, declared before the first run ----------------------------

HOUR_KEY = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
WRITTEN = {  # where each asset's rows are written (lake or report), for one hour or day of the backfill
    "raw_gateway_logs": f"lake/{keys.hour_key(keys.RAW_GATEWAY, HOUR_KEY)}",
    "raw_llm_logs": f"lake/{keys.hour_key(keys.RAW_LLM, HOUR_KEY)}",
    "raw_deployment_metrics": f"lake/{keys.hour_key(keys.RAW_METRICS, HOUR_KEY)}",
    "attributed_requests": f"lake/{keys.hour_key(keys.ATTRIBUTED, HOUR_KEY)}",
    "quarantined_records": f"lake/{keys.hour_key(keys.QUARANTINE, HOUR_KEY)}",
    "deployment_reconciliation": f"lake/{keys.hour_key(keys.HOURLY_RECONCILIATION, HOUR_KEY)}",
    "daily_product_usage": f"lake/{keys.day_key(keys.DAILY_USAGE, DAY)}",
    "daily_reconciliation": f"lake/{keys.day_key(keys.DAILY_RECONCILIATION, DAY)}",
    "product_usage_report": f"reports/{keys.product_usage_report_key(DAY, 'parquet')}",
    "daily_chargeback": f"lake/{keys.day_key(keys.DAILY_CHARGEBACK, DAY)}",  # the estimate
    "focus_export": f"reports/{keys.focus_key(DAY, 'parquet')}",
    "billed_chargeback": f"reports/{keys.chargeback_key(DAY, 'parquet')}",  # the published chargeback
    "monthly_statement": f"reports/{keys.statement_key(DAY, 'parquet')}",
    "ptu_utilization": f"lake/{keys.hour_key(keys.PTU_UTILIZATION, HOUR_KEY)}",
    "ptu_rightsizing": f"reports/{keys.ptu_rightsizing_key(DAY, 'parquet')}",
    "budget_status": f"reports/{keys.budget_status_key(DAY, 'parquet')}",
    "cost_anomalies": f"reports/{keys.cost_anomalies_key(DAY, 'parquet')}",
    "chargeback_audit": f"lake/{keys.day_key(keys.CHARGEBACK_AUDIT, DAY)}",
}
PUBLICATION_DECISIONS = {  # assets that write the publication manifest beside the files they publish
    "day_publication": "daily/usage_date=YYYY-MM-DD/_publication.json",
    "month_publication": "monthly/month=YYYY-MM/_publication.json",
}


def test_every_asset_declares_its_described_columns_and_its_code_before_any_run():
    defs = build_definitions(load_settings())

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert specs.keys() == WRITTEN.keys() | PUBLICATION_DECISIONS.keys()
    for name, spec in specs.items():
        if name in PUBLICATION_DECISIONS:  # writes a JSON manifest, not a table: its description names it
            assert "dagster/column_schema" not in spec.metadata, name
            assert PUBLICATION_DECISIONS[name] in spec.description, name
        else:
            columns = spec.metadata["dagster/column_schema"].columns
            assert [c.name for c in columns] == column_docs.COLUMNS[name].names, name
            assert all(c.type and c.description and len(c.description) >= 8 for c in columns), name
        references = spec.metadata["dagster/code_references"].code_references
        files = [Path(reference.file_path) for reference in references]
        assert all(file.is_file() for file in files), name
        assert any(file.suffix == ".py" and file.parent.parent.name == "defs" for file in files), name
    described = {c.name: c.description for c in specs["attributed_requests"].metadata["dagster/column_schema"].columns}
    assert described["is_billable"] == "Successful and has an LLM record."  # the SQL model's yml doc
    sql = [r.label for r in specs["attributed_requests"].metadata["dagster/code_references"].code_references]
    assert "marts/fct_attributed_requests.sql" in sql


def test_the_declared_columns_are_what_the_assets_write(backfilled):
    tmp_path, _, _, _ = backfilled

    for name, path in WRITTEN.items():
        written = pq.read_schema(tmp_path / path)
        declared = column_docs.COLUMNS[name]
        assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in declared], name

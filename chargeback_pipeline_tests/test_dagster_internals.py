"""The Dagster internals of defs/dagster_internals.py still exist and still do what the pipeline relies on,
in the installed Dagster. A failure here names what an upgrade changed: adapt dagster_internals.py (or
the code that names it there) before upgrading."""

import dagster as dg

from chargeback_pipeline.defs import dagster_internals as internals


def test_define_asset_job_still_returns_the_class_the_jobs_are_typed_with():
    @dg.asset
    def an_asset() -> None: ...

    job = dg.define_asset_job("a_job", selection=[an_asset])

    assert isinstance(job, internals.AssetJob), f"dg.define_asset_job now returns {type(job)!r}"


def test_a_check_evaluation_still_takes_the_materialization_it_judged():
    target = internals.CheckTargetMaterialization(storage_id=7, run_id="a-run", timestamp=1.5)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("an_asset"), check_name="a_check", passed=True, target_materialization_data=target
    )

    assert evaluation.target_materialization_data == target
    assert (target.storage_id, target.run_id, target.timestamp) == (7, "a-run", 1.5)


def test_the_event_log_still_reads_the_planned_events_variable(monkeypatch):
    with dg.DagsterInstance.ephemeral() as instance:
        storage = instance.event_log_storage
        monkeypatch.setenv(internals.EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS, "1")
        honoured = storage.supports_partition_subset_in_asset_materialization_planned_events
        monkeypatch.delenv(internals.EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS)
        default = storage.supports_partition_subset_in_asset_materialization_planned_events

    assert (honoured, default) == (True, False)


def test_the_instance_still_reads_the_event_batch_size_variable(monkeypatch):
    with dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv(internals.EVENT_BATCH_SIZE, "1000")
        batched = (instance._is_batch_writing_enabled(), instance._get_event_batch_size())
        monkeypatch.delenv(internals.EVENT_BATCH_SIZE)
        unbatched = (instance._is_batch_writing_enabled(), instance._get_event_batch_size())

    assert (batched, unbatched) == ((True, 1000), (False, 0))


def test_a_run_executed_in_process_still_takes_the_code_locations_origin():
    @dg.asset
    def an_asset() -> None: ...

    job = dg.Definitions(assets=[an_asset], jobs=[dg.define_asset_job("a_job")]).resolve_job_def("a_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, tags={".dagster/repository": "__repository__@a.module"})
        assert instance.get_run_by_id(result.run_id).remote_job_origin is None  # what in-process runs lack

        internals.record_code_location(instance, result.run_id, "a.module", "a.module", "__repository__")

        run = instance.get_run_by_id(result.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "a_job"
        origin = run.remote_job_origin  # what the Overview timeline reads (GraphQL `repositoryOrigin`)
        assert (origin.location_name, origin.repository_origin.repository_name) == ("a.module", "__repository__")
        assert origin.repository_origin.code_location_origin.loadable_target_origin.module_name == "a.module"
        labelled = instance.get_runs(dg.RunsFilter(tags={".dagster/repository": "__repository__@a.module"}))
        assert [r.run_id for r in labelled] == [result.run_id]


def test_a_ranged_runs_events_are_still_dated_by_the_record_the_filter_dates(monkeypatch):
    monkeypatch.setenv(internals.EVENT_BATCH_SIZE, "1000")  # as `chargeback backfill` runs: events logged fast
    hours = dg.HourlyPartitionsDefinition(start_date="2026-01-05-00:00")

    @dg.asset(
        partitions_def=hours,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[dg.AssetCheckSpec("a_check", asset="an_hourly_asset")],
    )
    def an_hourly_asset(context: dg.AssetExecutionContext):
        internals.one_event_per_millisecond(context.log)
        for key in context.partition_keys:
            context.add_asset_metadata({"rows": 1}, partition_key=key)
        yield dg.MaterializeResult()
        for _ in context.partition_keys:  # as partition_checks.evaluations yields them
            yield dg.AssetCheckEvaluation(asset_key=context.asset_key, check_name="a_check", passed=True)
        yield dg.Output(
            None,
            output_name=context.assets_def.get_output_name_for_asset_check_key(
                dg.AssetCheckKey(context.asset_key, "a_check")
            ),
        )

    with dg.instance_for_test() as instance:
        tags = {
            "dagster/asset_partition_range_start": "2026-01-05-00:00",
            "dagster/asset_partition_range_end": "2026-01-05-23:00",
        }
        assert dg.materialize([an_hourly_asset], instance=instance, tags=tags).success
        records = instance.fetch_materializations(an_hourly_asset.key, limit=100).records
        checks = instance.get_records_for_run(
            run_id=records[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records

    # The milliseconds GraphQL gives the UI (`int(timestamp * 1000)`): one per event, none shared.
    assert len({int(r.timestamp * 1000) for r in records}) == len(records) == 24
    assert len({int(r.event_log_entry.timestamp * 1000) for r in checks}) == len(checks) == 24

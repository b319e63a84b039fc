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

"""A day never replaces its published report (or chargeback) with a smaller one without an explicit,
recorded override: fewer product rows or a smaller total fails the step and leaves the files as they were.
"""

import json
import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill, keys_partitioned_by
from chargeback_pipeline.defs.billing.daily_chargeback import CHARGEBACK_SHRINK_GUARD
from chargeback_pipeline.defs.publishing.gate import PublicationGate, PublishConfig, ReportSize
from chargeback_pipeline.defs.publishing.product_usage_report import USAGE_SHRINK_GUARD
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.storage.keys import product_usage_report_key, shrink_override_key
from chargeback_pipeline.storage.object_store import LocalObjectStore
from chargeback_pipeline.storage.report_files import report_files
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY, EXPECTED_REPORT, GATEWAY_ROWS, LLM_ROWS, write_export

THE_DAY = date.fromisoformat(DAY)
REASON = "INC-7: the export was re-cut, half the requests were test traffic"
# Half the export: the requests of the first half of the gateway's correlation ids (c-01..c-05).
KEPT = {"c-01", "c-02", "c-03", "c-04", "c-05"}
HALF_GATEWAY = [row for row in GATEWAY_ROWS if row["CorrelationId"] in KEPT]
HALF_LLM = [row for row in LLM_ROWS if row["CorrelationId"] in KEPT]
SHRINK_CONFIG = {"publish_despite_shrink": True, "override_reason": REASON}


def published_files(reports: Path) -> dict[str, bytes]:
    return {str(path.relative_to(reports)): path.read_bytes() for path in sorted(reports.rglob("*")) if path.is_file()}


def resources_for(tmp_path: Path, name: str, gateway_rows, llm_rows) -> dict:
    export = write_export(tmp_path / name, gateway_rows, llm_rows)
    return local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))


def publish_daily(resources: dict, instance, config: dict) -> dg.ExecuteInProcessResult:
    """The daily assets of DAY in one run, with `config` on both publishing assets."""
    return dg.materialize(
        ASSETS,
        selection=keys_partitioned_by(ASSETS, dg.DailyPartitionsDefinition),
        partition_key=DAY,
        resources=resources,
        instance=instance,
        run_config={"ops": {asset: {"config": config} for asset in ("product_usage_report", "daily_chargeback")}},
        raise_on_error=False,
    )


@pytest.fixture
def published_day(tmp_path, instance) -> dict[str, bytes]:
    """DAY published from the whole export; the published files."""
    backfill(THE_DAY, THE_DAY, pipeline(resources_for(tmp_path, "full", GATEWAY_ROWS, LLM_ROWS)), instance)
    return published_files(tmp_path / "reports")


def test_a_smaller_rerun_fails_and_leaves_the_published_files_untouched(tmp_path, instance, published_day):
    half = resources_for(tmp_path, "half", HALF_GATEWAY, HALF_LLM)

    with pytest.raises(BackfillFailed) as failure:
        backfill(THE_DAY, THE_DAY, pipeline(half), instance)

    message = str(failure.value)
    full_tokens = sum(row[5] + row[6] for row in EXPECTED_REPORT)
    billable_rows = sum(1 for row in EXPECTED_REPORT if row[7] > 0)  # rows of failed calls only are not counted
    assert "product_usage_report" in message and "daily_chargeback" in message
    assert f"product_usage of {DAY} would replace the published one with a smaller one" in message
    assert f"{billable_rows} product rows -> 2, total_tokens {full_tokens:,} -> " in message
    assert f"chargeback of {DAY} would replace the published one with a smaller one" in message
    assert "publish_despite_shrink: true and an override_reason" in message
    assert published_files(tmp_path / "reports") == published_day  # byte-identical, nothing added
    month = f"monthly/month={DAY[:7]}"
    assert sorted(published_day) == sorted(
        [
            *(
                f"daily/usage_date={DAY}/{name}.{ext}"
                for name in (
                    "product_usage",
                    "chargeback",
                    "billed_chargeback",
                    "focus",
                    "budget_status",
                    "cost_anomalies",
                )
                for ext in ("csv", "parquet")
            ),
            *(
                f"{month}/{name}.{ext}"
                for name in ("statement", "billed_statement", "ptu_rightsizing", "ptu_what_if")
                for ext in ("csv", "parquet")
            ),
            f"{month}/statement.html",
            f"{month}/ptu_rightsizing.png",
        ]
    )


def test_the_override_needs_a_reason_publishes_the_smaller_day_and_records_it(tmp_path, instance, published_day):
    half = resources_for(tmp_path, "half", HALF_GATEWAY, HALF_LLM)
    with pytest.raises(BackfillFailed):
        backfill(THE_DAY, THE_DAY, pipeline(half), instance)

    refused = publish_daily(half, instance, {"publish_despite_shrink": True, "override_reason": "  "})
    errors = [str(event.step_failure_data.error) for event in refused.all_events if event.is_step_failure]
    assert errors and all("publish_despite_shrink needs a non-empty override_reason" in e for e in errors)
    assert published_files(tmp_path / "reports") == published_day

    result = publish_daily(half, instance, SHRINK_CONFIG)

    assert result.success
    folder = tmp_path / "reports" / f"daily/usage_date={DAY}"
    report = pq.read_table(folder / "product_usage.parquet")
    assert sorted(report["product_id"].to_pylist()) == ["alpha", "beta", "beta", "unassigned"]
    usage_record = json.loads((folder / "product_usage_shrink_override.json").read_text())
    [entry] = usage_record["overrides"]
    assert usage_record["report"] == "product_usage" and usage_record["usage_date"] == DAY
    assert entry["reason"] == REASON and entry["run_id"] == result.run_id
    assert entry["replaced"]["product_rows"] == 3 and entry["published"]["product_rows"] == 2
    assert entry["replaced"]["rows"] == len(EXPECTED_REPORT) and entry["published"]["rows"] == 4
    assert entry["published"]["total"] == sum(report["total_tokens"].to_pylist()) < entry["replaced"]["total"]
    chargeback_record = json.loads((folder / "chargeback_shrink_override.json").read_text())
    assert chargeback_record["overrides"][0]["reason"] == REASON
    assert Decimal(chargeback_record["overrides"][0]["published"]["total"]) < Decimal(
        chargeback_record["overrides"][0]["replaced"]["total"]
    )
    [materialization] = result.asset_materializations_for_node("product_usage_report")
    assert materialization.metadata["published_despite_shrink"].value[0].endswith(REASON)
    # a re-run of the same, now published, day shrinks nothing: published, the record kept as it is
    assert publish_daily(half, instance, {}).success
    assert json.loads((folder / "product_usage_shrink_override.json").read_text()) == usage_record


# --- the gate on its own --------------------------------------------------------------------------------------


def usage(rows: list[tuple]) -> pa.Table:
    """(product, tokens) rows with one call each, or (product, tokens, calls)."""
    rows = [(*row, 1) if len(row) == 2 else row for row in rows]
    return pa.table(
        {
            "product_id": pa.array([row[0] for row in rows], pa.string()),
            "total_tokens": pa.array([row[1] for row in rows], pa.int64()),
            "calls": pa.array([row[2] for row in rows], pa.int64()),
        }
    )


def gate_over(tmp_path: Path, config: PublishConfig | None = None) -> tuple[PublicationGate, LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "target")
    context = SimpleNamespace(log=logging.getLogger("gate-test"), run=SimpleNamespace(run_id="run-1"))
    return PublicationGate(context, config or PublishConfig(), store, "usage report", USAGE_SHRINK_GUARD), store


def publish(store: LocalObjectStore, table: pa.Table) -> None:
    store.write_bytes(product_usage_report_key(THE_DAY, "parquet"), report_files(table)["parquet"])


NO_RECONCILIATION = pa.table({"day_verdict": pa.array([], pa.string())})
# beta's second row: a failed call without LLM record (model `unknown`, no billable call)
PUBLISHED = [("alpha", 100), ("beta", 50), ("beta", 0, 0), ("logged-not-billable", 30), ("unattributed", 20)]


@pytest.mark.parametrize(
    ("new", "admitted"),
    [
        (PUBLISHED, True),  # the same
        ([("alpha", 130), ("beta", 50)], True),  # late rows moved tokens from the reconciliation lines
        ([*PUBLISHED, ("gamma", 1)], True),  # a new product
        ([("alpha", 150)], False),  # fewer product rows, same total
        ([("alpha", 99), ("beta", 50), ("unattributed", 5000)], False),  # fewer attributed tokens
        ([("beta", 50), ("unassigned", 100)], True),  # a real bucket counts as a product
        # the failed call's row merged into its model's row once its LLM record came
        ([("alpha", 100), ("beta", 60)], True),
    ],
)
def test_only_fewer_product_rows_or_tokens_hold_a_day(tmp_path, new, admitted):
    gate, store = gate_over(tmp_path)
    publish(store, usage(PUBLISHED))

    assert gate.admits(THE_DAY, NO_RECONCILIATION, usage(new)) is admitted
    assert bool(gate.shrunk) is not admitted
    if not admitted:
        with pytest.raises(dg.Failure, match="would replace a published usage report with a smaller one"):
            gate.fail_if_blocked([])


def test_first_publication_and_unreadable_files_are_never_held(tmp_path):
    gate, store = gate_over(tmp_path)
    assert gate.admits(THE_DAY, NO_RECONCILIATION, usage([]))  # nothing published yet
    store.write_bytes(product_usage_report_key(THE_DAY, "parquet"), b"not parquet")
    assert gate.admits(THE_DAY, NO_RECONCILIATION, usage([]))  # a broken file is what a re-run repairs
    gate.fail_if_blocked([])


def test_every_override_is_appended_to_the_days_record(tmp_path):
    gate, store = gate_over(tmp_path, PublishConfig(publish_despite_shrink=True, override_reason="first"))
    publish(store, usage(PUBLISHED))
    assert gate.admits(THE_DAY, NO_RECONCILIATION, usage([("alpha", 100)]))
    publish(store, usage([("alpha", 100)]))
    gate.config = PublishConfig(publish_despite_shrink=True, override_reason="second")
    assert gate.admits(THE_DAY, NO_RECONCILIATION, usage([("alpha", 10)]))

    record = json.loads(store.read_bytes(shrink_override_key(THE_DAY, "product_usage")))
    assert [(e["reason"], e["replaced"], e["published"]) for e in record["overrides"]] == [
        ("first", {"product_rows": 2, "total": 150, "rows": 5}, {"product_rows": 1, "total": 100, "rows": 1}),
        ("second", {"product_rows": 1, "total": 100, "rows": 1}, {"product_rows": 1, "total": 10, "rows": 1}),
    ]
    assert len(gate.shrink_overridden) == 2 and not gate.shrunk


def test_chargeback_counts_cost_of_real_products_only():
    lines = pa.table(
        {
            "product_id": ["alpha", "unattributed", "platform-unallocated", "beta"],
            "total_cost": pa.array(
                [Decimal("1.10"), Decimal("5"), Decimal("7"), Decimal("0.90")], pa.decimal128(18, 6)
            ),
        }
    )
    size = CHARGEBACK_SHRINK_GUARD.size(lines)
    assert size.product_rows == 2 and size.total == Decimal("2.00") and size.rows == 4
    assert size.record() == {"product_rows": 2, "total": "2.000000", "rows": 4}


def test_publish_config_stays_backward_compatible():
    assert PublishConfig().publish_despite_shrink is False
    old = PublishConfig(publish_despite_blocked_reconciliation=True, override_reason="INC-1")
    assert old.publish_despite_blocked_reconciliation and not old.publish_despite_shrink
    assert ReportSize(1, 2, 3).record() == {"product_rows": 1, "total": 2, "rows": 3}

"""A day never replaces its published outputs with smaller ones without an explicit, recorded override: a lost
product, fewer product rows or a smaller total holds the whole day and leaves the files as they were.
"""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill, keys_partitioned_by
from chargeback_pipeline.core.publication_decision import RULES, OutputSize, measure, shrink
from chargeback_pipeline.defs.publishing.gate import PublishConfig
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline
from chargeback_pipeline_tests.folder_data import (
    DAY,
    EXPECTED_REPORT,
    GATEWAY_ROWS,
    HOSTILE_PRODUCT,
    LLM_ROWS,
    write_export,
)

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
    """The daily assets of DAY in one run, with `config` on the day's publication decision."""
    return dg.materialize(
        ASSETS,
        selection=keys_partitioned_by(ASSETS, dg.DailyPartitionsDefinition),
        partition_key=DAY,
        resources=resources,
        instance=instance,
        run_config={"ops": {"day_publication": {"config": config}}},
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
    assert "day_publication" in message and "none of their outputs replaced" in message
    assert f"{DAY}: would replace published outputs with smaller ones" in message
    assert (
        f"product_usage: products lost: {HOSTILE_PRODUCT!r}, rows {billable_rows} -> 2, total {full_tokens:,} -> "
        in message
    )
    assert f"chargeback: products lost: {HOSTILE_PRODUCT!r}" in message
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
                    "focus",
                    "budget_status",
                    "cost_anomalies",
                )
                for ext in ("csv", "parquet")
            ),
            *(
                f"{month}/{name}.{ext}"
                for name in ("statement", "ptu_rightsizing", "ptu_what_if", "ptu_capacity")
                for ext in ("csv", "parquet")
            ),
            f"{month}/statement.html",
            f"{month}/ptu_rightsizing.png",
            f"daily/usage_date={DAY}/_publication.json",
            f"{month}/_publication.json",
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
    manifest = json.loads((folder / "_publication.json").read_text())
    [entry] = manifest["overrides"]
    assert entry["reason"] == REASON and entry["run_id"] == result.run_id
    assert any(m.startswith(f"product_usage: products lost: {HOSTILE_PRODUCT!r}, rows 3 -> 2") for m in entry["shrunk"])
    assert manifest["outputs"]["product_usage"]["total"] == str(sum(report["total_tokens"].to_pylist()))
    [materialization] = result.asset_materializations_for_node("day_publication")
    assert materialization.metadata["published_despite_shrink"].value[0].endswith(REASON)
    # a re-run of the same, now published, day shrinks nothing: published, the record kept as it is
    assert publish_daily(half, instance, {}).success
    assert json.loads((folder / "_publication.json").read_text())["overrides"] == manifest["overrides"]


# --- the decision's measure on its own ----------------------------------------------------------------------


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


# beta's second row: a failed call without LLM record (model `unknown`, no billable call)
PUBLISHED = [("alpha", 100), ("beta", 50), ("beta", 0, 0), ("logged-not-billable", 30), ("unattributed", 20)]


@pytest.mark.parametrize(
    ("new", "admitted"),
    [
        (PUBLISHED, True),  # the same
        ([("alpha", 130), ("beta", 50)], True),  # late rows moved tokens from the reconciliation lines
        ([*PUBLISHED, ("gamma", 1)], True),  # a new product
        ([("alpha", 150)], False),  # a product lost, same total
        ([("alpha", 99), ("beta", 50), ("unattributed", 5000)], False),  # fewer attributed tokens
        ([("alpha", 100), ("gamma", 50)], False),  # beta vanished, gamma came with the same rows and total
        # the failed call's row merged into its model's row once its LLM record came
        ([("alpha", 100), ("beta", 60)], True),
    ],
)
def test_only_a_lost_product_fewer_rows_or_tokens_hold_a_day(new, admitted):
    rule = RULES["product_usage"]
    verdict = shrink("product_usage", measure(rule, usage(PUBLISHED)), measure(rule, usage(new)))
    assert (verdict is None) is admitted


def test_chargeback_counts_cost_of_real_products_only():
    lines = pa.table(
        {
            "product_id": ["alpha", "unattributed", "platform-unallocated", "beta"],
            "total_cost": pa.array(
                [Decimal("1.10"), Decimal("5"), Decimal("7"), Decimal("0.90")], pa.decimal128(18, 6)
            ),
        }
    )
    size = measure(RULES["chargeback"], lines)
    assert size.rows == 2 and size.total == Decimal("2.00") and size.products == ("alpha", "beta")
    assert OutputSize.from_record(size.record()) == size


def test_publish_config_stays_backward_compatible():
    assert PublishConfig().publish_despite_shrink is False
    old = PublishConfig(publish_despite_blocked_reconciliation=True, override_reason="INC-1")
    assert old.publish_despite_blocked_reconciliation and not old.publish_despite_shrink

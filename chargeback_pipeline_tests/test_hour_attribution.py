"""One hour's attribution on hand-made raw logs: what it writes to the lake, byte for byte and row for row.

The hour's logged tokens per deployment (what the reconciliation compares with Azure Monitor) come from
the attribution's de-duplicated LLM records; these tests hold them to the record-level definition,
including a request whose token records name two deployments.
"""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.core.attribution import attribute_hour, stage_relations
from chargeback_pipeline.core.reconciliation import reconcile_hour
from chargeback_pipeline.core.topology import TopologyError
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.keys import ATTRIBUTED, LOGGED_TOKENS, RAW_GATEWAY, RAW_LLM, RAW_METRICS, hour_key
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import LocalObjectStore
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)
from chargeback_pipeline_tests import landed_rows

HOUR = datetime(2026, 3, 10, 9, tzinfo=UTC)
MARGIN = timedelta(minutes=10)


def at(minutes: float) -> datetime:
    return HOUR + timedelta(minutes=minutes)


def gateway_row(correlation_id: str, minutes: float, product: str = "alpha", success: bool = True) -> dict:
    return landed_rows.gateway(correlation_id, at(minutes), product=product, success=success)


def llm_row(correlation_id, minutes, prompt, completion, deployment="gpt-ptu", sequence=0, request=None) -> dict:
    return landed_rows.llm(correlation_id, at(minutes), prompt, completion, deployment, sequence, request)


GATEWAY = [
    gateway_row("c-1", 5),
    gateway_row("c-1", 5),  # pulled twice
    gateway_row("c-2", 20, product="beta"),
    gateway_row("c-3", 30, success=False),
    gateway_row("c-4", 59.9),  # its LLM record is logged after the hour
    gateway_row("c-5", 40),  # its token records name two deployments
]
LLM = [
    llm_row("c-1", 5, 100, 10),
    llm_row("c-1", 5, 100, 10),  # pulled twice
    llm_row("c-2", 20, 200, 20),
    llm_row("c-2", 20.5, 0, 0, sequence=1),  # a later chunk
    llm_row("c-3", 30, 300, 0),  # failed request, still logged
    llm_row("c-4", 60.2, 400, 40),  # logged in the next hour: attributed here, reconciled there
    llm_row("c-5", 40, 500, 50, deployment="gpt-ptu", request="r-5a"),
    llm_row("c-5", 40, 600, 60, deployment="gpt-paygo", request="r-5b"),
    llm_row("c-6", -5, 700, 70),  # logged before the hour (its gateway row is in the previous hour)
    llm_row("c-7", 45, 800, 80, deployment="gpt-paygo"),  # no gateway row: bypass or lost, still logged
]
METRICS = [
    {"TimeStamp": HOUR, "ModelDeploymentName": "gpt-ptu", "MetricName": "ProcessedPromptTokens", "Total": 1_100},
    {"TimeStamp": HOUR, "ModelDeploymentName": "gpt-ptu", "MetricName": "GeneratedTokens", "Total": 80},
]


def landed_lake(root) -> Lake:
    lake = Lake(LocalObjectStore(root))
    lake.write(hour_key(RAW_GATEWAY, HOUR), pa.Table.from_pylist(GATEWAY, GATEWAY_LOG_SCHEMA))
    lake.write(hour_key(RAW_LLM, HOUR), pa.Table.from_pylist(LLM, LLM_LOG_SCHEMA))
    lake.write(hour_key(RAW_METRICS, HOUR), pa.Table.from_pylist(METRICS, DEPLOYMENT_METRICS_SCHEMA))
    for dataset in (RAW_GATEWAY, RAW_LLM):
        lake.write(hour_key(dataset, HOUR, "rejected"), SOURCE_REJECT_SCHEMA.empty_table())
    return lake


def logged_by_definition() -> dict[str, tuple[int, int, int]]:
    """Per deployment: prompt, completion and records of the distinct SequenceNumber 0 records logged in
    the hour, straight from the definition (one record per CorrelationId, RequestId, SequenceNumber)."""
    records = {
        (r["CorrelationId"], r["RequestId"], r["SequenceNumber"]): r
        for r in LLM
        if r["SequenceNumber"] == 0 and HOUR <= r["TimeGenerated"] < HOUR + timedelta(hours=1)
    }
    totals: dict[str, tuple[int, int, int]] = {}
    for r in records.values():
        prompt, completion, count = totals.get(r["DeploymentName"], (0, 0, 0))
        totals[r["DeploymentName"]] = (prompt + r["PromptTokens"], completion + r["CompletionTokens"], count + 1)
    return totals


def test_logged_tokens_follow_the_record_level_definition_across_deployments(tmp_path):
    lake = landed_lake(tmp_path)
    attribute_hour(lake, HOUR, [], MARGIN)
    logged = lake.read(hour_key(LOGGED_TOKENS, HOUR)).to_pylist()
    by_deployment: dict[str, tuple[int, int, int]] = {}
    for r in logged:
        prompt, completion, count = by_deployment.get(r["deployment_name"], (0, 0, 0))
        by_deployment[r["deployment_name"]] = (
            prompt + r["logged_prompt_tokens"],
            completion + r["logged_completion_tokens"],
            count + r["logged_requests"],
        )
    assert by_deployment == logged_by_definition()
    # Each record on the backend of its request's gateway row; c-7 has none: backend unknown.
    assert {
        (r["backend_id"], r["deployment_name"]): (r["logged_prompt_tokens"], r["logged_completion_tokens"])
        for r in logged
    } == {("ptu", "gpt-ptu"): (1_100, 80), ("ptu", "gpt-paygo"): (600, 60), ("unknown", "gpt-paygo"): (800, 80)}
    # c-1 once, c-2, c-3 and c-5's first record on the PTU; c-5's second record and c-7 on pay-as-you-go.
    assert logged_by_definition() == {"gpt-ptu": (1_100, 80, 4), "gpt-paygo": (1_400, 140, 2)}

    reconciled = {r["deployment_name"]: r for r in reconcile_hour(lake, HOUR, []).to_pylist()}
    assert reconciled["gpt-ptu"]["metric_prompt_tokens"] == reconciled["gpt-ptu"]["logged_prompt_tokens"] == 1_100
    assert not reconciled["gpt-paygo"]["has_metrics"]
    assert reconciled["gpt-paygo"]["logged_completion_tokens"] == 140


def test_attributed_hour_has_one_schema_and_the_same_bytes_on_every_run(tmp_path):
    lake = landed_lake(tmp_path)
    first = attribute_hour(lake, HOUR, [], MARGIN)
    path = tmp_path / hour_key(ATTRIBUTED, HOUR)
    table = pq.read_table(path)
    # DuckDB writes the file; no column may be marked required just because this hour holds no null.
    assert all(field.nullable for field in table.schema)
    assert table.column_names[:3] == ["request_time", "usage_date", "correlation_id"]
    assert table["correlation_id"].to_pylist() == ["c-1", "c-2", "c-3", "c-5", "c-4"]  # by request time
    rows = {r["correlation_id"]: r for r in table.to_pylist()}
    assert rows["c-1"]["gateway_records"] == 2 and rows["c-1"]["total_tokens"] == 110
    assert rows["c-4"]["prompt_tokens"] == 400  # its LLM record, logged after the hour, is in the margin
    assert rows["c-5"]["prompt_tokens"] == 1_100 and rows["c-5"]["llm_records"] == 2
    assert not rows["c-3"]["is_billable"] and rows["c-3"]["has_llm_record"]
    assert first.measures["requests"] == 5 and first.measures["duplicates"] == 1

    again = attribute_hour(lake, HOUR, [], MARGIN)
    assert again.attributed_digest == first.attributed_digest
    assert again.logged_tokens_digest == first.logged_tokens_digest


def test_metrics_without_a_resource_on_a_name_two_resources_serve_fail_saying_what_to_export(tmp_path):
    """The same deployment name on two backends (a PTU resource and its spillover): metrics that carry no
    ResourceId cannot be placed, so the hour fails with what to configure, never a guess."""
    lake = Lake(LocalObjectStore(tmp_path))
    spilled = {**gateway_row("c-9", 50), "BackendId": "paygo"}
    lake.write(hour_key(RAW_GATEWAY, HOUR), pa.Table.from_pylist([*GATEWAY, spilled], GATEWAY_LOG_SCHEMA))
    lake.write(hour_key(RAW_LLM, HOUR), pa.Table.from_pylist([*LLM, llm_row("c-9", 50, 10, 1)], LLM_LOG_SCHEMA))
    lake.write(hour_key(RAW_METRICS, HOUR), pa.Table.from_pylist(METRICS, DEPLOYMENT_METRICS_SCHEMA))
    for dataset in (RAW_GATEWAY, RAW_LLM):
        lake.write(hour_key(dataset, HOUR, "rejected"), SOURCE_REJECT_SCHEMA.empty_table())
    attribute_hour(lake, HOUR, [], MARGIN)

    with pytest.raises(TopologyError, match=r"deployment\(s\) gpt-ptu without a resource id.*ResourceId"):
        reconcile_hour(lake, HOUR, [])

    # With the resource in the metrics, each resource is reconciled on its own backend.
    resource = "/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/ptu"
    with_resource = [{**m, "ResourceId": resource} for m in METRICS]
    lake.write(hour_key(RAW_METRICS, HOUR), pa.Table.from_pylist(with_resource, DEPLOYMENT_METRICS_SCHEMA))
    reconciled = {(r["backend_id"], r["deployment_name"]): r for r in reconcile_hour(lake, HOUR, []).to_pylist()}
    assert reconciled[("ptu", "gpt-ptu")]["metric_prompt_tokens"] == 1_100
    assert not reconciled[("paygo", "gpt-ptu")]["has_metrics"]  # logged, but no metrics for that resource


def test_a_request_with_one_trusted_row_gets_the_same_row_as_an_aggregated_one():
    """int_llm_requests projects a request's single trusted row instead of aggregating it: every kind of
    single row (a token record inside or outside the hour, a lone later chunk with or without tokens,
    null counts where they are allowed) gives what the aggregate gives its twin, whose row was pulled
    twice (so aggregated), apart from the twin's two raw rows."""
    singles = [
        llm_row("a", 5, 100, 10),
        llm_row("b", -5, 200, 20),  # logged in the margin before the hour
        llm_row("c", 64, 300, 30),  # and after it
        llm_row("d", 10, 7, 0, sequence=1),  # a later chunk carrying tokens, without its record 0
        llm_row("e", 10, 0, 0, sequence=2),
        {**llm_row("f", 15, 400, 40), "TotalTokens": None, "ModelName": None},
        {**llm_row("g", 15, 0, 0, sequence=1), "PromptTokens": None, "CompletionTokens": None},
    ]
    twins = [{**row, "CorrelationId": f"twin-{row['CorrelationId']}"} for row in singles]
    con = sql.connect()
    try:
        stage_relations(
            con,
            {
                "raw_gateway_logs": GATEWAY_LOG_SCHEMA.empty_table(),
                "raw_llm_logs": pa.Table.from_pylist(singles + twins + twins, LLM_LOG_SCHEMA),
                "raw_gateway_rejected": SOURCE_REJECT_SCHEMA.empty_table(),
                "raw_llm_rejected": SOURCE_REJECT_SCHEMA.empty_table(),
            },
            HOUR,
            [],
        )
        requests = {
            row["correlation_id"]: row for row in con.sql("select * from int_llm_requests").to_arrow_table().to_pylist()
        }
    finally:
        con.close()

    assert len(requests) == 2 * len(singles)
    for single in singles:
        projected, aggregated = requests[single["CorrelationId"]], requests[f"twin-{single['CorrelationId']}"]
        assert (projected.pop("llm_rows"), aggregated.pop("llm_rows")) == (1, 2)
        assert {**projected, "correlation_id": None} == {**aggregated, "correlation_id": None}, single
    assert requests["d"]["nonzero_later_chunks"] == 1 and not requests["d"]["has_token_record"]
    assert (requests["a"]["window_prompt_tokens"], requests["b"]["window_prompt_tokens"]) == (100, 0)

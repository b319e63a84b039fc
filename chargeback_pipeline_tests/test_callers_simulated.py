"""Who called, end to end as a user meets it: the simulated day, held by a Log Analytics workspace with the
callers' trace records, through the pipeline with caller keys and then the `chargeback` command: its usage
and chargeback split by caller held to the simulator's ground truth (computed from the generated requests,
not from the logs), the Entra-only calls (no subscription) split by application, and nothing of the trace
records but the callers' values written anywhere."""

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.callers import CallerIdentity
from chargeback_pipeline.sources.log_analytics.resource import LogAnalyticsSourceResource
from chargeback_pipeline.sources.simulated import (
    PAYGO_BACKEND_ID,
    PTU_BACKEND_ID,
    UNASSIGNED,
    SimulatedSource,
    SimulationProfile,
    account_resource_id,
)
from chargeback_pipeline.sources.simulated.callers import ENTRA_APPS, NOT_A_CALLER, OTHER_KEY, TRACE_KEY, trace_records
from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn
from chargeback_pipeline.standins.metrics import MetricsStandIn
from chargeback_pipeline_tests.conftest import local_resources, pipeline
from chargeback_pipeline_tests.test_cli import chargeback, last_line

DAY = "2026-11-20"
RATE = 50
CALLER_SETTINGS = {"CHARGEBACK_CALLER_TRACE_KEYS": TRACE_KEY, "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": RATE}


def truth() -> list[dict]:
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE), CallerIdentity((TRACE_KEY,)))
    return source.expected_daily_usage(date.fromisoformat(DAY)).to_pylist()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """What a backfill of DAY published from a Log Analytics workspace (the stand-in, through the real SDK)
    holding the simulated day as the service would: trace records (callers.trace_records, beside a record
    whose content is no caller's) and payload columns; with CHARGEBACK_CALLER_TRACE_KEYS=appid. Backfilled
    in process; the commands below read it as a user would."""
    root = tmp_path_factory.mktemp("callers-la")
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=RATE), CallerIdentity((TRACE_KEY,)))
    start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
    loaded = TimeWindow(start - timedelta(hours=1), start + timedelta(days=1, hours=1))
    gateway = trace_records(simulator.gateway_logs(loaded).rows)
    tables = {
        "ApiManagementGatewayLogs": gateway.append_column("RequestBody", pa.array([NOT_A_CALLER] * gateway.num_rows)),
        "ApiManagementGatewayLlmLog": simulator.llm_logs(loaded).rows,
    }
    with LogAnalyticsStandIn(tables) as logs, MetricsStandIn(simulator.deployment_metrics(loaded).rows) as metrics:
        source = LogAnalyticsSourceResource(
            log_analytics_workspace_id="00000000-0000-0000-0000-00000000ca11",
            log_analytics_endpoint=logs.endpoint,
            metrics_endpoint=metrics.endpoint,
            openai_resource_ids=[account_resource_id(PTU_BACKEND_ID), account_resource_id(PAYGO_BACKEND_ID)],
            log_analytics_retry_total=1,
            log_analytics_retry_backoff_factor=0.01,
            step_retries=0,
            caller_trace_keys=[TRACE_KEY],
        )
        with dg.instance_for_test() as instance:
            backfill(start.date(), start.date(), pipeline(local_resources(root, source)), instance)
        gateway_queries = [q.query for q in logs.received if "ApiManagementGatewayLogs" in q.query]
    assert all(re.findall(r"\bTraceRecords\b", q) == ["TraceRecords"] for q in gateway_queries)
    assert all('dynamic(["appid"])' in q and "RequestBody" not in q for q in gateway_queries)
    return root


def strings_written(root: Path) -> str:
    """Every text the pipeline wrote under `root` (lake, reports): Parquet decoded (its pages are
    compressed), other files as they are."""
    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        else:
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(texts)


def test_no_trace_record_content_but_the_callers_is_written_anywhere(published):
    written = strings_written(published)

    assert NOT_A_CALLER not in written and OTHER_KEY not in written
    assert all(app in written for app in ENTRA_APPS)  # the scan sees what was landed


def published_lines(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / "reports" / "daily" / f"usage_date={DAY}" / f"{name}.parquet").to_pylist()


def report(root: Path, *args: str) -> dict:
    done = chargeback(root, "report", *args, "--format", "json", **CALLER_SETTINGS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_usage_split_by_caller_equals_the_ground_truth(published):
    # The simulated day's ground truth, against what the workspace's logs were turned into.
    verified = chargeback(published, "verify-simulated", DAY, **CALLER_SETTINGS)

    assert verified.returncode == 0, verified.stderr
    assert "matches the simulator's ground truth exactly" in verified.stdout
    assert "matches the simulator's money oracle" in last_line(verified.stdout)
    usage = published_lines(published, "product_usage")
    entra = {r["caller_id"] for r in usage if r["product_id"] == UNASSIGNED and r["calls"]}
    assert entra == set(ENTRA_APPS)  # every Entra-only call is named by its application, none is unknown


def test_the_chargeback_split_by_caller_equals_the_ground_truth_and_adds_up(published):
    by_caller = report(published, DAY, "--by", "caller")

    expected = Counter()
    for row in truth():
        expected[(row["product_id"], row["caller_id"])] += row["total_tokens"]
    charged = Counter()
    for row in by_caller["products"]:
        if row["caller_id"]:  # the chargeback's own lines (unattributed, unused capacity) name no caller
            charged[(row["product_id"], row["caller_id"])] += row["total_tokens"]
    assert charged == +expected
    assert {key for key in charged if key[0] == UNASSIGNED} == {(UNASSIGNED, app) for app in ENTRA_APPS}
    # Every product's callers add up to the product's own chargeback, to the cent.
    cost = Counter()
    for row in by_caller["products"]:
        cost[row["product_id"]] += Decimal(row["total_cost"])
    per_product = Counter()
    for line in published_lines(published, "chargeback"):
        per_product[line["product_id"]] += line["total_cost"]
    assert cost == per_product


def test_the_statement_and_focus_carry_the_caller(published):
    month = report(published, DAY[:7], "--by", "caller")

    per_product = Counter()
    for row in month["products"]:
        per_product[row["product_id"]] += Decimal(row["total_cost"])
    statement = pq.read_table(published / "reports" / "monthly" / f"month={DAY[:7]}" / "statement.parquet")
    assert per_product == {row["product_id"]: row["total_cost"] for row in statement.to_pylist()}
    html = (published / "reports" / "monthly" / f"month={DAY[:7]}" / "statement.html").read_text()
    unassigned_page = html.split(f"<h2>{UNASSIGNED}</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<h3>By caller</h3>" in unassigned_page
    assert all(f"<td>{app}</td>" in unassigned_page for app in ENTRA_APPS)
    focus = published_lines(published, "focus")
    tagged = {json.loads(row["AllocatedTags"]).get("chargeback/caller") for row in focus}
    assert set(ENTRA_APPS) <= tagged


def test_discover_lists_the_trace_record_keys_names_only(tmp_path):
    done = chargeback(tmp_path, "discover", "--days", "1", **CALLER_SETTINGS)

    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Trace-record metadata keys", 1)[1]
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE), CallerIdentity((TRACE_KEY,)))
    for key, records in source.trace_record_keys(TimeWindow(end - timedelta(days=1), end)).items():
        assert re.search(rf"^{re.escape(key)}\s+{records:,}$", listed, re.MULTILINE), listed
    assert not any(app in done.stdout for app in ENTRA_APPS)  # names, never values

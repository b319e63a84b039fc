"""Who called, end to end as a user meets it: the simulated day with caller keys through the `chargeback`
command, its usage and chargeback split by caller held to the simulator's ground truth (computed from the
generated requests, not from the logs), the Entra-only calls (no subscription) split by application."""

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.callers import CallerIdentity
from chargeback_pipeline.sources.simulated import UNASSIGNED, SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.callers import ENTRA_APPS, TRACE_KEY
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
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
    """What a backfill of DAY published with CHARGEBACK_CALLER_TRACE_KEYS=appid (in process: the commands
    below read it as a user would)."""
    root = tmp_path_factory.mktemp("callers-cli")
    source = SimulatedSourceResource(simulated_requests_per_hour=RATE, caller_trace_keys=[TRACE_KEY])
    with dg.instance_for_test() as instance:
        backfill(date.fromisoformat(DAY), date.fromisoformat(DAY), pipeline(local_resources(root, source)), instance)
    return root


def published_lines(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / "reports" / "daily" / f"usage_date={DAY}" / f"{name}.parquet").to_pylist()


def report(root: Path, *args: str) -> dict:
    done = chargeback(root, "report", *args, "--format", "json", **CALLER_SETTINGS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_usage_split_by_caller_equals_the_ground_truth(published):
    verified = chargeback(published, "verify-simulated", DAY, **CALLER_SETTINGS)

    assert verified.returncode == 0, verified.stderr
    assert "matches the simulator's ground truth exactly" in last_line(verified.stdout)
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

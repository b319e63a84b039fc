"""Ingest: one simulated hour pulled through the real `LogsQueryClient` from the local Log Analytics stand-in.

The stand-in runs in its own process and answers every query from a cache after its first answer, so the
timed runs measure the client side only: from the HTTP response to landed Parquet, not the stand-in's
KQL and JSON rendering (which a real workspace does on its own servers).

- pipeline: the real `raw_gateway_logs` and `raw_llm_logs` asset functions over the hour (count query,
  pieces of 100,000 rows, 5 in flight, DuckDB parsing of the answer, typing, rejects, Parquet written);
- floor `sdk_rows`: a plain `LogsQueryClient` asking the same row queries (not the count queries) with
  the same concurrency and returning the SDK's own `LogsQueryResult` rows, nothing more;
- floor `http_bytes`: the same calls returning the raw response body (transfer only, no parsing), read in
  the pipeline's response blocks (1 MiB); `http_bytes_sdk_blocks`: the same in the SDK's default 4 KiB blocks.

Then the pipeline's parts one by one, each over the whole hour in this one thread, so each is that part's
CPU cost: the count queries, the JSON answers parsed by DuckDB, parsed and typed (the rows the pipeline
keeps, plus its rejects), split into rows and rejects, and the hour's Parquet written to the lake.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.harness import REPO, run_child

WORKSPACE = "00000000-0000-0000-0000-0000000be4c7"
GATEWAY_TABLE = "ApiManagementGatewayLogs"
LLM_TABLE = "ApiManagementGatewayLlmLog"
MARGIN = timedelta(minutes=10)


def hour_start(config: dict) -> datetime:
    day = date.fromisoformat(config["day"])
    return datetime(day.year, day.month, day.day, config["hour"], tzinfo=UTC)


# --- the stand-in's process ---------------------------------------------------------------------------


def serve(config: dict) -> None:
    """Serve the hour's simulated tables on loopback; print `PORT n`; stop when stdin closes."""
    from chargeback_pipeline.sources.base import TimeWindow
    from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
    from chargeback_pipeline.standins import send_json
    from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn

    class CachingStandIn(LogAnalyticsStandIn):
        """Answers a query it has answered before from the bytes it sent then."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.answers: dict[tuple, bytes] = {}

        def handle(self, handler, body: bytes) -> None:
            request = json.loads(body or b"{}")
            key = (request.get("query"), request.get("timespan"))
            data = self.answers.get(key)
            if data is None:
                status, payload = self._execute(request)
                if status != 200:
                    send_json(handler, status, payload)
                    return
                data = self.answers[key] = json.dumps(payload, separators=(",", ":")).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

    start = hour_start(config)
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=config["requests_per_hour"]))
    tables = {
        GATEWAY_TABLE: simulator.gateway_logs(TimeWindow(start, start + timedelta(hours=1))).rows,
        LLM_TABLE: simulator.llm_logs(TimeWindow(start - MARGIN, start + timedelta(hours=1) + MARGIN)).rows,
    }
    with CachingStandIn(tables) as standin:
        print(f"PORT {standin.port} {tables[GATEWAY_TABLE].num_rows} {tables[LLM_TABLE].num_rows}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


# --- the measuring process ----------------------------------------------------------------------------


class _NoCredential:
    def get_token(self, *scopes, **kwargs):
        raise RuntimeError("a loopback stand-in is never sent credentials")


def _recording_queries():
    """Record every (query, timespan) LogsQueryClient is asked, by wrapping the class's method."""
    from azure.monitor.query import LogsQueryClient

    calls: list[tuple[str, tuple]] = []
    original = LogsQueryClient.query_workspace

    def recorded(self, workspace_id, query, **kwargs):
        calls.append((query, kwargs.get("timespan")))
        return original(self, workspace_id, query, **kwargs)

    LogsQueryClient.query_workspace = recorded
    return calls, lambda: setattr(LogsQueryClient, "query_workspace", original)


def ingest(config: dict) -> dict:
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.monitor.query import LogsQueryClient

    from bench.stages import ASSETS, call_asset, pipeline_resources
    from chargeback_pipeline.sources.log_analytics.client import RESPONSE_BLOCK_BYTES
    from chargeback_pipeline.sources.log_analytics.resource import LogAnalyticsSourceResource

    start = hour_start(config)
    endpoint = f"http://127.0.0.1:{config['port']}/v1"
    source = {
        "log_analytics_workspace_id": WORKSPACE,
        "log_analytics_endpoint": endpoint,
        "reconcile_with_azure_monitor": False,
    }
    lake = Path(config["workdir"]) / "lake"

    def pipeline() -> float:
        shutil.rmtree(lake, ignore_errors=True)
        # A new source: no client state carried over.
        resources = pipeline_resources(config, LogAnalyticsSourceResource(**source))
        started = time.perf_counter()
        for asset in (ASSETS["raw_gateway_logs"], ASSETS["raw_llm_logs"]):
            call_asset(asset, start, start + timedelta(hours=1), resources)
        return time.perf_counter() - started

    calls, restore = _recording_queries()
    pipeline()  # warm-up: the stand-in renders and caches every answer
    restore()
    row_queries = [(q, span) for q, span in calls if not q.rstrip().endswith("| count")]

    # Loopback: no authentication policy, so the credential is never asked for a token.
    def plain_client(**options) -> LogsQueryClient:
        return LogsQueryClient(_NoCredential(), endpoint=endpoint, authentication_policy=SansIOHTTPPolicy(), **options)

    client = plain_client(connection_data_block_size=RESPONSE_BLOCK_BYTES)
    sdk_block_client = plain_client()  # azure-core's default: 4 KiB blocks

    def sdk_rows() -> tuple[float, int]:
        def one(call):
            result = client.query_workspace(WORKSPACE, call[0], timespan=call[1])
            return len(result.tables[0].rows)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=5) as pool:
            rows = sum(pool.map(one, row_queries))
        return time.perf_counter() - started, rows

    def body_of(call, through: LogsQueryClient) -> bytes:
        received = []

        def body_only(_response, chunks, _headers) -> dict:
            received.append(b"".join(chunks))
            return {"error": None}  # all the SDK looks at before handing back the answer

        through.query_workspace(WORKSPACE, call[0], timespan=call[1], stream=True, cls=body_only)
        return received[0]

    def http_bytes(through: LogsQueryClient) -> tuple[float, int]:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=5) as pool:
            size = sum(len(body) for body in pool.map(lambda call: body_of(call, through), row_queries))
        return time.perf_counter() - started, size

    import pyarrow.parquet as pq

    runs = {"pipeline_s": [], "sdk_rows_s": [], "http_bytes_s": [], "http_bytes_sdk_blocks_s": []}
    rows = body_bytes = 0
    for _ in range(config["repeats"]):
        runs["pipeline_s"].append(pipeline())
        seconds, rows = sdk_rows()
        runs["sdk_rows_s"].append(seconds)
        seconds, body_bytes = http_bytes(client)
        runs["http_bytes_s"].append(seconds)
        runs["http_bytes_sdk_blocks_s"].append(http_bytes(sdk_block_client)[0])
    parts = pipeline_parts(config, client, calls, [body_of(call, client) for call in row_queries], start, lake)
    landed = {
        name: sum(pq.ParquetFile(p).metadata.num_rows for p in (lake / "raw" / name).glob("*/rows.parquet"))
        for name in ("gateway_logs", "llm_logs")
    }
    if landed["gateway_logs"] + landed["llm_logs"] != rows:
        raise RuntimeError(f"the floors returned {rows} rows, the pipeline landed {landed}")
    result = {key: statistics.median(values) for key, values in runs.items()}
    result.update(
        {f"{key}_all": values for key, values in runs.items()},
        rows=rows,
        gateway_rows=landed["gateway_logs"],
        llm_rows=landed["llm_logs"],
        queries=len(calls),
        row_queries=len(row_queries),
        response_mb=body_bytes / 1e6,
        wall_s=result["pipeline_s"],
        parts_cpu_s=parts,
    )
    return result


def pipeline_parts(config: dict, client, calls: list, bodies: list[bytes], start: datetime, lake: Path) -> dict:
    """CPU seconds of each part of the pipeline's landing over the whole hour, one part at a time in this
    thread (medians of the repeats): the SDK's count queries, DuckDB's JSON parse, parse + typing,
    the split into rows and rejects, and the Parquet writes."""
    from chargeback_pipeline.sources.base import TimeWindow
    from chargeback_pipeline.sources.log_analytics.arrow import (
        ArrowAnswer,
        _duckdb_cursor,
        concat_fetched,
        read_answer,
        split_checked,
    )
    from chargeback_pipeline.sources.log_analytics.query import COUNT_SCHEMA
    from chargeback_pipeline.storage.lake import Lake
    from chargeback_pipeline.storage.object_store import LocalObjectStore
    from chargeback_pipeline.storage.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA

    row_calls = [call for call in calls if not call[0].rstrip().endswith("| count")]
    count_calls = [call for call in calls if call[0].rstrip().endswith("| count")]
    schemas = [GATEWAY_LOG_SCHEMA if GATEWAY_TABLE in call[0] else LLM_LOG_SCHEMA for call in row_calls]
    window = TimeWindow(start, start + timedelta(hours=1))
    checked: list = []
    fetched: list = []

    def counts():
        for query, span in count_calls:
            client.query_workspace(WORKSPACE, query, timespan=span, stream=True, cls=ArrowAnswer(COUNT_SCHEMA))

    def parse():
        for body in bodies:
            con = _duckdb_cursor()
            try:
                read_answer(con, body)
            finally:
                con.close()

    def parse_and_type():
        checked.clear()
        for body, schema in zip(bodies, schemas, strict=True):
            answer = ArrowAnswer(schema)
            answer(None, [body], None)
            checked.append(answer.checked)

    def split():
        fetched[:] = [split_checked(c, s, "t", window, "bench") for c, s in zip(checked, schemas, strict=True)]

    def write():
        store = Lake(LocalObjectStore(lake / "parts"))
        for name, schema in (("gateway", GATEWAY_LOG_SCHEMA), ("llm", LLM_LOG_SCHEMA)):
            mine = concat_fetched([f for f, s in zip(fetched, schemas, strict=True) if s is schema], schema)
            store.write(f"raw/{name}/rows.parquet", mine.rows)
            store.write(f"raw/{name}/rejected.parquet", mine.rejected)

    parts: dict[str, list[float]] = {}
    for _ in range(config["repeats"]):
        for name, work in (
            ("count_queries", counts),
            ("json_parse", parse),
            ("json_parse_and_typing", parse_and_type),
            ("split_rows_and_rejects", split),
            ("parquet_write", write),
        ):
            cpu = time.process_time()
            work()
            parts.setdefault(name, []).append(time.process_time() - cpu)
    return {name: statistics.median(values) for name, values in parts.items()}


# --- the parent -------------------------------------------------------------------------------------------


def run_ingest(workdir: Path, day: str, requests_per_day: int, hour: int, repeats: int) -> dict:
    workdir = Path(workdir) / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"workdir": str(workdir), "day": day, "hour": hour, "requests_per_hour": requests_per_day // 24}
    print(f"[{time.strftime('%H:%M:%S')}] ingest: starting the Log Analytics stand-in with hour {hour}", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench", "child", "serve_standin", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(workdir / "standin.log", "w"),  # noqa: SIM115 - closed with the process
        cwd=REPO,
        text=True,
        env={**os.environ},
    )
    try:
        line = server.stdout.readline().split()
        if not line or line[0] != "PORT":
            raise RuntimeError(f"the stand-in did not start (see {workdir / 'standin.log'})")
        config.update(port=int(line[1]), repeats=repeats)
        result = run_child("ingest", config, workdir / "logs")
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    result.update(day=day, hour=hour, requests_per_day=requests_per_day, repeats=repeats)
    print(
        f"[{time.strftime('%H:%M:%S')}] ingest: pipeline {result['pipeline_s']:.2f} s, SDK rows "
        f"{result['sdk_rows_s']:.2f} s, raw bytes {result['http_bytes_s']:.2f} s for {result['rows']:,} rows",
        flush=True,
    )
    return result

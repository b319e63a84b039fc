"""Serve simulated APIM logs and Azure OpenAI metrics through the local Log Analytics and metrics stand-ins.

    python -m chargeback_pipeline.standins --start 2026-01-01T00:00 --end 2026-01-02T00:00

prints the CHARGEBACK_* settings that point the pipeline's log_analytics source at them, then serves
until interrupted.
"""

import argparse
import signal
import threading
from datetime import UTC, datetime

from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.standins.log_analytics import SERVICE_ROW_LIMIT, LogAnalyticsStandIn
from chargeback_pipeline.standins.metrics import MetricsStandIn


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chargeback_pipeline.standins",
        description="Serve tables of the simulated source for a time range through local stand-ins of the "
        "Log Analytics query API and the Azure Monitor metrics batch API.",
    )
    parser.add_argument("--start", type=_utc, required=True, help="first hour, ISO 8601 (UTC if no zone)")
    parser.add_argument("--end", type=_utc, required=True, help="end of the range (exclusive)")
    parser.add_argument("--requests-per-hour", type=int, default=2000, help="simulated gateway requests per hour")
    parser.add_argument("--seed", type=int, default=20260101, help="simulation seed")
    parser.add_argument("--workspace-id", default="00000000-0000-0000-0000-00000000a11a")
    parser.add_argument("--gateway-table", default="ApiManagementGatewayLogs")
    parser.add_argument("--llm-table", default="ApiManagementGatewayLlmLog")
    parser.add_argument("--logs-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--truncate-at", type=int, default=SERVICE_ROW_LIMIT, help="rows after which a result is partial"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each query takes")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    # Imported here so that --help works even while the simulator is being changed.
    from chargeback_pipeline.sources.callers import CallerIdentity
    from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
    from chargeback_pipeline.sources.simulated.callers import TRACE_KEY, trace_records

    window = TimeWindow(args.start, args.end)
    # The gateway table holds the simulated trace records too (sources/simulated/callers.py), as a workspace
    # with a trace policy does: a pipeline with CHARGEBACK_CALLER_TRACE_KEYS=appid reads its callers from them.
    source = SimulatedSource(
        SimulationProfile(requests_per_hour=args.requests_per_hour, seed=args.seed), CallerIdentity((TRACE_KEY,))
    )
    metrics = source.deployment_metrics(window).rows
    logs = LogAnalyticsStandIn(
        {
            args.gateway_table: trace_records(source.gateway_logs(window).rows),
            args.llm_table: source.llm_logs(window).rows,
        },
        workspace_id=args.workspace_id,
        port=args.logs_port,
    )
    logs.truncate_at = args.truncate_at
    logs.delay_seconds = args.delay
    resource_ids = sorted(set(metrics["ResourceId"].to_pylist()))
    with logs, MetricsStandIn(metrics, port=args.metrics_port) as metrics_standin:
        print(f"Serving {window} ({args.requests_per_hour} requests/hour). Settings for the pipeline:")
        print("CHARGEBACK_SOURCE=log_analytics")
        print(f"CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID={args.workspace_id}")
        print(f"CHARGEBACK_LOG_ANALYTICS_ENDPOINT={logs.endpoint}")
        print(f"CHARGEBACK_METRICS_ENDPOINT={metrics_standin.endpoint}")
        print(f"CHARGEBACK_OPENAI_RESOURCE_IDS={','.join(resource_ids)}")
        print(f"CHARGEBACK_GATEWAY_TABLE={args.gateway_table}")
        print(f"CHARGEBACK_LLM_TABLE={args.llm_table}")
        print("Ctrl-C stops.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()


if __name__ == "__main__":
    main()

"""A hand-made Log Analytics export with every data hazard, and the report it must produce."""

import gzip
import json
from pathlib import Path

DAY = "2026-03-10"
HOSTILE_PRODUCT = 'gamma, "the" big\nproduct ü'
PTU, PAYGO = "aoai-ptu-eastus", "aoai-paygo-eastus"


def gateway(correlation_id, time, product, success=True, backend=PTU, subscription="sub-1", **extra):
    return {
        "TimeGenerated": f"{DAY}T{time}Z" if "T" not in time else time,
        "CorrelationId": correlation_id,
        "IsRequestSuccess": success,
        "ProductId": product,
        "ApimSubscriptionId": subscription if product else "",
        "UserId": "user-1",
        "ApiId": "azure-openai",
        "OperationId": "chat-completions",
        "BackendId": backend,
        "Region": "East US",
        "CallerIpAddress": "203.0.113.9",  # present in exports; must never be landed
        "Cache": "none",
        "ResponseCode": 200 if success else 500,
        "BackendResponseCode": 200 if success else 500,
        "TotalTime": 900,
        "BackendTime": 850,
        "RequestBody": "{secret payload}",  # extra columns are ignored
        **extra,
    }


def llm(correlation_id, time, prompt, completion, sequence=0, model="gpt-4.1", deployment="gpt-4.1"):
    return {
        "ModelName": model,  # key order differs from the gateway rows on purpose
        "TimeGenerated": f"{DAY}T{time}Z" if "T" not in time else time,
        "CorrelationId": correlation_id,
        "RequestId": f"req-{correlation_id}",
        "DeploymentName": deployment,
        "OperationName": "Chat_Completions_Create",
        "ApiVersion": "2025-01-01",
        "Region": "East US",
        "PromptTokens": prompt if sequence == 0 else 0,
        "CompletionTokens": completion if sequence == 0 else 0,
        "TotalTokens": prompt + completion if sequence == 0 else 0,
        "SequenceNumber": sequence,
        "IsStreamCompletion": False,
        "RequestMessages": [{"role": "user", "content": "never landed"}],
    }


GATEWAY_ROWS = [
    gateway("c-01", "08:15:00.1234567", "alpha"),
    gateway("c-01", "08:15:00.1234567", "alpha"),  # the same record pulled twice
    gateway("c-02", "09:00:00", "alpha"),
    gateway("c-03", "09:30:00", ""),  # API without subscription -> unassigned
    gateway("c-04", "10:00:00", "beta", success=False),  # failed, has an LLM record
    gateway("c-05", "10:05:00", "beta", success=False),  # failed, no LLM record
    gateway("c-06", "10:10:00", "beta", OperationId="list-deployments"),  # non-LLM call
    gateway("c-07", "10:59:59.500", "alpha"),  # its LLM record is logged in the next hour
    gateway("c-08", "12:00:00.500", "alpha"),  # its LLM record is logged in the previous hour
    gateway("c-10", "13:00:00", HOSTILE_PRODUCT, backend=PAYGO, subscription="sub-9"),
    gateway("c-11", "23:59:59.900", "alpha"),  # LLM record lands on the next day
]
LLM_ROWS = [
    llm("c-01", "08:15:01", 100, 20),
    llm("c-01", "08:15:01", 100, 20),  # duplicate
    llm("c-02", "09:00:01", 200, 50),
    llm("c-02", "09:00:01", 200, 50, sequence=1),  # chunks carry no tokens
    llm("c-02", "09:00:01", 200, 50, sequence=2),
    llm("c-03", "09:30:01", 10, 5),
    llm("c-04", "10:00:01", 30, 0),
    llm("c-07", "11:00:02", 40, 10),
    llm("c-08", "11:59:58", 7, 3),
    llm("c-09", "12:30:00", 999, 999),  # orphan: no gateway row
    llm("c-10", "13:00:01", 5, 5, model="gpt-4o", deployment="gpt-4o"),
    llm("c-11", "2026-03-11T00:00:03Z", 1, 1),
]

# The report the pipeline must publish for DAY (product, subscription, model, deployment, backend, p, c, calls, failed)
EXPECTED_REPORT = [
    ("alpha", "sub-1", "gpt-4.1", "gpt-4.1", PTU, 100 + 200 + 40 + 7 + 1, 20 + 50 + 10 + 3 + 1, 5, 0),
    ("beta", "sub-1", "gpt-4.1", "gpt-4.1", PTU, 0, 0, 0, 1),
    ("beta", "sub-1", "unknown", "unknown", PTU, 0, 0, 0, 1),
    (HOSTILE_PRODUCT, "sub-9", "gpt-4o", "gpt-4o", PAYGO, 5, 5, 1, 0),
    ("unassigned", "unassigned", "gpt-4.1", "gpt-4.1", PTU, 10, 5, 1, 0),
]


# The days the tests' runs reach (the day before and after DAY too: margins, lookbacks, catch-up).
EXPORTED_DAYS = ("2026-03-09", DAY, "2026-03-11")
NO_METRICS = "hand-made export: no Azure Monitor metrics, reconciliation not possible"


def write_export(root: Path, gateway_rows=GATEWAY_ROWS, llm_rows=LLM_ROWS) -> Path:
    """Write the rows the way exports arrive: nested folders, .jsonl.gz, .jsonl and .json files; and, as an
    exporter does, declare every hour of EXPORTED_DAYS in which a table had no row (`_EMPTY_` markers)."""
    gateway_dir = root / "ApiManagementGatewayLogs" / "y=2026" / "m=03"
    llm_dir = root / "ApiManagementGatewayLlmLog"
    gateway_dir.mkdir(parents=True, exist_ok=True)
    llm_dir.mkdir(parents=True, exist_ok=True)
    half = len(gateway_rows) // 2
    with gzip.open(gateway_dir / "part-1.jsonl.gz", "wt", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in gateway_rows[:half])
    (gateway_dir / "part-2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gateway_rows[half:]))
    (llm_dir / "llm.json").write_text("".join(json.dumps(r) + "\n" for r in llm_rows))
    declare_quiet_hours(root / "ApiManagementGatewayLogs", gateway_rows)
    declare_quiet_hours(root / "ApiManagementGatewayLlmLog", llm_rows)
    metrics_dir = root / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for day in EXPORTED_DAYS:
        (metrics_dir / f"_EMPTY_{day}").write_text(NO_METRICS)
    return root


def declare_quiet_hours(folder: Path, rows: list[dict], days=EXPORTED_DAYS) -> None:
    """An `_EMPTY_<day>` marker for each day without rows, `_EMPTY_<day>T<hour>` for each quiet hour."""
    busy = {str(row.get("TimeGenerated"))[:13] for row in rows}
    for day in days:
        quiet = [f"{day}T{hour:02}" for hour in range(24) if f"{day}T{hour:02}" not in busy]
        for period in [day] if len(quiet) == 24 else quiet:
            (folder / f"_EMPTY_{period}").write_text("no requests in this period")

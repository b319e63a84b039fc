"""Child side: the floors the pipeline is compared with, on the very Parquet files it landed.

- `duckdb_single`: one bare DuckDB query, dedupe + join + daily rollup over the day's 24 gateway and 24
  LLM files (the LLM files overlap by the join margin; the dedupe removes that too).
- `duckdb_hourly`: the same in 24 hourly slices (hour h's gateway file joined with LLM file h), partial
  rollups combined at the end: what bounds memory.
- `scan_only`: reading and filtering the needed columns, nothing else.
- `pandas`: the same rollup as a notebook user would write it in pandas (default dtypes).

Each returns the rollup's row count and totals, which the parent compares with the pipeline's own
daily_product_usage: a floor that computed something else would be no floor.
No quarantine rules, no reconciliation, no per-request output, no deterministic choice between copies
that differ (DISTINCT assumes exact copies): the floors do strictly less than the pipeline.
"""

import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from bench.common import day_window, paths

GATEWAY_COLUMNS = ["TimeGenerated", "CorrelationId", "IsRequestSuccess", "ProductId", "ApimSubscriptionId", "BackendId"]
LLM_COLUMNS = [
    "TimeGenerated", "CorrelationId", "RequestId", "SequenceNumber", "ModelName", "DeploymentName",
    "PromptTokens", "CompletionTokens",
]  # fmt: skip
KEYS = ["usage_date", "product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]


def day_files(config: dict) -> tuple[list[str], list[str]]:
    lake = paths(config)["lake"]
    day = config["day"]
    gateway = sorted(str(p) for p in (lake / "raw/gateway_logs").glob(f"hour={day}T*/rows.parquet"))
    llm = sorted(str(p) for p in (lake / "raw/llm_logs").glob(f"hour={day}T*/rows.parquet"))
    if len(gateway) != 24 or len(llm) != 24:
        raise RuntimeError(f"expected 24 landed hours of {day} in {lake}, found {len(gateway)} / {len(llm)}")
    return gateway, llm


def _rollup_sql(gateway: str, llm: str) -> str:
    """Requests rolled up per product key over the relations `gateway` and `llm`, the way a user writes it
    when re-pulled rows are exact copies (as they are here): DISTINCT removes them, the join attributes.
    (Of the formulations tried - arg_min per CorrelationId, GROUP BY with any_value - the fastest.)"""
    return f"""
        with requests as (
            select distinct CorrelationId, TimeGenerated, IsRequestSuccess, ProductId, ApimSubscriptionId,
                BackendId
            from {gateway}
            where TimeGenerated >= $start and TimeGenerated < $end
        ),
        llm_requests as (
            select CorrelationId, min(ModelName) as model_name, min(DeploymentName) as deployment_name,
                sum(PromptTokens) as prompt_tokens, sum(CompletionTokens) as completion_tokens
            from (
                select distinct CorrelationId, RequestId, ModelName, DeploymentName, PromptTokens, CompletionTokens
                from {llm}
                where SequenceNumber = 0
            )
            group by CorrelationId
        ),
        attributed as (
            select r.TimeGenerated as request_time,
                   coalesce(nullif(r.ProductId, ''), 'unassigned') as product_id,
                   coalesce(nullif(r.ApimSubscriptionId, ''), 'unassigned') as subscription_id,
                   coalesce(l.model_name, 'unknown') as model_name,
                   coalesce(l.deployment_name, 'unknown') as deployment_name,
                   coalesce(nullif(r.BackendId, ''), 'unknown') as backend_id,
                   r.IsRequestSuccess as is_success,
                   r.IsRequestSuccess and l.CorrelationId is not null as is_billable,
                   coalesce(l.prompt_tokens, 0) as prompt_tokens,
                   coalesce(l.completion_tokens, 0) as completion_tokens
            from requests r left join llm_requests l using (CorrelationId)
        )
        select cast(request_time as date) as usage_date, product_id, subscription_id, model_name,
               deployment_name, backend_id,
               coalesce(sum(prompt_tokens) filter (where is_billable), 0)::bigint as prompt_tokens,
               coalesce(sum(completion_tokens) filter (where is_billable), 0)::bigint as completion_tokens,
               count(*) filter (where is_billable) as calls,
               count(*) filter (where not is_success) as failed_calls,
               min(request_time) as first_seen,
               max(request_time) as last_seen
        from attributed
        where is_billable or not is_success
        group by all
    """


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")  # no ORDER BY anywhere: let DuckDB stream
    return con


def _totals(con, relation: str) -> dict:
    rows, tokens, calls, failed = con.sql(
        f"select count(*), sum(prompt_tokens + completion_tokens), sum(calls), sum(failed_calls) from {relation}"
    ).fetchall()[0]
    return {"output_rows": rows, "total_tokens": int(tokens), "calls": int(calls), "failed_calls": int(failed)}


def _file_list(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"


def duckdb_single(config: dict) -> dict:
    gateway, llm = day_files(config)
    start, end = day_window(date.fromisoformat(config["day"]))
    con = _connect()
    started = time.perf_counter()
    con.execute(
        f"create temp table usage as {_rollup_sql(_file_list(gateway), _file_list(llm))}",
        {"start": start, "end": end},
    )
    wall = time.perf_counter() - started
    return {"wall_s": wall, **_totals(con, "usage")}


def duckdb_hourly(config: dict) -> dict:
    gateway, llm = day_files(config)
    start, _end = day_window(date.fromisoformat(config["day"]))
    con = _connect()
    started = time.perf_counter()
    for hour, (gateway_file, llm_file) in enumerate(zip(gateway, llm, strict=True)):
        sql = _rollup_sql(_file_list([gateway_file]), _file_list([llm_file]))
        verb = "create temp table partial as" if hour == 0 else "insert into partial"
        # Each hour's own window: its gateway file spans the join margins, which belong to the hours beside it.
        window = {"start": start + timedelta(hours=hour), "end": start + timedelta(hours=hour + 1)}
        con.execute(f"{verb} {sql}", window)
    con.execute(
        """create temp table usage as
           select usage_date, product_id, subscription_id, model_name, deployment_name, backend_id,
                  sum(prompt_tokens)::bigint as prompt_tokens, sum(completion_tokens)::bigint as completion_tokens,
                  sum(calls) as calls, sum(failed_calls) as failed_calls,
                  min(first_seen) as first_seen, max(last_seen) as last_seen
           from partial group by all"""
    )
    wall = time.perf_counter() - started
    return {"wall_s": wall, **_totals(con, "usage")}


def scan_only(config: dict) -> dict:
    gateway, llm = day_files(config)
    start, end = day_window(date.fromisoformat(config["day"]))
    con = _connect()
    started = time.perf_counter()
    gateway_rows = con.execute(
        f"select count(*), min(CorrelationId), min(ProductId), min(ApimSubscriptionId), min(BackendId), "
        f"bool_and(IsRequestSuccess) from {_file_list(gateway)} where TimeGenerated >= $start and TimeGenerated < $end",
        {"start": start, "end": end},
    ).fetchall()[0][0]
    llm_rows = con.execute(
        f"select count(*), min(CorrelationId), min(RequestId), min(SequenceNumber), min(ModelName), "
        f"min(DeploymentName), sum(PromptTokens), sum(CompletionTokens), max(TimeGenerated) from {_file_list(llm)}"
    ).fetchall()[0][0]
    wall = time.perf_counter() - started
    return {"wall_s": wall, "gateway_rows": gateway_rows, "llm_rows": llm_rows}


def pandas_rollup(config: dict) -> dict:
    import pandas as pd

    gateway, llm = day_files(config)
    start, end = day_window(date.fromisoformat(config["day"]))
    started = time.perf_counter()
    g = pd.concat([pd.read_parquet(f, columns=GATEWAY_COLUMNS) for f in gateway], ignore_index=True)
    g = g[(g["TimeGenerated"] >= start) & (g["TimeGenerated"] < end)]
    g = g.sort_values("TimeGenerated", kind="stable").drop_duplicates("CorrelationId")
    records = pd.concat([pd.read_parquet(f, columns=LLM_COLUMNS) for f in llm], ignore_index=True)
    records = records.sort_values("TimeGenerated", kind="stable").drop_duplicates(
        ["CorrelationId", "RequestId", "SequenceNumber"]
    )
    first = records[records["SequenceNumber"] == 0]
    per_request = first.groupby("CorrelationId").agg(
        model_name=("ModelName", "min"),
        deployment_name=("DeploymentName", "min"),
        prompt_tokens=("PromptTokens", "sum"),
        completion_tokens=("CompletionTokens", "sum"),
    )
    m = g.merge(per_request, how="left", left_on="CorrelationId", right_index=True)
    has_llm = m["model_name"].notna()
    success = m["IsRequestSuccess"]
    billable = success & has_llm
    m = m[billable | ~success].copy()
    billable = billable[m.index]
    m["usage_date"] = m["TimeGenerated"].dt.date
    m["product_id"] = m["ProductId"].replace("", "unassigned")
    m["subscription_id"] = m["ApimSubscriptionId"].replace("", "unassigned")
    m["backend_id"] = m["BackendId"].replace("", "unknown")
    m["model_name"] = m["model_name"].fillna("unknown")
    m["deployment_name"] = m["deployment_name"].fillna("unknown")
    m["prompt_tokens"] = m["prompt_tokens"].where(billable, 0).astype("int64")
    m["completion_tokens"] = m["completion_tokens"].where(billable, 0).astype("int64")
    m["calls"] = billable.astype("int64")
    m["failed_calls"] = (~m["IsRequestSuccess"]).astype("int64")
    usage = (
        m.groupby(KEYS)
        .agg(
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            calls=("calls", "sum"),
            failed_calls=("failed_calls", "sum"),
            first_seen=("TimeGenerated", "min"),
            last_seen=("TimeGenerated", "max"),
        )
        .reset_index()
    )
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "output_rows": len(usage),
        "total_tokens": int(usage["prompt_tokens"].sum() + usage["completion_tokens"].sum()),
        "calls": int(usage["calls"].sum()),
        "failed_calls": int(usage["failed_calls"].sum()),
    }


FLOORS = {
    "duckdb_single": duckdb_single,
    "duckdb_hourly": duckdb_hourly,
    "scan_only": scan_only,
    "pandas": pandas_rollup,
}


def pipeline_totals(config: dict) -> dict | None:
    """The pipeline's own daily_product_usage totals, to check the floors computed the same rollup."""
    path = paths(config)["lake"] / f"daily_product_usage/usage_date={config['day']}/rows.parquet"
    if not Path(path).is_file():
        return None
    con = _connect()
    con.execute(f"create temp table usage as select * from read_parquet('{path}')")
    return _totals(con, "usage")

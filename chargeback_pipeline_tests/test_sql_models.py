"""The SQL models of `dbt_like_sql/` against their documentation, the `_*__models.yml` of each folder.

Every model has exactly one yml entry and every entry a model. Every model is then compiled and run with
`chargeback_pipeline.storage.sql` in DuckDB, as the pipeline runs it, over two hours of small hand-made
raw logs: the hourly models over each hour's raw relations and what the attribution writes for the hour,
the daily models over those hours' outputs. Each output's columns must be the documented ones, in order,
and the yml's data tests (not_null, unique, accepted_values, dbt_utils.unique_combination_of_columns) must
hold on every partition (each hour of an hourly model, the day of a daily one).

An entry's `config.meta.partition` says which: `hour` or `day`. The relations the models read are named as
the pipeline names them (see `run_hour` and `run_day`); a new model that reads another relation needs it
added there.
"""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from chargeback_pipeline.core.attribution import (
    ATTRIBUTED_MODEL,
    DAILY_USAGE_MODEL,
    LOGGED_TOKENS_MODEL,
    ROW_COUNTS_MODEL,
    STAGING_MODELS,
)
from chargeback_pipeline.core.reconciliation import HOURLY_MODEL
from chargeback_pipeline.core.topology import NO_TOPOLOGY
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.resources import SqlEngineOutOfMemory, SqlEngineResource
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_CALLER_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)

DAY = date(2026, 3, 10)
HOURS = (datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 10, tzinfo=UTC))
HOUR = timedelta(hours=1)
# The LLM log of an hour is pulled with a margin on both sides; the completeness check's core of the hour
# stays this far from its edges.
MARGIN = timedelta(minutes=10)
KNOWN_DEPLOYMENTS = ["gpt-paygo", "gpt-ptu"]
GATEWAY_TABLE, LLM_TABLE = "ApiManagementGatewayLogs", "ApiManagementGatewayLlmLog"

# The models as the pipeline names them (the hour's staging chain: the ephemeral models are not built, only
# inlined).
RECONCILIATION_MODEL = HOURLY_MODEL
# The raw logs read with their hour (sql.PARTITION_HOUR), as the attribution reads them.
RAW_LOGS = ("raw_gateway_logs", "raw_llm_logs", "raw_gateway_rejected", "raw_llm_rejected")
PARTITIONS = ("hour", "day")


# --- the models and their documentation ----------------------------------------------------------------


def sql_models() -> list[str]:
    return sorted(path.relative_to(sql.SQL_DIR).with_suffix("").as_posix() for path in sql.SQL_DIR.rglob("*.sql"))


def yml_files() -> list[Path]:
    return sorted(sql.SQL_DIR.rglob("*.yml"))


@cache
def yml_entries() -> tuple[tuple[str, dict], ...]:
    """Every yml entry as (model path, entry): the path is the yml's folder and the entry's name."""
    entries = []
    for path in yml_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        folder = path.parent.relative_to(sql.SQL_DIR).as_posix()
        entries += [(f"{folder}/{entry['name']}", entry) for entry in document.get("models") or []]
    return tuple(entries)


def documented(model: str) -> dict:
    found = [entry for path, entry in yml_entries() if path == model]
    if len(found) != 1:
        pytest.fail(f"{model} has {len(found)} yml entries, not one")
    return found[0]


def partition_of(entry: dict) -> str:
    return ((entry.get("config") or {}).get("meta") or {}).get("partition")


def test_every_model_has_one_yml_entry_and_every_entry_a_model():
    models = sql_models()
    entries = Counter(path for path, _ in yml_entries())
    assert models, f"no SQL model under {sql.SQL_DIR}"
    assert [path for path, count in entries.items() if count > 1] == [], "models with several yml entries"
    assert sorted(set(models) - set(entries)) == [], "models without a yml entry"
    assert sorted(set(entries) - set(models)) == [], "yml entries without a model (or in another folder's yml)"
    # sql.py inlines ephemeral models by file name: one name in two folders would be ambiguous.
    names = Counter(sql.model_name(model) for model in models)
    assert [name for name, count in names.items() if count > 1] == []


def test_yml_files_are_in_dbt_schema_shape():
    assert yml_files(), "no yml file"
    for path in yml_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document.get("version") == 2, path
        assert isinstance(document.get("models"), list), path
    for model, entry in yml_entries():
        assert str(entry.get("description") or "").strip(), f"{model} has no description"
        assert partition_of(entry) in PARTITIONS, f"{model}: config.meta.partition must be one of {PARTITIONS}"
        columns = entry.get("columns") or []
        assert columns, f"{model} documents no column"
        names = [column["name"] for column in columns]
        assert len(names) == len(set(names)), f"{model} documents a column twice"
        for column in columns:
            assert str(column.get("description") or "").strip(), f"{model}.{column['name']} has no description"


# --- two hours of raw logs ---------------------------------------------------------------------------------


def gateway_row(hour: datetime, cid: str | None, minutes: float, success: bool | None = True, **more) -> dict:
    code = 200 if success or success is None else 500
    return {
        "TimeGenerated": hour + timedelta(minutes=minutes),
        "CorrelationId": cid,
        "IsRequestSuccess": success,
        "ProductId": "product-alpha",
        "ApimSubscriptionId": "sub-alpha-1",
        "UserId": "1",
        "ApiId": "azure-openai",
        "OperationId": "ChatCompletions_Create",
        "BackendId": "aoai-ptu",
        "Region": "Sweden Central",
        "Cache": "none",
        "ResponseCode": code,
        "BackendResponseCode": code,
        "TotalTime": 1_800,
        "BackendTime": 1_750,
        **more,
    }


def llm_row(
    hour: datetime, cid: str | None, minutes: float, prompt: int | None, completion: int | None, **more
) -> dict:
    return {
        "TimeGenerated": hour + timedelta(minutes=minutes),
        "CorrelationId": cid,
        "RequestId": f"chatcmpl-{cid or minutes}",
        "DeploymentName": "gpt-ptu",
        "ModelName": "gpt-4.1",
        "OperationName": "ChatCompletions_Create",
        "ApiVersion": "2024-10-21",
        "Region": "Sweden Central",
        "PromptTokens": prompt,
        "CompletionTokens": completion,
        "TotalTokens": None if prompt is None or completion is None else prompt + completion,
        "SequenceNumber": 0,
        "IsStreamCompletion": False,
        **more,
    }


def hour_traffic(hour: datetime) -> tuple[list[dict], list[dict]]:
    """The gateway rows and LLM records of the requests the gateway logged in `hour` (an LLM record can
    be logged just before or after it), and rows no check should trust."""
    h = f"{hour:%H}"
    gateway = [
        gateway_row(hour, f"{h}-c1", 5),
        gateway_row(hour, f"{h}-c1", 5),  # pulled twice
        gateway_row(hour, f"{h}-c2", 20, ProductId="product-beta", ApimSubscriptionId="sub-beta-1"),
        gateway_row(hour, f"{h}-c3", 30, success=False),  # failed, still logged by the LLM log
        gateway_row(hour, f"{h}-c4", 59.9),  # its LLM record is logged after the hour
        gateway_row(hour, f"{h}-c6", -5.1),  # the previous hour's request, its LLM record in this hour's margin
        gateway_row(hour, f"{h}-c8", 50, ProductId="", ApimSubscriptionId=None, BackendId=None),  # no LLM record
        gateway_row(hour, f"{h}-c9", 12, success=False),  # pulled twice, once as a failure
        gateway_row(hour, f"{h}-c9", 12, BackendId="aoai-paygo"),
        gateway_row(hour, f"{h}-c11", 25),  # its SequenceNumber 0 record is missing
    ]
    llm = [
        llm_row(hour, f"{h}-c1", 5, 100, 10),
        llm_row(hour, f"{h}-c1", 5, 100, 10),  # pulled twice
        llm_row(hour, f"{h}-c2", 20, 200, 20),
        llm_row(hour, f"{h}-c2", 20.5, 0, 0, SequenceNumber=1),  # a later chunk
        llm_row(hour, f"{h}-c2", 21, 5, 5, SequenceNumber=2),  # a later chunk that carries tokens
        llm_row(hour, f"{h}-c3", 30, 300, 0),
        llm_row(hour, f"{h}-c4", 60.2, 400, 40),
        llm_row(hour, f"{h}-c6", -5, 700, 70),
        llm_row(hour, f"{h}-c7", 45, 800, 80, DeploymentName="gpt-paygo"),  # no gateway row: bypass or lost
        llm_row(hour, f"{h}-c9", 12, 50, 5, DeploymentName="gpt-paygo", ModelName=None),
        llm_row(hour, f"{h}-c11", 25.5, 0, 0, SequenceNumber=1),
        # untrusted LLM rows
        llm_row(hour, None, 33, 10, 1),
        llm_row(hour, "", 33, 10, 1),
        llm_row(hour, "bad id!", 33, 10, 1),
        llm_row(hour, f"{h}-q1", 34, 10, 1, SequenceNumber=None),
        llm_row(hour, f"{h}-q2", 34, 10, 1, SequenceNumber=-1),
        llm_row(hour, f"{h}-q3", 35, -10, 1),
        llm_row(hour, f"{h}-q4", 35, 10, None),
        llm_row(hour, f"{h}-q5", 36, 10, 1, DeploymentName=" "),
        llm_row(hour, f"{h}-q6", 36, 10, 1, DeploymentName="gpt-legacy"),
        llm_row(hour, f"{h}-q7", 62, 10, 1, DeploymentName=None),  # in the margin: reported by the next hour
    ]
    if hour == HOURS[0]:  # one hour with untrusted gateway rows and a request on two deployments, one without
        gateway += [
            gateway_row(hour, None, 15),
            gateway_row(hour, "   ", 16),
            gateway_row(hour, "bad id!", 17),
            gateway_row(hour, f"{h}-q8", 18, success=None),
            gateway_row(hour, f"{h}-c5", 40),
        ]
        llm += [
            llm_row(hour, f"{h}-c5", 40, 500, 50, RequestId="chatcmpl-a"),
            llm_row(hour, f"{h}-c5", 40, 600, 60, RequestId="chatcmpl-b", DeploymentName="gpt-paygo"),
        ]
    return gateway, llm


def rejects(hour: datetime) -> tuple[list[dict], list[dict]]:
    """Rows the sources could not type, placed at their own time."""

    def reject(table: str, minutes: float, reason: str) -> dict:
        placed_at = hour + timedelta(minutes=minutes)
        record = f'{{"TimeGenerated": "{placed_at.isoformat()}", "PromptTokens": "many"}}'
        return {
            "source_table": table,
            "reason": reason,
            "origin": "workspace",
            "record": record,
            "placed_at": placed_at,
        }

    gateway = [reject(GATEWAY_TABLE, 3, "ResponseCode is not a valid int32")]
    llm = [
        reject(LLM_TABLE, 31, "PromptTokens is not a valid int64"),
        reject(LLM_TABLE, -4, "PromptTokens is not a valid int64"),  # the previous hour's, in the margin
    ]
    return gateway, llm


def metrics(hour: datetime) -> list[dict]:
    def metric(deployment: str, name: str, total: int) -> dict:
        resource = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/{deployment}"
        return {
            "TimeStamp": hour,
            "ResourceId": resource,
            "ModelDeploymentName": deployment,
            "MetricName": name,
            "Total": total,
        }

    rows = [metric("gpt-ptu", "ProcessedPromptTokens", 2_500), metric("gpt-ptu", "GeneratedTokens", 200)]
    if hour == HOURS[0]:  # metered less than logged: clipped
        rows += [metric("gpt-paygo", "ProcessedPromptTokens", 900), metric("gpt-paygo", "GeneratedTokens", 60)]
    else:  # metered, never logged (traffic that bypassed APIM); gpt-paygo logged without metrics
        rows += [metric("gpt-direct", "ProcessedPromptTokens", 300), metric("gpt-direct", "GeneratedTokens", 30)]
    return rows


def within(rows: list[dict], column: str, start: datetime, end: datetime) -> list[dict]:
    return [row for row in rows if start <= row[column] < end]


def raw_relations(hour: datetime) -> dict[str, pa.Table]:
    """The hour's landed raw tables: the gateway log of the hour, the LLM log with its margin, the metrics
    of the hour and each log's rejects (placed in the window the source pulled)."""
    gateway, llm, gateway_rejected, llm_rejected = [], [], [], []
    for traffic_hour in HOURS:
        rows, records = hour_traffic(traffic_hour)
        gateway += rows
        llm += records
        rejected_rows, rejected_records = rejects(traffic_hour)
        gateway_rejected += rejected_rows
        llm_rejected += rejected_records
    start, end_with_margin = hour - MARGIN, hour + HOUR + MARGIN
    return {
        "raw_gateway_logs": pa.Table.from_pylist(  # with CallerId (null: no caller named), as with caller keys
            within(gateway, "TimeGenerated", hour, hour + HOUR), GATEWAY_CALLER_LOG_SCHEMA
        ),
        "raw_llm_logs": pa.Table.from_pylist(within(llm, "TimeGenerated", start, end_with_margin), LLM_LOG_SCHEMA),
        "raw_deployment_metrics": pa.Table.from_pylist(metrics(hour), DEPLOYMENT_METRICS_SCHEMA),
        "raw_gateway_rejected": pa.Table.from_pylist(
            within(gateway_rejected, "placed_at", hour, hour + HOUR), SOURCE_REJECT_SCHEMA
        ),
        "raw_llm_rejected": pa.Table.from_pylist(
            within(llm_rejected, "placed_at", start, end_with_margin), SOURCE_REJECT_SCHEMA
        ),
    }


# --- running the models as the pipeline does ---------------------------------------------------------------


def models_of(partition: str) -> list[str]:
    return [model for model, entry in yml_entries() if partition_of(entry) == partition and model in sql_models()]


def run_hour(hour: datetime, workdir: Path) -> tuple[dict[str, pa.Table], Path]:
    """Every hourly model's rows for `hour`, over the relations and with the parameters the attribution
    gives them, and the hour's attributed_requests written as the attribution writes it."""
    con = sql.connect()
    try:
        params = {
            "window_start": hour,
            "window_end": hour + HOUR,
            "known_deployments": KNOWN_DEPLOYMENTS,
            "core_margin": MARGIN,
        }
        # The raw logs tagged with their hour, as the attribution reads them (core.attribution.stage_hours).
        relations = {
            name: sql.by_partition_hour({hour: relation}) if name in RAW_LOGS else relation
            for name, relation in raw_relations(hour).items()
        }
        sql.build_models(con, STAGING_MODELS, relations, params)
        ((several,),) = con.execute("select count(*) from int_llm_requests where names_several_deployments").fetchall()
        params["has_requests_on_several_deployments"] = several > 0
        attributed = workdir / f"attributed_requests_{hour:%Y%m%d%H}.parquet"
        sql.copy_model(con, ATTRIBUTED_MODEL, params, attributed, exclude=(sql.PARTITION_HOUR,))
        # The hour's written requests under their lake name, with the hour as the attribution's own models
        # read them (its measures, logged tokens...), which the other hourly models do not read.
        sql.register(con, "attributed_requests", sql.by_partition_hour({hour: sql.ParquetFiles((str(attributed),))}))
        ((trusted_gateway_rows,),) = con.execute(
            "select coalesce(sum(gateway_records), 0) from attributed_requests"
        ).fetchall()
        (raw_rows,) = sql.select_model(con, ROW_COUNTS_MODEL, params).drop_columns([sql.PARTITION_HOUR]).to_pylist()
        params["gateway_has_untrusted_rows"] = raw_rows["gateway_rows"] != trusted_gateway_rows
        params["llm_has_untrusted_rows"] = raw_rows["llm_rows"] != raw_rows["trusted_llm_rows"]
        logged_tokens = sql.select_model(con, LOGGED_TOKENS_MODEL, params).drop_columns([sql.PARTITION_HOUR])
        sql.register(con, "hourly_logged_tokens", logged_tokens)
        # No pricing file: backends are the resources' account names (core.topology).
        for name, relation in NO_TOPOLOGY.relations().items():
            sql.register(con, name, relation)
        return {model: sql.select_model(con, model, params) for model in models_of("hour")}, attributed
    finally:
        con.close()


def run_day(attributed: list[Path], reconciliation: list[pa.Table]) -> dict[str, pa.Table]:
    """Every daily model's rows for DAY, over its hours' attributed requests and reconciliation."""
    con = sql.connect()
    try:
        params = {"usage_date": DAY}
        sql.build_models(
            con,
            [],
            {
                "attributed_requests": sql.ParquetFiles(tuple(str(path) for path in attributed)),
                "deployment_reconciliation": pa.concat_tables(reconciliation),
            },
        )
        sql.register(con, "daily_product_usage", sql.select_model(con, DAILY_USAGE_MODEL, params))
        return {model: sql.select_model(con, model, params) for model in models_of("day")}
    finally:
        con.close()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, list[tuple[str, pa.Table]]]:
    """Every documented model's rows, partition by partition: (partition, rows)."""
    workdir = tmp_path_factory.mktemp("lake")
    found: dict[str, list[tuple[str, pa.Table]]] = {}
    attributed = []
    for hour in HOURS:
        rows, path = run_hour(hour, workdir)
        attributed.append(path)
        for model, table in rows.items():
            found.setdefault(model, []).append((hour.isoformat(), table))
    reconciliation = [table for _, table in found[RECONCILIATION_MODEL]]
    for model, table in run_day(attributed, reconciliation).items():
        found.setdefault(model, []).append((DAY.isoformat(), table))
    return found


def partitions(outputs: dict, model: str) -> list[tuple[str, pa.Table]]:
    documented(model)
    assert model in outputs, f"{model} was not run: its yml entry needs config.meta.partition (hour or day)"
    return outputs[model]


@pytest.mark.parametrize("model", sql_models())
def test_model_columns_are_the_documented_ones(outputs, model):
    columns = [column["name"] for column in documented(model)["columns"]]
    for partition, table in partitions(outputs, model):
        assert table.column_names == columns, f"{model} ({partition})"
        # Data tests over no rows would prove nothing: the hand-made logs give every model rows.
        assert table.num_rows > 0, f"{model} ({partition}) has no rows"


# --- the yml's data tests, as SQL ---------------------------------------------------------------------------


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def data_test_sql(test, column: str | None) -> tuple[str, list]:
    """A query counting the rows of `model_output` that fail `test` (a yml data_tests item)."""
    name, args = (test, {}) if isinstance(test, str) else next(iter(test.items()))
    args = args or {}
    args = args.get("arguments", args)  # dbt >= 1.10 nests a test's arguments under `arguments`
    if name == "dbt_utils.unique_combination_of_columns":
        columns = ", ".join(quoted(c) for c in args["combination_of_columns"])
        return f"select count(*) from (select {columns} from model_output group by all having count(*) > 1)", []
    assert column is not None, f"{name} is a column test"
    col = quoted(column)
    if name == "not_null":
        return f"select count(*) from model_output where {col} is null", []
    if name == "unique":
        unique = f"select {col} from model_output where {col} is not null group by {col} having count(*) > 1"
        return f"select count(*) from ({unique})", []
    if name == "accepted_values":  # nulls pass, as in dbt
        values = [str(value) for value in args["values"]]
        return f"select count(*) from model_output where not list_contains(?::varchar[], {col}::varchar)", [values]
    raise AssertionError(f"data test {name!r} is not one this test runs")


def data_tests(entry: dict) -> list[tuple[str | None, object]]:
    tests = [(None, test) for test in entry.get("data_tests") or []]
    for column in entry["columns"]:
        tests += [(column["name"], test) for test in column.get("data_tests") or []]
    return tests


@pytest.mark.parametrize("model", sql_models())
def test_model_data_tests_pass(outputs, model):
    tests = data_tests(documented(model))
    failures = []
    for partition, table in partitions(outputs, model):
        con = sql.connect()
        try:
            con.register("model_output", table)
            for column, test in tests:
                query, params = data_test_sql(test, column)
                ((failing,),) = con.execute(query, params).fetchall()
                if failing:
                    failures.append(f"{partition} {column or '(model)'} {test}: {failing} failing")
        finally:
            con.close()
    assert failures == [], f"{model} fails its data tests"


# --- the engine's memory ---------------------------------------------------------------------------------


def test_a_shared_database_holds_its_memory_limit_and_spills_to_a_private_folder_it_removes():
    with sql.shared_database("128MB") as database:
        con = sql.connect(database)
        limit, spill = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
        # Twice the limit of rows: what does not fit goes to the database's own folder, and is still read.
        con.execute("create temp table big as select i, md5(i::varchar) as h from range(5000000) t(i)")
        spilled = con.execute("select path, size from duckdb_temporary_files()").fetchall()
        assert con.execute("select count(*), count(distinct h) from big").fetchone() == (5_000_000, 5_000_000)
        assert sum(size for _path, size in spilled) > 50_000_000
        assert all(Path(path).parent == Path(spill) for path, _size in spilled)
        assert Path(spill).name.startswith("chargeback-duckdb-")
    assert limit == "122.0 MiB"  # 128 MB
    assert not Path(spill).exists()


def test_work_that_cannot_fit_the_limit_fails_naming_the_setting():
    engine = SqlEngineResource(memory_limit="16MB")
    with (
        pytest.raises(SqlEngineOutOfMemory, match=r"memory limit of 16MB .* raise CHARGEBACK_DUCKDB_MEMORY_LIMIT"),
        engine.database() as database,
    ):
        sql.connect(database).execute(
            "create temp table grouped as select md5(i::varchar) as h, count(*) from range(3000000) t(i) group by h"
        )


@pytest.mark.parametrize("size", ["", "600", "0MB", "lots", "600MB; SET threads=1", "1TB"])
def test_a_memory_limit_that_is_not_a_size_is_refused(size):
    with (
        pytest.raises(ValueError, match="a DuckDB memory limit is a size like 600MB or 2GiB"),
        sql.shared_database(size),
    ):
        pass


def test_the_memory_limit_setting_is_validated_and_reaches_the_engine(monkeypatch):
    monkeypatch.setenv("CHARGEBACK_DUCKDB_MEMORY_LIMIT", "2GiB")
    assert build_resources(load_settings())["sql_engine"].memory_limit == "2GiB"
    monkeypatch.setenv("CHARGEBACK_DUCKDB_MEMORY_LIMIT", "two gigs")
    with pytest.raises(
        SettingsError, match=r"CHARGEBACK_DUCKDB_MEMORY_LIMIT: .*a size like 600MB or 2GiB, got 'two gigs'"
    ):
        load_settings()

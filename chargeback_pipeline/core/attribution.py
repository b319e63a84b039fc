"""Attribution: one hour's APIM requests joined to their LLM records, with what could not be trusted
quarantined, and the per-product rollup of a day. Dagster-free: the SQL models of `dbt_like_sql/` run in
DuckDB over the lake's landed hours, and the results are written back to the lake.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chargeback_pipeline.core.callers import excluded_columns, with_caller_column, with_caller_id
from chargeback_pipeline.core.periods import HOUR, day_hours
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.schemas import CALLER_COLUMN, LLM_LOG_SCHEMA, SOURCE_REJECT_SCHEMA

STAGING_MODELS = [
    "staging/stg_apim__gateway_checked",
    "staging/stg_apim__gateway_requests",
    "staging/stg_apim__llm_checked",
    "staging/stg_apim__llm_records",
    "intermediate/int_llm_requests",
]
ATTRIBUTED_MODEL = "marts/fct_attributed_requests"
LOGGED_TOKENS_MODEL = "intermediate/int_hour_logged_tokens"
ROW_COUNTS_MODEL = "intermediate/int_hour_row_counts"
QUARANTINE_MODEL = "marts/fct_quarantined_records"
COMPLETENESS_MODEL = "marts/fct_gateway_completeness"
HOUR_MEASURES_MODEL = "marts/fct_hour_measures"
DAY_HOURLY_TOTALS_MODEL = "marts/fct_day_hourly_totals"
DAILY_USAGE_MODEL = "marts/fct_daily_product_usage"
DAILY_CALLER_USAGE_MODEL = "marts/fct_daily_caller_usage"  # instead, for days attributed with callers


# The raw rows (gateway and LLM, with their margins) one set of hours may hold: hours are attributed
# together up to this many (`hour_sets`), so a small tenant's day is a few statements while a large
# tenant's busy hour (about 1.6M raw rows at 10M requests a day) stays alone, and its working set within
# the database's memory limit (sql.DEFAULT_MEMORY_LIMIT: measured in BENCHMARKS.md).
RAW_ROWS_PER_SET = 500_000
# And at most this many hours: each hour is a scan of its own in every statement of the set (4 objects an
# hour), whose buffers add up; 72 tiny hours at once exhausted the 600MB limit. On the 1M-request day,
# sets of 4-6 hours took the least CPU (BENCHMARKS.md).
HOURS_PER_SET = 6


def hour_sets(lake: Lake, hours: list[datetime], raw_rows_per_set: int = RAW_ROWS_PER_SET) -> list[list[datetime]]:
    """`hours` cut into runs of consecutive hours attributed together (`attribute_hours`): each up to
    HOURS_PER_SET hours and `raw_rows_per_set` raw rows (an hour above it alone), all landed with callers or
    all without. Hours whose size the lake cannot tell without reading them (objects in Blob Storage) go one
    by one."""
    sets: list[list[datetime]] = []
    rows_in_set, callers_of_set = 0, None
    for hour in hours:
        gateway = lake.local_path(keys.hour_key(keys.RAW_GATEWAY, hour))
        llm = lake.local_path(keys.hour_key(keys.RAW_LLM, hour))
        if gateway is None or llm is None:  # not local, or not landed (attributing it says which)
            sets.append([hour])
            rows_in_set, callers_of_set = raw_rows_per_set, None
            continue
        rows = pq.read_metadata(gateway).num_rows + pq.read_metadata(llm).num_rows
        callers = CALLER_COLUMN in pq.read_schema(gateway).names
        joins = sets and len(sets[-1]) < HOURS_PER_SET and rows_in_set + rows <= raw_rows_per_set
        if joins and callers == callers_of_set:
            sets[-1].append(hour)
            rows_in_set += rows
        else:
            sets.append([hour])
            rows_in_set, callers_of_set = rows, callers
    return sets


def hour_params(hour: datetime, known_deployments: list[str], **more) -> dict:
    """The bound parameters of an hour's models (those that still take the window as parameters)."""
    return {"window_start": hour, "window_end": hour + HOUR, "known_deployments": list(known_deployments), **more}


def stage_hour(con, lake: Lake, hour: datetime, known_deployments: list[str]) -> bool:
    """Register one hour's landed raw logs and build the staging models over them (the ephemeral ones
    are inlined into the marts that read them; pass the marts `hour_params` too). Returns whether the
    hour was landed with its callers (core/callers.py)."""
    return stage_hours(con, lake, [hour], known_deployments)


def stage_hours(con, lake: Lake, hours: list[datetime], known_deployments: list[str]) -> bool:
    """`stage_hour` for several hours at once: each raw row carries the hour whose object it was read from
    (`sql.PARTITION_HOUR`), and the models compute every hour apart in the same statements."""

    def raw(dataset: str, part: str = "rows", schema=None) -> sql.Relation:
        return sql.by_partition_hour(
            {hour: lake.relation(keys.hour_key(dataset, hour, part), schema) for hour in hours}
        )

    relations = {
        "raw_gateway_logs": raw(keys.RAW_GATEWAY),  # as written: maybe CallerId
        "raw_llm_logs": raw(keys.RAW_LLM, schema=LLM_LOG_SCHEMA),
        "raw_gateway_rejected": raw(keys.RAW_GATEWAY, keys.REJECTED_PART, SOURCE_REJECT_SCHEMA),
        "raw_llm_rejected": raw(keys.RAW_LLM, keys.REJECTED_PART, SOURCE_REJECT_SCHEMA),
    }
    return stage_relations(con, relations, hours[0], known_deployments)


def stage_relations(con, relations: dict[str, sql.Relation], hour: datetime, known_deployments: list[str]) -> bool:
    """Build the staging models over raw relations named as the lake's (raw_gateway_logs, raw_llm_logs and
    their *_rejected). A relation without `sql.PARTITION_HOUR` is `hour`'s alone (tagged here). Returns
    whether the gateway rows carry their callers."""
    relations = {
        name: relation if _has_partition_hour(relation) else sql.by_partition_hour({hour: relation})
        for name, relation in relations.items()
    }
    gateway, with_callers = with_caller_column(relations["raw_gateway_logs"])
    relations = {**relations, "raw_gateway_logs": gateway}
    sql.build_models(con, STAGING_MODELS, relations=relations, params=hour_params(hour, known_deployments))
    return with_callers


def _has_partition_hour(relation: sql.Relation) -> bool:
    if isinstance(relation, pa.Table):
        return sql.PARTITION_HOUR in relation.column_names
    return bool(relation.partition_hours)


def _by_hour(table: pa.Table, hours: list[datetime]) -> dict[datetime, dict[str, int]]:
    """A per-hour model's rows as each hour's counts. An hour with no row has no rows to count: every count
    is zero, as the model gives over empty input."""
    zero = {name: 0 for name in table.column_names if name != sql.PARTITION_HOUR}
    found = {row.pop(sql.PARTITION_HOUR): {k: int(v) for k, v in row.items()} for row in table.to_pylist()}
    return {hour: found.get(hour, dict(zero)) for hour in hours}


def _slice(table: pa.Table, hour: datetime) -> pa.Table:
    """One hour's rows of a per-hour model's table, without the hour column, in the model's order."""
    column = table[sql.PARTITION_HOUR]
    rows = table.filter(pc.equal(column, pa.scalar(hour, column.type)))
    return rows.drop_columns([sql.PARTITION_HOUR]).combine_chunks()


@dataclass(frozen=True)
class AttributedHour:
    """What attributing one hour wrote (as content digests) and measured."""

    hour: datetime
    attributed_digest: str
    logged_tokens_digest: str
    quarantined_digest: str
    measures: dict[str, int]
    quarantined_rows: int
    reasons: Counter
    gaps: dict
    schema: pa.Schema
    quarantine_schema: pa.Schema


def attribute_hour(
    store: Lake, hour: datetime, known_deployments: list[str], margin: timedelta, database=None
) -> AttributedHour:
    """Attribute one hour: its requests, its quarantined rows, its logged tokens per deployment (for the
    reconciliation) and its completeness, written to the lake.
    `database`: a `sql.shared_database()` to work in (default: a database of its own)."""
    (done,) = attribute_hours(store, [hour], known_deployments, margin, database)
    return done


@dataclass
class _SetResults:
    """What the models measured over a set of hours' attributed requests, each hour apart."""

    measures: dict
    raw_rows: dict
    logged_tokens: pa.Table
    quarantined: pa.Table
    gaps: dict


def _measure_set(con, hours: list[datetime], params: dict) -> _SetResults:
    """The hours' counts, logged tokens, quarantine and completeness, over the staged raw rows and the
    relation `attributed_requests` (with `sql.PARTITION_HOUR`): one statement each for the whole set."""
    measures = _by_hour(sql.select_model(con, HOUR_MEASURES_MODEL), hours)
    raw_rows = _by_hour(sql.select_model(con, ROW_COUNTS_MODEL, params), hours)
    params = {
        **params,
        "has_requests_on_several_deployments": any(r["requests_on_several_deployments"] for r in raw_rows.values()),
        # Raw rows the attribution did not use failed the checks: only then are the raw rows searched for
        # them (hours all clean are not checked twice).
        "gateway_has_untrusted_rows": any(
            raw_rows[h]["gateway_rows"] != measures[h]["requests"] + measures[h]["duplicates"] for h in hours
        ),
        "llm_has_untrusted_rows": any(r["llm_rows"] != r["trusted_llm_rows"] for r in raw_rows.values()),
    }
    return _SetResults(
        measures=measures,
        raw_rows=raw_rows,
        logged_tokens=sql.select_model(con, LOGGED_TOKENS_MODEL, params),
        quarantined=sql.select_model(con, QUARANTINE_MODEL, params),
        gaps=_by_hour(sql.select_model(con, COMPLETENESS_MODEL, params), hours),
    )


def attribute_hours(
    store: Lake, hours: list[datetime], known_deployments: list[str], margin: timedelta, database=None
) -> list[AttributedHour]:
    """Attribute several consecutive hours in one set of statements (a ranged run's): every model computes
    each hour apart (`sql.PARTITION_HOUR`), and each hour's objects are written from the set's one result,
    byte for byte what attributing the hour alone writes. The hours must all be landed with callers or all
    without (`hour_sets` groups them so)."""
    con = sql.connect(database)
    try:
        with_callers = stage_hours(con, store, hours, known_deployments)
        params = {"known_deployments": list(known_deployments), "core_margin": margin}
        exclude = (sql.PARTITION_HOUR, *excluded_columns(with_callers))
        written: dict[datetime, tuple[str, pa.Schema]] = {}
        if len(hours) == 1:
            # One hour: DuckDB writes its requests straight to the hour's file (in parallel, never held in
            # Python nor kept in the database), and the counts read that file back.
            (hour,) = hours
            with store.writing(keys.hour_key(keys.ATTRIBUTED, hour)) as attributed:
                sql.copy_model(con, ATTRIBUTED_MODEL, params, attributed.path, exclude=exclude)
                file = sql.ParquetFiles((str(attributed.path),))
                sql.register(con, "attributed_requests", sql.by_partition_hour({hour: file}))
                results = _measure_set(con, hours, params)
                schema = attributed.schema()
            written[hour] = (attributed.digest, schema)
        else:
            # Several: the requests of every hour built once (spilled above the database's memory limit);
            # the counts read them, and each hour's file is written from them by DuckDB.
            table = sql.model_name(ATTRIBUTED_MODEL)
            sql.build_models(con, [ATTRIBUTED_MODEL], {}, params)
            con.execute(f"CREATE OR REPLACE TEMP VIEW attributed_requests AS SELECT * FROM {table}")
            results = _measure_set(con, hours, params)
            for hour in hours:
                with store.writing(keys.hour_key(keys.ATTRIBUTED, hour)) as attributed:
                    one_hour = f"SELECT * FROM {table} WHERE {sql.PARTITION_HOUR} = $hour"
                    sql.copy_query(con, one_hour, {"hour": hour}, attributed.path, exclude=exclude)
                    schema = attributed.schema()
                written[hour] = (attributed.digest, schema)
            con.execute(f"DROP TABLE {table}")
    finally:
        con.close()
    done = []
    for hour in hours:
        quarantined = _slice(results.quarantined, hour)
        reasons = zip(quarantined["source_table"].to_pylist(), quarantined["reason"].to_pylist(), strict=True)
        digest, schema = written[hour]
        done.append(
            AttributedHour(
                hour=hour,
                attributed_digest=digest,
                logged_tokens_digest=store.write(
                    keys.hour_key(keys.LOGGED_TOKENS, hour), _slice(results.logged_tokens, hour)
                ),
                quarantined_digest=store.write(keys.hour_key(keys.QUARANTINE, hour), quarantined),
                measures=results.measures[hour],
                quarantined_rows=quarantined.num_rows,
                reasons=Counter(f"{table}: {reason}" for table, reason in reasons),
                gaps=results.gaps[hour],
                schema=schema,
                quarantine_schema=quarantined.schema,
            )
        )
    return done


def attributed_day(lake: Lake, day: date) -> sql.Relation:
    """The day's 24 attributed hours as one relation. Local objects are read by DuckDB itself, only the
    columns a query needs: a large tenant's day (10M requests) is never held in memory."""
    return lake.relation([keys.hour_key(keys.ATTRIBUTED, hour) for hour in day_hours(day)])


def attributed_day_with_callers(lake: Lake, day: date) -> tuple[sql.Relation, bool]:
    """The day's attributed hours with caller_id (null when attributed without callers), and whether
    they were attributed with callers (core/callers.py)."""
    return with_caller_id(attributed_day(lake, day))


def rollup_day(lake: Lake, day: date) -> tuple[pa.Table, dict]:
    """Per-product usage of one day from its 24 attributed hours, and the hours' own billable totals.
    With callers, per product and caller (PRODUCT_USAGE_SCHEMA plus caller_id)."""
    con = sql.connect()
    try:
        attributed, with_callers = attributed_day_with_callers(lake, day)
        sql.register(con, "attributed_requests", attributed)
        (hourly_totals,) = sql.select_model(con, DAY_HOURLY_TOTALS_MODEL).to_pylist()
        usage = sql.select_model(
            con, DAILY_CALLER_USAGE_MODEL if with_callers else DAILY_USAGE_MODEL, {"usage_date": day}
        )
    finally:
        con.close()
    return usage, {name: int(value) for name, value in hourly_totals.items()}

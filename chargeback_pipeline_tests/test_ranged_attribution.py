"""Hours attributed together (a ranged run's sets, `attribute_hours`) write, byte for byte, what each hour
attributed alone writes, and measure the same.

The raw logs are hand-made over five hours and landed as the sources land them (each hour's objects span
the join margin on both sides, so rows near an hour's edge sit in two hours' objects): copies, chunks, a
request on two deployments, a request whose gateway row and LLM record straddle an hour, untrusted rows of
both logs, the source's rejects, and an hour with no traffic at all.
"""

import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.core.attribution import attribute_hour, attribute_hours, hour_sets
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import LocalObjectStore
from chargeback_pipeline.storage.schemas import (
    GATEWAY_CALLER_LOG_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)
from chargeback_pipeline_tests.landed_rows import gateway, llm

FIRST = datetime(2026, 3, 10, 6, tzinfo=UTC)
HOURS = [FIRST + timedelta(hours=n) for n in range(5)]
QUIET = HOURS[3]  # no request logged in it (its objects still hold the neighbours' margin rows)
MARGIN = timedelta(minutes=10)
WRITTEN = (keys.ATTRIBUTED, keys.QUARANTINE, keys.LOGGED_TOKENS)


def traffic() -> tuple[list[dict], list[dict], list[dict]]:
    """Gateway rows, LLM rows and source rejects of the five hours (none in QUIET)."""
    gateway_rows, llm_rows, rejects = [], [], []
    for n, hour in enumerate(HOURS):
        if hour == QUIET:
            continue

        def at(minutes: float, hour=hour) -> datetime:
            return hour + timedelta(minutes=minutes)

        p = f"h{n}"
        gateway_rows += [
            gateway(f"{p}-1", at(5)),
            gateway(f"{p}-1", at(5)),  # pulled twice
            gateway(f"{p}-2", at(20), product=f"beta-{n % 2}"),
            gateway(f"{p}-3", at(30), success=False),
            gateway(f"{p}-4", at(59.9)),  # its LLM record is logged in the next hour
            gateway(f"{p}-5", at(40)),  # its token records name two deployments
            gateway(f"{p}-6", at(2)),  # its LLM record was logged in the previous hour
            gateway("bad id!", at(12)),  # untrusted: malformed CorrelationId
            gateway(f"{p}-8", at(14), product="al\x00pha"),  # untrusted: control character
            gateway(f"{p}-9", at(16), backend="paygo"),
        ]
        llm_rows += [
            llm(f"{p}-1", at(5), 100 + n, 10),
            llm(f"{p}-1", at(5), 100 + n, 10),  # pulled twice
            llm(f"{p}-2", at(20), 200, 20),
            llm(f"{p}-2", at(20.5), 0, 3, sequence=1),  # a later chunk carrying tokens
            llm(f"{p}-3", at(30), 300, 0),
            llm(f"{p}-4", at(60.2), 400, 40),
            llm(f"{p}-5", at(40), 500, 50, request="r-5a"),
            llm(f"{p}-5", at(40), 600, 60, deployment="gpt-paygo", request="r-5b"),
            llm(f"{p}-6", at(-0.5), 700, 70),
            llm(f"{p}-7", at(45), 800, 80, deployment="gpt-paygo"),  # no gateway row
            llm(f"{p}-8", at(14), 80, 8),  # its only gateway row is untrusted
            llm(f"{p}-9", at(16), -5, 1),  # untrusted: negative tokens
            llm(f"{p}-9", at(16.1), 90, 9, request="r-9"),
        ]
        rejects.append(
            {
                "source_table": "ApiManagementGatewayLogs",
                "reason": "TotalTime is not a number",
                "placed_at": at(33),
                "record": f'{{"CorrelationId": "{p}-r"}}',
            }
        )
    return gateway_rows, llm_rows, rejects


def landed_lake(root, gateway_schema=GATEWAY_LOG_SCHEMA) -> Lake:
    """Each hour's objects as the sources land them: the rows within the join margin around the hour."""
    lake = Lake(LocalObjectStore(root))
    gateway_rows, llm_rows, rejects = traffic()
    for hour in HOURS:
        start, end = hour - MARGIN, hour + timedelta(hours=1) + MARGIN

        def near(rows: list[dict], column: str, start=start, end=end) -> list[dict]:
            return [row for row in rows if start <= row[column] < end]

        lake.write(
            keys.hour_key(keys.RAW_GATEWAY, hour),
            pa.Table.from_pylist(near(gateway_rows, "TimeGenerated"), gateway_schema),
        )
        lake.write(
            keys.hour_key(keys.RAW_LLM, hour), pa.Table.from_pylist(near(llm_rows, "TimeGenerated"), LLM_LOG_SCHEMA)
        )
        lake.write(
            keys.hour_key(keys.RAW_GATEWAY, hour, keys.REJECTED_PART),
            pa.Table.from_pylist(near(rejects, "placed_at"), SOURCE_REJECT_SCHEMA),
        )
        lake.write(keys.hour_key(keys.RAW_LLM, hour, keys.REJECTED_PART), SOURCE_REJECT_SCHEMA.empty_table())
    return lake  # fmt: skip


def written(root) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for dataset in WRITTEN
        for path in sorted((root / dataset).rglob("*.parquet"))
    }


def outcome(done) -> list[tuple]:
    return [
        (d.hour, d.measures, d.gaps, d.quarantined_rows, sorted(d.reasons.items()), d.attributed_digest, d.schema)
        for d in done
    ]


def test_hours_attributed_together_write_the_bytes_each_hour_writes_alone(tmp_path):
    alone_lake = landed_lake(tmp_path / "alone")
    alone = [attribute_hour(alone_lake, hour, [], MARGIN) for hour in HOURS]
    assert sum(d.quarantined_rows for d in alone) > 0 and alone[3].measures["requests"] == 0  # the cases are there
    assert any(d.measures["duplicates"] for d in alone) and any(d.measures["chunk_tokens"] for d in alone)

    together_root = tmp_path / "together"
    together = attribute_hours(landed_lake(together_root), HOURS, [], MARGIN)
    assert outcome(together) == outcome(alone)
    assert written(together_root) == written(tmp_path / "alone")
    assert len(written(together_root)) == len(HOURS) * len(WRITTEN)

    # In sets of a few hours, as hour_sets cuts a larger tenant's day.
    sets_lake = landed_lake(tmp_path / "sets")
    rows_per_hour = pq.read_metadata(sets_lake.local_path(keys.hour_key(keys.RAW_GATEWAY, HOURS[0]))).num_rows
    sets = hour_sets(sets_lake, HOURS, raw_rows_per_set=4 * rows_per_hour)
    assert 1 < len(sets) < len(HOURS) and [hour for hours in sets for hour in hours] == HOURS
    in_sets = [done for hours in sets for done in attribute_hours(sets_lake, hours, [], MARGIN)]
    assert outcome(in_sets) == outcome(alone)
    assert written(tmp_path / "sets") == written(tmp_path / "alone")


def test_hour_sets_keep_hours_landed_with_and_without_callers_apart(tmp_path):
    lake = landed_lake(tmp_path / "lake")
    with_callers = landed_lake(tmp_path / "callers", GATEWAY_CALLER_LOG_SCHEMA)
    for hour in HOURS[2:]:  # the caller setting changed at HOURS[2]
        for key in (keys.hour_key(keys.RAW_GATEWAY, hour),):
            shutil.copyfile(with_callers.local_path(key), lake.local_path(key))
    assert hour_sets(lake, HOURS) == [HOURS[:2], HOURS[2:]]
    assert hour_sets(lake, HOURS, raw_rows_per_set=1) == [[hour] for hour in HOURS]
    assert [d.hour for hours in hour_sets(lake, HOURS) for d in attribute_hours(lake, hours, [], MARGIN)] == HOURS


def test_completeness_counts_a_request_whose_gateway_row_is_untrusted_as_delivered(tmp_path):
    # The core of each busy hour (10-50 minutes in) logs six requests: -2, -3, -5, -7, -8 and -9. Only -7 has
    # no gateway row at all; -8's row was delivered but quarantined, which is not a gap in the gateway log.
    lake = landed_lake(tmp_path / "lake")
    busy = [hour for hour in HOURS if hour != QUIET]
    expected = {"core_llm_requests": 6, "core_llm_requests_without_gateway_row": 1}
    assert [attribute_hour(lake, hour, [], MARGIN).gaps for hour in busy] == [expected] * len(busy)
    assert [d.gaps for d in attribute_hours(lake, HOURS, [], MARGIN) if d.hour != QUIET] == [expected] * len(busy)

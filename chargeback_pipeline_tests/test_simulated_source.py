"""The simulated source: deterministic, window-independent, hazardous as real APIM logs, shaped like a
production backend pool (the same deployment names on the PTU and the pay-as-you-go resource, spillover
at peak hours), and its ground truth equal to an independent recomputation from the logs it emits."""

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback_pipeline.sources.base import LogSource, TimeWindow
from chargeback_pipeline.sources.simulated import (
    DAILY_USAGE_KEY,
    DEFAULT_PROFILE,
    EXPECTED_DAILY_USAGE_SCHEMA,
    EXPECTED_UNATTRIBUTED_SCHEMA,
    PAYGO_BACKEND_ID,
    PTU_BACKEND_ID,
    SIMULATED_DEPLOYMENT_NAMES,
    SIMULATED_DEPLOYMENTS,
    SimulatedSource,
    SimulationProfile,
    account_resource_id,
)
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    METRIC_PTU_UTILIZATION,
    SOURCE_REJECT_SCHEMA,
)

HOUR = timedelta(hours=1)
DAY = date(2026, 3, 2)
DAY_START = datetime(2026, 3, 2, tzinfo=UTC)
PEAK_HOUR = DAY_START + 15 * HOUR  # diurnal peak: the most traffic of the day
NIGHT_HOUR = DAY_START + 3 * HOUR  # the PTU has capacity to spare: little spills
# A small volume on small PTU deployments: they still saturate in busy minutes, so some requests spill.
SMALL = SimulationProfile(requests_per_hour=150, ptu_counts=(("gpt-4.1", 2), ("gpt-4o", 2)))
# At the default rate, PTU counts below the example's (65 / 60): the afternoon peak saturates, spills and
# gets 429s in many minutes, so those tests see them whatever minute the peak's bursts fall on.
UNDERSIZED = SimulationProfile(ptu_counts=(("gpt-4.1", 40), ("gpt-4o", 40)))
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def hours(start: datetime, count: int) -> TimeWindow:
    return TimeWindow(start, start + count * HOUR)


def canonical(table: pa.Table) -> pa.Table:
    """Rows in a fixed order, so tables holding the same multiset of rows compare equal."""
    return table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()


def query(sql: str, **tables: pa.Table) -> list[tuple]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in tables.items():
        con.register(name, table)
    return con.execute(sql).fetchall()


def scalar(sql: str, **tables: pa.Table):
    return query(sql, **tables)[0][0]


# --- determinism -----------------------------------------------------------------------------------


def test_it_is_a_log_source_named_simulated():
    source: LogSource = SimulatedSource()
    assert source.name == "simulated"


def test_the_same_hour_always_yields_the_same_rows():
    window = hours(PEAK_HOUR, 1)
    first, second = SimulatedSource(), SimulatedSource()
    second.gateway_logs(hours(PEAK_HOUR + 5 * HOUR, 2))  # a different history of requests and cache
    for method in ("gateway_logs", "llm_logs", "deployment_metrics"):
        rows = getattr(first, method)(window).rows
        assert rows.num_rows > 0
        assert rows.equals(getattr(second, method)(window).rows), method
        assert rows.equals(getattr(first, method)(window).rows), method


def test_another_seed_yields_other_traffic():
    window = hours(PEAK_HOUR, 1)
    ids = SimulatedSource().gateway_logs(window).rows["CorrelationId"].to_pylist()
    other = SimulatedSource(replace(DEFAULT_PROFILE, seed=7)).gateway_logs(window).rows
    assert not set(ids) & set(other["CorrelationId"].to_pylist())


@pytest.mark.parametrize("split_after", [HOUR, 90 * timedelta(minutes=1), timedelta(seconds=3)])
def test_adjacent_windows_together_equal_their_union(split_after):
    start = DAY_START - 2 * HOUR  # across midnight
    whole, first, second = (
        TimeWindow(start, start + 4 * HOUR),
        TimeWindow(start, start + split_after),
        TimeWindow(start + split_after, start + 4 * HOUR),
    )
    for method in ("gateway_logs", "llm_logs", "deployment_metrics"):
        # separate instances: no generated hour is shared through a cache
        parts = [getattr(SimulatedSource(SMALL), method)(window).rows for window in (first, second)]
        joined = getattr(SimulatedSource(SMALL), method)(whole).rows
        assert canonical(pa.concat_tables(parts)).equals(canonical(joined)), method


@settings(max_examples=15, deadline=None)
@given(
    split_us=st.integers(min_value=1, max_value=3 * 3600 * 1_000_000 - 1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_split_of_a_window_loses_and_repeats_no_row(split_us, seed):
    profile = SimulationProfile(requests_per_hour=40, seed=seed)
    start = DAY_START + 11 * HOUR
    split = start + timedelta(microseconds=split_us)
    source = SimulatedSource(profile)
    for method in ("gateway_logs", "llm_logs"):
        fetch = getattr(source, method)
        parts = pa.concat_tables(
            [fetch(TimeWindow(start, split)).rows, fetch(TimeWindow(split, start + 3 * HOUR)).rows]
        )
        assert canonical(parts).equals(canonical(fetch(hours(start, 3)).rows)), method


# --- shape -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "schema"),
    [
        ("gateway_logs", GATEWAY_LOG_SCHEMA),
        ("llm_logs", LLM_LOG_SCHEMA),
        ("deployment_metrics", DEPLOYMENT_METRICS_SCHEMA),
    ],
)
def test_tables_have_the_landed_schemas(method, schema):
    source = SimulatedSource(SMALL)
    for window in (hours(PEAK_HOUR, 2), TimeWindow(PEAK_HOUR, PEAK_HOUR + timedelta(microseconds=1))):
        fetched = getattr(source, method)(window)
        assert fetched.rows.schema.equals(schema, check_metadata=True)
        assert fetched.rejected.schema.equals(SOURCE_REJECT_SCHEMA)
        assert fetched.rejected.num_rows == 0


def test_rows_fall_in_the_window_with_microsecond_utc_times():
    window = TimeWindow(PEAK_HOUR + timedelta(minutes=10), PEAK_HOUR + timedelta(minutes=70))
    source = SimulatedSource()
    for method in ("gateway_logs", "llm_logs"):
        times = getattr(source, method)(window).rows["TimeGenerated"]
        assert pc.min(times).as_py() >= window.start and pc.max(times).as_py() < window.end
        assert pc.any(pc.not_equal(pc.millisecond(times), 0)).as_py()  # sub-second precision is used


def test_correlation_ids_are_unique_guids_and_requests_look_like_apim():
    gateway = SimulatedSource().gateway_logs(hours(DAY_START, 24)).rows
    distinct = scalar("SELECT count(*) FROM (SELECT DISTINCT * FROM g)", g=gateway)
    assert scalar("SELECT count(DISTINCT CorrelationId) FROM g", g=gateway) == distinct
    assert all(GUID.match(value) for value in gateway["CorrelationId"].to_pylist())
    assert set(gateway["ApiId"].to_pylist()) == {"azure-openai"}
    assert set(gateway["OperationId"].to_pylist()) == {
        "chat-completions",
        "completions",
        "embeddings",
        "list-deployments",
    }
    assert set(gateway["Region"].to_pylist()) == {"East US"}
    assert set(gateway["Cache"].to_pylist()) == {"none", "miss", "hit"}
    assert set(gateway["BackendId"].to_pylist()) == {PTU_BACKEND_ID, PAYGO_BACKEND_ID}
    codes = query(
        "SELECT IsRequestSuccess, list(DISTINCT ResponseCode ORDER BY ResponseCode) FROM g GROUP BY ALL",
        g=gateway,
    )
    assert dict(codes) == {True: [200], False: [400, 429, 500, 503]}
    assert scalar("SELECT bool_and(TotalTime >= BackendTime AND BackendTime >= 0) FROM g", g=gateway)


def test_products_have_one_to_three_subscriptions_and_very_different_volumes():
    gateway = SimulatedSource().gateway_logs(hours(DAY_START, 24)).rows
    per_product = query(
        "SELECT ProductId, count(DISTINCT ApimSubscriptionId), count(*) FROM g WHERE ProductId <> '' GROUP BY 1",
        g=gateway,
    )
    assert {product for product, _, _ in per_product} == set(DEFAULT_PROFILE.product_ids)
    assert all(1 <= subscriptions <= 3 for _, subscriptions, _ in per_product)
    calls = sorted(count for _, _, count in per_product)
    assert calls[-1] > 50 * calls[0]  # heavy and tiny products side by side


def test_models_differ_by_product_and_tokens_are_heavy_tailed():
    llm = SimulatedSource().llm_logs(hours(DAY_START, 24)).rows
    first_chunks = llm.filter(pc.equal(llm["SequenceNumber"], 0))
    assert set(llm["ModelName"].to_pylist()) == {"gpt-4.1", "gpt-4o", "text-embedding-3-large"}
    assert set(llm["DeploymentName"].to_pylist()) == set(SIMULATED_DEPLOYMENT_NAMES)
    prompt = first_chunks["PromptTokens"]
    assert pc.min(prompt).as_py() >= 50 and pc.max(prompt).as_py() <= 30_000
    assert pc.max(first_chunks["CompletionTokens"]).as_py() <= 4000
    assert pc.max(prompt).as_py() > 10 * pc.approximate_median(prompt).as_py()
    assert pc.all(pc.equal(llm["TotalTokens"], pc.add(llm["PromptTokens"], llm["CompletionTokens"]))).as_py()


def test_simulated_deployments_describe_ptu_and_paygo_accounts():
    for (backend_id, name), deployment in SIMULATED_DEPLOYMENTS.items():
        assert (deployment.backend_id, deployment.name) == (backend_id, name)
        assert deployment.billing == ("ptu" if deployment.backend_id == PTU_BACKEND_ID else "paygo")
        assert deployment.resource_id.startswith("/subscriptions/")
        assert deployment.resource_id.endswith(
            f"/providers/Microsoft.CognitiveServices/accounts/{deployment.backend_id}"
        )
        assert deployment.resource_id == account_resource_id(backend_id)


def test_the_ptu_and_its_spillover_resource_host_deployments_of_the_same_name():
    backends_of: dict[str, set[str]] = {}
    for backend_id, name in SIMULATED_DEPLOYMENTS:
        backends_of.setdefault(name, set()).add(backend_id)
    assert backends_of == {
        "gpt-4.1": {PTU_BACKEND_ID, PAYGO_BACKEND_ID},
        "gpt-4o": {PTU_BACKEND_ID, PAYGO_BACKEND_ID},
        "text-embedding-3-large": {PAYGO_BACKEND_ID},
    }
    assert SIMULATED_DEPLOYMENT_NAMES == ("gpt-4.1", "gpt-4o", "text-embedding-3-large")
    assert {d.model_name for d in SIMULATED_DEPLOYMENTS.values() if d.name == "gpt-4.1"} == {"gpt-4.1"}

    # Each resource reports its own deployments: one metric series per (ResourceId, deployment name).
    metrics = SimulatedSource().deployment_metrics(hours(PEAK_HOUR, 1)).rows
    series = query("SELECT DISTINCT ResourceId, ModelDeploymentName FROM m", m=metrics)
    assert set(series) == {(account_resource_id(b), name) for b, name in SIMULATED_DEPLOYMENTS}
    resources_of_name = dict(
        query("SELECT ModelDeploymentName, count(DISTINCT ResourceId) FROM m GROUP BY 1", m=metrics)
    )
    assert resources_of_name == {"gpt-4.1": 2, "gpt-4o": 2, "text-embedding-3-large": 1}


# --- hazards -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peak_hour_logs():
    """The peak hour's gateway rows, with the gateway and LLM rows of the hours around it."""
    source = SimulatedSource()
    return {
        "expected": source.expected_hourly_requests(PEAK_HOUR),
        "gateway": source.gateway_logs(hours(PEAK_HOUR, 1)).rows,
        "gateway_around": source.gateway_logs(hours(PEAK_HOUR - HOUR, 3)).rows,
        "llm_around": source.llm_logs(hours(PEAK_HOUR - HOUR, 3)).rows,
    }


def test_duplicates_are_byte_identical_rows(peak_hour_logs):
    gateway, llm, expected = peak_hour_logs["gateway"], peak_hour_logs["llm_around"], peak_hour_logs["expected"]
    extra_gateway = gateway.num_rows - scalar("SELECT count(*) FROM (SELECT DISTINCT * FROM g)", g=gateway)
    assert extra_gateway == expected["duplicate_gateway_rows"] > 0
    assert scalar("SELECT count(*) - count(DISTINCT CorrelationId) FROM g", g=gateway) == extra_gateway
    extra_llm = llm.num_rows - scalar("SELECT count(*) FROM (SELECT DISTINCT * FROM l)", l=llm)
    assert extra_llm > 0


def test_chunked_llm_requests_carry_tokens_on_sequence_zero_only(peak_hour_logs):
    llm = peak_hour_logs["llm_around"]
    chunks = query(
        """
        SELECT CorrelationId, count(DISTINCT SequenceNumber), max(SequenceNumber), count(DISTINCT RequestId),
               sum(PromptTokens + CompletionTokens) FILTER (WHERE SequenceNumber > 0)
        FROM (SELECT DISTINCT * FROM l) GROUP BY 1 HAVING max(SequenceNumber) > 0
        """,
        l=llm,
    )
    assert len(chunks) > 0
    assert {pieces for _, pieces, _, _, _ in chunks} <= {2, 3, 4}
    assert all(pieces == last + 1 and request_ids == 1 for _, pieces, last, request_ids, _ in chunks)
    assert all(later_tokens == 0 for *_, later_tokens in chunks)


def test_failed_calls_half_with_an_llm_record_holding_prompt_tokens(peak_hour_logs):
    gateway, llm, expected = peak_hour_logs["gateway"], peak_hour_logs["llm_around"], peak_hour_logs["expected"]
    failed, with_record, zero_completion, prompt_positive = query(
        """
        SELECT count(*), count(l.CorrelationId), count(*) FILTER (WHERE l.CompletionTokens = 0),
               bool_and(l.PromptTokens > 0)
        FROM (SELECT DISTINCT * FROM g) g
        LEFT JOIN (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0) l USING (CorrelationId)
        WHERE NOT g.IsRequestSuccess
        """,
        g=gateway,
        l=llm,
    )[0]
    assert failed == expected["failed_calls"] > 20
    assert with_record == expected["failed_calls_with_llm_record"]
    assert 0.25 * failed < with_record < 0.75 * failed
    assert zero_completion > 0 and prompt_positive


def test_successful_calls_without_llm_record(peak_hour_logs):
    gateway, llm, expected = peak_hour_logs["gateway"], peak_hour_logs["llm_around"], peak_hour_logs["expected"]
    operations = query(
        """
        SELECT OperationId, count(DISTINCT CorrelationId) FROM g
        WHERE IsRequestSuccess AND CorrelationId NOT IN (SELECT CorrelationId FROM l) GROUP BY 1
        """,
        g=gateway,
        l=llm,
    )
    assert operations == [("list-deployments", expected["non_llm_calls"])]
    assert expected["non_llm_calls"] > 0


def test_orphan_llm_records_have_no_gateway_row(peak_hour_logs):
    orphans = scalar(
        """
        SELECT count(DISTINCT CorrelationId) FROM l
        WHERE TimeGenerated >= $start AND TimeGenerated < $start + INTERVAL 1 HOUR
          AND CorrelationId NOT IN (SELECT CorrelationId FROM g)
        """.replace("$start", f"TIMESTAMPTZ '{PEAK_HOUR.isoformat()}'"),
        l=peak_hour_logs["llm_around"],
        g=peak_hour_logs["gateway_around"],
    )
    assert orphans > 0
    assert abs(orphans - peak_hour_logs["expected"]["orphan_llm_requests"]) <= 2  # edges may differ


def test_unassigned_calls_have_empty_product_and_subscription(peak_hour_logs):
    gateway, expected = peak_hour_logs["gateway"], peak_hour_logs["expected"]
    rows = query(
        "SELECT ProductId, ApimSubscriptionId, count(DISTINCT CorrelationId) FROM g "
        "WHERE ProductId = '' OR ApimSubscriptionId = '' GROUP BY ALL",
        g=gateway,
    )
    assert rows == [("", "", expected["unassigned_calls"])]
    assert expected["unassigned_calls"] > 0


def test_spillover_is_served_by_the_paygo_backend():
    # PTU deployments half the default size: both saturate in the peak hour's busy minutes.
    source = SimulatedSource(replace(DEFAULT_PROFILE, ptu_counts=(("gpt-4.1", 20), ("gpt-4o", 25))))
    spilled = query(
        """
        SELECT DISTINCT g.BackendId, l.DeploymentName
        FROM g JOIN l USING (CorrelationId)
        WHERE l.ModelName LIKE 'gpt-%'
        """,
        g=source.gateway_logs(hours(PEAK_HOUR, 1)).rows,
        l=source.llm_logs(hours(PEAK_HOUR - HOUR, 3)).rows,
    )
    assert set(spilled) == {
        (PTU_BACKEND_ID, "gpt-4.1"),
        (PTU_BACKEND_ID, "gpt-4o"),
        (PAYGO_BACKEND_ID, "gpt-4.1"),  # the same deployment name, on the other resource
        (PAYGO_BACKEND_ID, "gpt-4o"),
    }
    assert source.expected_hourly_requests(PEAK_HOUR)["spillover_calls"] > 0


SPILL_SHARE_SQL = f"""
    SELECT count(DISTINCT CorrelationId) FILTER (WHERE BackendId = '{PAYGO_BACKEND_ID}')
           / count(DISTINCT CorrelationId)
    FROM g WHERE OperationId IN ('chat-completions', 'completions') AND IsRequestSuccess
"""


def measured_spill_share(source: SimulatedSource, hour: datetime) -> float:
    """Share of the hour's successful PTU-workload requests (chat and completions) that the pay-as-you-go
    backend served (a failed one never spills: it is the PTU's own answer, a 429 when saturated)."""
    return scalar(SPILL_SHARE_SQL, g=source.gateway_logs(hours(hour, 1)).rows)


PTU_WORKLOAD_SQL = "OperationId IN ('chat-completions', 'completions') AND IsRequestSuccess"


def test_spill_429s_and_utilisation_come_from_one_minute_model_of_load_against_ptu_count():
    """The same minutes saturate the utilisation metric, spill, and carry the PTU's 429s; fewer PTU
    saturate more, and nights (load well under capacity) saturate less than the afternoon peak."""
    source = SimulatedSource(UNDERSIZED)
    peak_window, night_window = hours(PEAK_HOUR, 1), hours(NIGHT_HOUR, 1)
    gateway = source.gateway_logs(peak_window).rows
    metrics = source.deployment_metrics(peak_window).rows
    metric = metrics.filter(pc.equal(metrics["MetricName"], METRIC_PTU_UTILIZATION))
    # One utilisation point per minute and PTU deployment.
    assert metric.num_rows == 60 * 2
    saturated = {
        (row["ModelDeploymentName"], row["TimeStamp"].replace(second=0, microsecond=0))
        for row in metric.to_pylist()
        if row["Total"] >= 100
    }
    # Every spilled request and every 429 of the PTU backend falls in a saturated minute of its deployment.
    turned_away = query(
        f"""
        SELECT DISTINCT l.DeploymentName, date_trunc('minute', g.TimeGenerated) AS minute
        FROM g JOIN l USING (CorrelationId)
        WHERE l.ModelName LIKE 'gpt-%' AND (g.BackendId = '{PAYGO_BACKEND_ID}' OR g.ResponseCode = 429)
        """,
        g=gateway,
        l=source.llm_logs(TimeWindow(PEAK_HOUR - HOUR, PEAK_HOUR + 2 * HOUR)).rows,
    )
    assert turned_away and {(name, minute.replace(tzinfo=UTC)) for name, minute in turned_away} <= saturated
    spilled_minutes = {(name, minute.replace(tzinfo=UTC)) for name, minute in turned_away}
    assert len(spilled_minutes) >= 0.8 * len(saturated)  # a saturated minute is one that spilled
    expected = source.expected_saturated_minutes(peak_window)
    assert sum(expected.values()) == len(saturated)
    # Fewer PTU, same traffic: more saturated minutes; the night saturates less than the peak.
    smaller = SimulatedSource(replace(DEFAULT_PROFILE, ptu_counts=(("gpt-4.1", 15), ("gpt-4o", 15))))
    assert sum(smaller.expected_saturated_minutes(peak_window).values()) > sum(expected.values())
    assert sum(source.expected_saturated_minutes(night_window).values()) < sum(expected.values())
    assert scalar(f"SELECT count(*) FROM g WHERE {PTU_WORKLOAD_SQL}", g=gateway) > 0


def test_minutes_are_bursty():
    """Requests are not spread evenly over an hour's minutes: some minutes are several times the median."""
    gateway = SimulatedSource().gateway_logs(hours(PEAK_HOUR, 1)).rows
    per_minute = [
        count for (count,) in query("SELECT count(*) FROM g GROUP BY date_trunc('minute', TimeGenerated)", g=gateway)
    ]
    assert len(per_minute) == 60
    assert max(per_minute) > 2 * sorted(per_minute)[30]


def test_ptu_count_changes_only_the_serving_backend_and_the_429s():
    window = hours(PEAK_HOUR, 2)
    tight = replace(SMALL, ptu_counts=(("gpt-4.1", 1), ("gpt-4o", 1)))
    roomy = replace(SMALL, ptu_counts=(("gpt-4.1", 1000), ("gpt-4o", 1000)))
    base, more = SimulatedSource(roomy), SimulatedSource(tight)
    # The LLM log names the deployment, the same on both resources: spillover leaves it untouched.
    assert base.llm_logs(window).rows.equals(more.llm_logs(window).rows)
    base_gateway, more_gateway = base.gateway_logs(window).rows, more.gateway_logs(window).rows
    changed = ["BackendId", "ResponseCode", "BackendResponseCode"]
    assert base_gateway.drop_columns(changed).equals(more_gateway.drop_columns(changed))
    assert not base_gateway["BackendId"].equals(more_gateway["BackendId"])
    assert base_gateway["IsRequestSuccess"].equals(more_gateway["IsRequestSuccess"])


def test_llm_records_cross_the_hour_boundary_both_ways(peak_hour_logs):
    expected = peak_hour_logs["expected"]
    before, after, min_offset, max_offset = query(
        """
        SELECT count(DISTINCT g.CorrelationId) FILTER (WHERE l.TimeGenerated < $start),
               count(DISTINCT g.CorrelationId) FILTER (WHERE l.TimeGenerated >= $start + INTERVAL 1 HOUR),
               min(epoch_us(l.TimeGenerated) - epoch_us(g.TimeGenerated)),
               max(epoch_us(l.TimeGenerated) - epoch_us(g.TimeGenerated))
        FROM g JOIN l USING (CorrelationId) WHERE l.SequenceNumber = 0
        """.replace("$start", f"TIMESTAMPTZ '{PEAK_HOUR.isoformat()}'"),
        g=peak_hour_logs["gateway"],
        l=peak_hour_logs["llm_around"],
    )[0]
    assert before == expected["llm_records_before_hour"] > 0
    assert after == expected["llm_records_after_hour"] > 0
    assert -3_000_000 <= min_offset < 0 < max_offset <= 8_000_000


def test_every_hour_has_crossings_even_at_low_volume():
    source = SimulatedSource(SMALL)
    for hour in range(24):
        expected = source.expected_hourly_requests(DAY_START + hour * HOUR)
        assert expected["llm_records_before_hour"] > 0 and expected["llm_records_after_hour"] > 0


def test_hourly_counts_match_the_emitted_gateway_rows(peak_hour_logs):
    gateway, llm, expected = peak_hour_logs["gateway"], peak_hour_logs["llm_around"], peak_hour_logs["expected"]
    counted = query(
        """
        WITH g AS (SELECT DISTINCT * FROM g), l AS (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0)
        SELECT count(*),
               count(*) FILTER (WHERE IsRequestSuccess AND l.CorrelationId IS NOT NULL),
               sum(l.PromptTokens) FILTER (WHERE IsRequestSuccess),
               sum(l.CompletionTokens) FILTER (WHERE IsRequestSuccess),
               sum(l.TotalTokens) FILTER (WHERE IsRequestSuccess)
        FROM g LEFT JOIN l USING (CorrelationId)
        """,
        g=gateway,
        l=llm,
    )[0]
    assert counted == (
        expected["gateway_requests"],
        expected["billable_calls"],
        expected["prompt_tokens"],
        expected["completion_tokens"],
        expected["total_tokens"],
    )
    assert gateway.num_rows == expected["gateway_rows"]
    assert expected["gateway_requests"] == (
        expected["billable_calls"] + expected["failed_calls"] + expected["non_llm_calls"]
    )


# --- deployment metrics ---------------------------------------------------------------------------------


LOGGED_TOKENS_BY_HOUR_SQL = """
    SELECT date_trunc('hour', TimeGenerated) AS hour, DeploymentName,
           sum(PromptTokens)::BIGINT, sum(CompletionTokens)::BIGINT
    FROM (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0)
    GROUP BY ALL
"""


def metric_totals(metrics: pa.Table) -> dict[tuple, int]:
    """Per (hour, deployment name, metric), summed over the resources that report the name: an orphan
    LLM record names its deployment, not the resource that served it."""
    rows = query(
        "SELECT TimeStamp, ModelDeploymentName, MetricName, sum(Total)::BIGINT FROM m "
        "WHERE MetricName IN ('ProcessedPromptTokens', 'GeneratedTokens') GROUP BY ALL",
        m=metrics,
    )
    return {(hour, deployment, metric): total for hour, deployment, metric, total in rows}


def bypass_by_name(source: SimulatedSource, window: TimeWindow) -> dict[str, tuple[int, int]]:
    rows = query(
        "SELECT deployment_name, sum(prompt_tokens)::BIGINT, sum(completion_tokens)::BIGINT FROM b GROUP BY 1",
        b=source.expected_bypass_tokens(window),
    )
    return {name: (prompt, completion) for name, prompt, completion in rows}


def test_metrics_are_logged_first_chunk_tokens_by_llm_hour_plus_bypass():
    source = SimulatedSource(UNDERSIZED)
    window = hours(DAY_START + 14 * HOUR, 3)
    metrics = source.deployment_metrics(window).rows
    ptu_deployments = sum(d.billing == "ptu" for d in SIMULATED_DEPLOYMENTS.values())
    # two token metrics per deployment an hour, and the PTU deployments' utilisation per minute
    assert metrics.num_rows == 3 * (len(SIMULATED_DEPLOYMENTS) * 2 + 60 * ptu_deployments)
    totals = metric_totals(metrics)
    logged = query(LOGGED_TOKENS_BY_HOUR_SQL, l=source.llm_logs(window).rows)
    assert len(logged) == 3 * len(SIMULATED_DEPLOYMENT_NAMES)
    for hour, deployment, prompt, completion in logged:
        bypass_prompt, bypass_completion = bypass_by_name(source, TimeWindow(hour, hour + HOUR))[deployment]
        assert totals[(hour, deployment, "ProcessedPromptTokens")] == prompt + bypass_prompt
        assert totals[(hour, deployment, "GeneratedTokens")] == completion + bypass_completion
        assert 0.009 * prompt <= bypass_prompt <= 0.011 * prompt + 2

    bypass_window = source.expected_bypass_tokens(window)
    keys = list(zip(bypass_window["backend_id"].to_pylist(), bypass_window["deployment_name"].to_pylist(), strict=True))
    assert keys == sorted(SIMULATED_DEPLOYMENTS)
    assert bypass_window["resource_id"].to_pylist() == [account_resource_id(backend) for backend, _ in keys]
    assert pc.min(bypass_window["prompt_tokens"]).as_py() > 0  # both resources' gpt-4.1 and gpt-4o too


def test_without_bypass_the_metrics_equal_the_logged_tokens():
    source = SimulatedSource(replace(SMALL, bypass_fraction=0.0))
    window = hours(DAY_START, 2)
    totals = metric_totals(source.deployment_metrics(window).rows)
    logged = query(LOGGED_TOKENS_BY_HOUR_SQL, l=source.llm_logs(window).rows)
    assert {key: total for key, total in totals.items() if total} == {
        **{(hour, deployment, "ProcessedPromptTokens"): p for hour, deployment, p, _ in logged if p},
        **{(hour, deployment, "GeneratedTokens"): c for hour, deployment, _, c in logged if c},
    }
    assert pc.sum(source.expected_bypass_tokens(window)["prompt_tokens"]).as_py() == 0


def test_metrics_rows_are_hour_stamped_per_deployment_and_account():
    metrics = (
        SimulatedSource(SMALL)
        .deployment_metrics(TimeWindow(DAY_START + timedelta(minutes=1), DAY_START + 2 * HOUR))
        .rows
    )
    tokens = metrics.filter(pc.not_equal(metrics["MetricName"], METRIC_PTU_UTILIZATION))
    assert set(tokens["TimeStamp"].to_pylist()) == {DAY_START + HOUR}  # only hours starting inside the window
    utilisation = metrics.filter(pc.equal(metrics["MetricName"], METRIC_PTU_UTILIZATION))
    # ... and the PTU utilisation of each of that hour's minutes (Azure Monitor's PT1M grain)
    assert set(utilisation["TimeStamp"].to_pylist()) == {DAY_START + HOUR + timedelta(minutes=m) for m in range(60)}
    by_resource = {d.resource_id: d.backend_id for d in SIMULATED_DEPLOYMENTS.values()}
    for row in metrics.to_pylist():
        deployment = SIMULATED_DEPLOYMENTS[by_resource[row["ResourceId"]], row["ModelDeploymentName"]]
        assert row["ResourceId"] == deployment.resource_id
        assert row["Total"] >= 0


# --- ground truth ------------------------------------------------------------------------------------------


DAILY_USAGE_SQL = """
    WITH gateway AS (SELECT DISTINCT * FROM g),
         first_chunks AS (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0),
         requests AS (
             SELECT gateway.*, first_chunks.ModelName, first_chunks.DeploymentName,
                    first_chunks.PromptTokens, first_chunks.CompletionTokens, first_chunks.TotalTokens,
                    gateway.IsRequestSuccess AND first_chunks.CorrelationId IS NOT NULL AS billable
             FROM gateway LEFT JOIN first_chunks USING (CorrelationId)
         )
    SELECT $day AS usage_date,
           coalesce(nullif(ProductId, ''), 'unassigned') AS product_id,
           coalesce(nullif(ApimSubscriptionId, ''), 'unassigned') AS subscription_id,
           coalesce(ModelName, 'unknown') AS model_name,
           coalesce(DeploymentName, 'unknown') AS deployment_name,
           BackendId AS backend_id,
           coalesce(sum(PromptTokens) FILTER (WHERE billable), 0)::BIGINT AS prompt_tokens,
           coalesce(sum(CompletionTokens) FILTER (WHERE billable), 0)::BIGINT AS completion_tokens,
           coalesce(sum(TotalTokens) FILTER (WHERE billable), 0)::BIGINT AS total_tokens,
           count(*) FILTER (WHERE billable) AS calls,
           count(*) FILTER (WHERE NOT IsRequestSuccess) AS failed_calls,
           min(TimeGenerated) AS first_seen,
           max(TimeGenerated) AS last_seen
    FROM requests
    WHERE billable OR NOT IsRequestSuccess
    GROUP BY ALL
"""


def recompute_daily_usage(source: SimulatedSource, day: date) -> pa.Table:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("g", source.gateway_logs(hours(start, 24)).rows)
    con.register("l", source.llm_logs(TimeWindow(start - HOUR, start + 25 * HOUR)).rows)
    result = con.sql(DAILY_USAGE_SQL.replace("$day", f"DATE '{day.isoformat()}'")).to_arrow_table()
    return result.cast(EXPECTED_DAILY_USAGE_SCHEMA).sort_by([(key, "ascending") for key in DAILY_USAGE_KEY])


def test_expected_daily_usage_equals_a_recomputation_from_the_emitted_logs():
    source = SimulatedSource(SMALL)
    expected = source.expected_daily_usage(DAY)
    assert expected.schema.equals(EXPECTED_DAILY_USAGE_SCHEMA)
    assert recompute_daily_usage(source, DAY).equals(expected)

    rows = expected.to_pylist()
    assert any(row["product_id"] == "unassigned" == row["subscription_id"] for row in rows)
    assert any(row["model_name"] == "unknown" and row["failed_calls"] > 0 for row in rows)
    assert any(row["backend_id"] == PAYGO_BACKEND_ID and row["deployment_name"] == "gpt-4o" for row in rows)
    backends = query(
        "SELECT product_id, subscription_id, deployment_name, count(DISTINCT backend_id) FROM e "
        "WHERE deployment_name <> 'unknown' GROUP BY ALL",
        e=expected,
    )
    assert any(count == 2 for *_, count in backends)  # one subscription's gpt-4o on both resources
    assert {row["usage_date"] for row in rows} == {DAY}
    assert all(row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"] for row in rows)
    assert all(row["calls"] + row["failed_calls"] > 0 for row in rows)


def test_expected_daily_usage_sums_to_the_hourly_counts():
    source = SimulatedSource(SMALL)
    usage = source.expected_daily_usage(DAY)
    hourly = [source.expected_hourly_requests(DAY_START + hour * HOUR) for hour in range(24)]
    for column, key in (
        ("calls", "billable_calls"),
        ("failed_calls", "failed_calls"),
        ("total_tokens", "total_tokens"),
    ):
        assert pc.sum(usage[column]).as_py() == sum(counts[key] for counts in hourly)


def test_an_empty_day_has_an_empty_report():
    usage = SimulatedSource(replace(SMALL, requests_per_hour=0)).expected_daily_usage(DAY)
    assert usage.num_rows == 0 and usage.schema.equals(EXPECTED_DAILY_USAGE_SCHEMA)


# --- unattributed tokens ------------------------------------------------------------------------------------

# What the pipeline reports as `unattributed` for one hour, recomputed from that hour's emitted rows alone:
# logged = the distinct SequenceNumber-0 LLM records of the hour; each is placed on the BackendId of its
# request's gateway row among the gateway rows around the hour (the pipeline lands them with a margin;
# here the whole neighbouring hours), else on the only backend serving its deployment
# name (by the metrics or the placed records), else nowhere; per resource deployment with metrics,
# unattributed = max(metric - placed, 0). A metric's backend is its resource's account name.
UNATTRIBUTED_SQL = """
    WITH records AS (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0),
         gateway AS (SELECT DISTINCT CorrelationId, BackendId FROM g),
         metrics AS (
             SELECT regexp_extract(ResourceId, '[^/]+$') AS backend_id, ModelDeploymentName AS deployment_name,
                    sum(Total) FILTER (WHERE MetricName = 'ProcessedPromptTokens') AS prompt,
                    sum(Total) FILTER (WHERE MetricName = 'GeneratedTokens') AS completion
             FROM m GROUP BY ALL
         ),
         located AS (SELECT records.*, gateway.BackendId FROM records LEFT JOIN gateway USING (CorrelationId)),
         backends AS (
             SELECT backend_id, deployment_name FROM metrics
             UNION SELECT BackendId, DeploymentName FROM located WHERE BackendId IS NOT NULL
         ),
         sole AS (
             SELECT deployment_name, min(backend_id) AS backend_id FROM backends GROUP BY 1 HAVING count(*) = 1
         ),
         placed AS (
             SELECT coalesce(located.BackendId, sole.backend_id) AS backend_id, DeploymentName AS deployment_name,
                    sum(PromptTokens) AS prompt, sum(CompletionTokens) AS completion
             FROM located LEFT JOIN sole ON sole.deployment_name = located.DeploymentName
             WHERE coalesce(located.BackendId, sole.backend_id) IS NOT NULL
             GROUP BY ALL
         )
    SELECT metrics.backend_id, metrics.deployment_name,
           greatest(metrics.prompt - coalesce(placed.prompt, 0), 0)::BIGINT AS prompt_tokens,
           greatest(metrics.completion - coalesce(placed.completion, 0), 0)::BIGINT AS completion_tokens
    FROM metrics LEFT JOIN placed USING (backend_id, deployment_name)
    ORDER BY 1, 2
"""

# The tokens of the hour's records that cannot be placed: no gateway row around the hour, on a name
# that several resources serve. Per name only: the rows do not say which resource served them.
UNPLACED_BY_NAME_SQL = """
    SELECT DeploymentName, sum(PromptTokens)::BIGINT, sum(CompletionTokens)::BIGINT
    FROM (SELECT DISTINCT * FROM l WHERE SequenceNumber = 0)
    WHERE CorrelationId NOT IN (SELECT CorrelationId FROM g)
      AND DeploymentName IN (SELECT ModelDeploymentName FROM m GROUP BY 1 HAVING count(DISTINCT ResourceId) > 1)
    GROUP BY 1
"""


def by_key(table: pa.Table) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (row["backend_id"], row["deployment_name"]): (row["prompt_tokens"], row["completion_tokens"])
        for row in table.to_pylist()
    }


@pytest.mark.parametrize(
    ("profile", "hour"),
    [
        pytest.param(DEFAULT_PROFILE, PEAK_HOUR, id="peak hour, spilling"),
        pytest.param(SMALL, DAY_START, id="midnight"),
        pytest.param(replace(SMALL, missing_gateway_hours=frozenset({PEAK_HOUR})), PEAK_HOUR, id="gateway rows lost"),
        pytest.param(replace(SMALL, bypass_fraction=0.0), PEAK_HOUR + 2 * HOUR, id="no bypass"),
    ],
)
def test_expected_unattributed_tokens_equal_a_recomputation_from_the_hours_rows(profile, hour):
    source = SimulatedSource(profile)
    window = hours(hour, 1)
    llm = source.llm_logs(window).rows
    gateway = source.gateway_logs(TimeWindow(window.start - HOUR, window.end + HOUR)).rows  # and the neighbours
    metrics = source.deployment_metrics(window).rows
    expected = source.expected_unattributed_tokens(window)
    assert expected.schema.equals(EXPECTED_UNATTRIBUTED_SCHEMA)
    assert list(by_key(expected)) == sorted(SIMULATED_DEPLOYMENTS)  # one row per resource deployment

    recomputed = query(UNATTRIBUTED_SQL, g=gateway, l=llm, m=metrics)
    assert by_key(expected) == {(b, d): (p, c) for b, d, p, c in recomputed}

    # = bypass + the unplaced records' tokens, on the resource that served them (its metrics counted them)
    bypass = by_key(source.expected_bypass_tokens(window))
    beyond_bypass: dict[str, list[int]] = {}
    for key, (prompt, completion) in by_key(expected).items():
        bypass_prompt, bypass_completion = bypass[key]
        assert prompt >= bypass_prompt and completion >= bypass_completion
        totals = beyond_bypass.setdefault(key[1], [0, 0])
        totals[0] += prompt - bypass_prompt
        totals[1] += completion - bypass_completion
    unplaced = {name: [p, c] for name, p, c in query(UNPLACED_BY_NAME_SQL, g=gateway, l=llm, m=metrics)}
    assert {name: t for name, t in beyond_bypass.items() if t != [0, 0]} == unplaced
    if profile is DEFAULT_PROFILE:
        assert unplaced["gpt-4.1"][0] > 0 and unplaced["gpt-4o"][0] > 0  # orphans: no gateway row at all
    embedding = (PAYGO_BACKEND_ID, "text-embedding-3-large")
    assert by_key(expected)[embedding] == bypass[embedding]  # its only backend takes every record


def test_expected_unattributed_tokens_of_a_day_add_up_its_hours():
    source = SimulatedSource(SMALL)
    day = source.expected_unattributed_tokens(hours(DAY_START, 24))
    hourly = [by_key(source.expected_unattributed_tokens(hours(DAY_START + h * HOUR, 1))) for h in range(24)]
    assert by_key(day) == {
        key: (sum(hour[key][0] for hour in hourly), sum(hour[key][1] for hour in hourly)) for key in by_key(day)
    }
    # Hours whose gateway rows are lost leave their shared names' tokens unplaced: more unattributed.
    lost = SimulatedSource(replace(SMALL, missing_gateway_hours=frozenset({PEAK_HOUR})))
    lost_day = by_key(lost.expected_unattributed_tokens(hours(DAY_START, 24)))
    assert lost_day[PTU_BACKEND_ID, "gpt-4.1"][0] > by_key(day)[PTU_BACKEND_ID, "gpt-4.1"][0]
    assert (
        lost_day[PAYGO_BACKEND_ID, "text-embedding-3-large"] == by_key(day)[PAYGO_BACKEND_ID, "text-embedding-3-large"]
    )


# --- fault knobs ---------------------------------------------------------------------------------------------


def test_tokens_on_later_chunks_are_a_logging_fault_only():
    window = hours(PEAK_HOUR, 2)
    clean = SimulatedSource(SMALL)
    faulty = SimulatedSource(replace(SMALL, nonzero_chunk_token_fraction=0.5))
    faulty_llm = faulty.llm_logs(window).rows
    later = faulty_llm.filter(pc.greater(faulty_llm["SequenceNumber"], 0))
    assert pc.sum(later["PromptTokens"]).as_py() > 0
    assert faulty.expected_hourly_requests(PEAK_HOUR)["nonzero_token_chunk_records"] > 0

    def first_chunks(table: pa.Table) -> pa.Table:
        return canonical(table.filter(pc.equal(table["SequenceNumber"], 0)))

    assert first_chunks(faulty_llm).equals(first_chunks(clean.llm_logs(window).rows))
    assert faulty.gateway_logs(window).rows.equals(clean.gateway_logs(window).rows)
    assert faulty.deployment_metrics(window).rows.equals(clean.deployment_metrics(window).rows)
    assert faulty.expected_daily_usage(DAY).equals(clean.expected_daily_usage(DAY))


def test_missing_gateway_hours_lose_only_their_gateway_rows():
    window = hours(PEAK_HOUR - HOUR, 3)
    clean = SimulatedSource(SMALL)
    faulty = SimulatedSource(replace(SMALL, missing_gateway_hours=frozenset({PEAK_HOUR})))
    clean_gateway = clean.gateway_logs(window).rows
    outside_missing_hour = pc.or_(
        pc.less(clean_gateway["TimeGenerated"], PEAK_HOUR),
        pc.greater_equal(clean_gateway["TimeGenerated"], PEAK_HOUR + HOUR),
    )
    assert faulty.gateway_logs(window).rows.equals(clean_gateway.filter(outside_missing_hour))
    assert faulty.gateway_logs(hours(PEAK_HOUR, 1)).rows.num_rows == 0
    assert faulty.llm_logs(window).rows.equals(clean.llm_logs(window).rows)
    assert faulty.expected_hourly_requests(PEAK_HOUR)["gateway_rows_missing"]
    # the ground truth is the traffic that happened, lost rows included
    assert faulty.expected_daily_usage(DAY).equals(clean.expected_daily_usage(DAY))


def test_a_clean_profile_has_no_hazards():
    clean = replace(
        SMALL,
        duplicate_fraction=0.0,
        failed_fraction=0.0,
        chunked_fraction=0.0,
        non_llm_fraction=0.0,
        orphan_llm_fraction=0.0,
        unassigned_fraction=0.0,
        ptu_counts=(("gpt-4.1", 10_000), ("gpt-4o", 10_000)),  # never saturated: nothing spills
    )
    source = SimulatedSource(clean)
    window = hours(PEAK_HOUR, 1)
    gateway = source.gateway_logs(window).rows
    llm = source.llm_logs(TimeWindow(PEAK_HOUR - HOUR, PEAK_HOUR + 2 * HOUR)).rows
    assert pc.all(gateway["IsRequestSuccess"]).as_py()
    assert pc.max(llm["SequenceNumber"]).as_py() == 0
    unassigned_or_spilled = f"""
        SELECT count(*) FROM g
        WHERE ProductId = '' OR (BackendId = '{PAYGO_BACKEND_ID}' AND OperationId <> 'embeddings')
    """
    assert scalar(unassigned_or_spilled, g=gateway) == 0
    unmatched = scalar(
        "SELECT count(*) FROM g WHERE CorrelationId NOT IN (SELECT CorrelationId FROM l)", g=gateway, l=llm
    )
    assert unmatched == 0
    assert gateway.num_rows == scalar("SELECT count(DISTINCT CorrelationId) FROM g", g=gateway)


@pytest.mark.parametrize(
    "bad",
    [
        {"failed_fraction": 1.5},
        {"orphan_llm_fraction": 0.5, "failed_fraction": 0.4, "non_llm_fraction": 0.2},
        {"product_ids": ()},
        {"ptu_counts": (("gpt-4.1", 40),)},
        {"ptu_counts": (("gpt-4.1", 0), ("gpt-4o", 35))},
        {"product_ids": ("a", "a")},
        {"missing_gateway_hours": frozenset({datetime(2026, 3, 2, 15)})},
        {"missing_gateway_hours": frozenset({PEAK_HOUR + timedelta(minutes=5)})},
    ],
)
def test_invalid_profiles_are_refused(bad):
    with pytest.raises(ValueError):
        SimulationProfile(**bad)


def test_hourly_counts_need_an_hour_start():
    with pytest.raises(ValueError):
        SimulatedSource().expected_hourly_requests(PEAK_HOUR + timedelta(minutes=1))

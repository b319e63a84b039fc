"""SimulatedSource: the LogSource over simulated hours, and the ground truth of the same hours.

Hours are generated on demand and kept in a small LRU cache: an hourly run reads an hour and its
neighbours, and the next run reuses them, while a 10M-request day never sits in memory at once.
"""

from collections import OrderedDict
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

from chargeback_pipeline.sources.base import Fetched, TimeWindow
from chargeback_pipeline.sources.callers import NO_CALLERS, CallerIdentity
from chargeback_pipeline.sources.simulated.callers import (
    TRACE_KEY,
    caller_column,
    caller_daily_usage,
    trace_record_key_counts,
)
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_LIST, PTU_DEPLOYMENT_CODES
from chargeback_pipeline.sources.simulated.ground_truth import (
    bypass_tokens_by_deployment,
    daily_usage,
    hourly_request_counts,
    unattributed_tokens_by_deployment,
)
from chargeback_pipeline.sources.simulated.hour_requests import HourRequests
from chargeback_pipeline.sources.simulated.hours import (
    US_PER_HOUR,
    US_PER_SECOND,
    epoch_us,
    hours_overlapping,
    hours_starting_within,
)
from chargeback_pipeline.sources.simulated.log_rows import GeneratedHour
from chargeback_pipeline.sources.simulated.metrics import deployment_metrics_table
from chargeback_pipeline.sources.simulated.money_oracle import DayUsage, ProductCost, day_usage, expected_product_costs
from chargeback_pipeline.sources.simulated.profile import DEFAULT_PROFILE, SimulationProfile
from chargeback_pipeline.sources.simulated.traffic import generate_hour
from chargeback_pipeline.sources.simulated.workloads import WORKLOAD_HOME_DEPLOYMENT
from chargeback_pipeline.storage.schemas import CALLER_COLUMN, GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA


class SimulatedSource:
    """A deterministic LogSource of simulated APIM traffic, plus the ground truth of that traffic."""

    name = "simulated"
    _CACHED_HOURS = 4  # an hourly run touches hour-1 .. hour+1; the next run reuses them

    def __init__(self, profile: SimulationProfile = DEFAULT_PROFILE, callers: CallerIdentity = NO_CALLERS):
        self.profile = profile
        # With caller keys (sources/callers.py) the gateway rows carry CallerId as a source extracts it
        # from the trace records the simulated policy writes (callers.py), and the ground truth splits by it.
        self.callers = callers
        self._catalog = Catalog(profile)
        self._missing_gateway_hours_us = {epoch_us(hour) for hour in profile.missing_gateway_hours}
        self._hours: OrderedDict[int, GeneratedHour] = OrderedDict()

    # LogSource ---------------------------------------------------------------------------------------

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        start_us, end_us = epoch_us(window.start), epoch_us(window.end)
        tables = [
            self._hour(hour_us).gateway_rows.within(start_us, end_us)
            for hour_us in hours_overlapping(start_us, end_us)  # gateway rows never leave their hour
            if hour_us not in self._missing_gateway_hours_us
        ]
        rows = _concat(tables, GATEWAY_LOG_SCHEMA)
        if self.callers.configured:
            rows = rows.append_column(CALLER_COLUMN, caller_column(rows, TRACE_KEY in self.callers.trace_keys))
        return Fetched(rows)

    def llm_logs(self, window: TimeWindow) -> Fetched:
        start_us, end_us = epoch_us(window.start), epoch_us(window.end)
        # LLM records can sit a few seconds on the far side of their request's hour.
        tables = [
            self._hour(hour_us).llm_rows.within(start_us, end_us)
            for hour_us in hours_overlapping(start_us - US_PER_HOUR, end_us + US_PER_HOUR)
        ]
        return Fetched(_concat(tables, LLM_LOG_SCHEMA))

    def trace_record_keys(self, window: TimeWindow) -> dict[str, int]:
        """The metadata names of the trace records the simulated policy writes (callers.trace_records) over
        the window, and how many records carry each, for `chargeback discover`."""
        rows = self.gateway_logs(window).rows.select(["CorrelationId", "ProductId"])
        return trace_record_key_counts(rows)

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        """Hourly token totals per resource (ResourceId) and deployment: the logged SequenceNumber-0
        tokens plus bypass traffic. Both resources report their own `gpt-4.1` and `gpt-4o`."""
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        return Fetched(deployment_metrics_table(self.profile, hours, self._requests))

    # Ground truth ------------------------------------------------------------------------------------

    def expected_daily_usage(self, day: date) -> pa.Table:
        """The usage report of one UTC day, computed from the generated requests, not from the logs.

        Grain: (usage_date, product_id, subscription_id, model_name, deployment_name, backend_id) over
        the distinct gateway requests of the day. Empty product / subscription -> "unassigned"; model and
        deployment come from the SequenceNumber-0 LLM record, "unknown" without one. Tokens and calls
        count billable requests (successful with an LLM record); failed_calls counts unsuccessful ones;
        successful calls without LLM record and orphan LLM records are left out; first/last_seen span
        the billable and failed requests. Sorted by the key.

        It describes the traffic that happened: hours in `missing_gateway_hours` are included although
        their gateway rows are not returned, so a pipeline that loses them falls short of this answer.
        """
        if self.callers.configured:  # per product and caller: the report's grain with callers
            return caller_daily_usage(day, self._catalog, self._requests, TRACE_KEY in self.callers.trace_keys)
        return daily_usage(day, self._catalog, self._requests)

    def expected_hourly_requests(self, hour: datetime) -> dict:
        """Counts of the requests generated for one hour (gateway TimeGenerated in the hour).

        LLM counts cover the LLM records of this hour's requests (orphans included), wherever their
        own TimeGenerated falls; row counts include duplicates as generated, even for a missing hour.
        """
        hour_us = epoch_us(hour)
        if hour_us % US_PER_HOUR:
            raise ValueError(f"not an hour start: {hour}")
        missing = hour_us in self._missing_gateway_hours_us
        return hourly_request_counts(hour_us, self._requests(hour_us), self._catalog, missing)

    def expected_bypass_tokens(self, window: TimeWindow) -> pa.Table:
        """Per resource and deployment: tokens in deployment_metrics(window) that never passed APIM.

        Columns backend_id, deployment_name, resource_id, prompt_tokens, completion_tokens; one row per
        simulated deployment (zeros included), sorted by (backend_id, deployment_name).
        """
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        return bypass_tokens_by_deployment(self.profile, hours, self._requests)

    def expected_unattributed_tokens(self, window: TimeWindow) -> pa.Table:
        """Per resource and deployment: the tokens the pipeline must report as `unattributed` for the
        hours starting within the window (a UTC day in practice).

        Columns backend_id, deployment_name, prompt_tokens, completion_tokens; one row per simulated
        deployment (zeros included), sorted by (backend_id, deployment_name). Per hour h and resource
        deployment it is max(metric - placed logged tokens, 0), per prompt and completion, where the
        logged tokens are the distinct SequenceNumber-0 LLM records whose own TimeGenerated falls in h.
        A record is placed on its request's backend when that request has a gateway row the pipeline lands
        for hour h (the hour plus the join margin: a request across the hour boundary); otherwise (an orphan,
        or a gateway row lost by `missing_gateway_hours`) on its deployment name's only backend when it has one
        (`text-embedding-3-large`), and not at all when the name is shared (`gpt-4.1`, `gpt-4o`). So
        it is the bypass tokens plus, on shared names, the tokens of the unplaced records, counted on
        the resource that served them (whose metrics counted them). Computed from the generated
        requests, not from the emitted rows.
        """
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        return unattributed_tokens_by_deployment(self.profile, hours, self._requests, self._missing_gateway_hours_us)

    def expected_product_costs(self, day: date, pricing_file: str | Path, minor_unit: int) -> dict[str, ProductCost]:
        """Per product (and `unattributed`, `platform-unallocated`): what the day must cost, from the generated
        requests and the pricing file alone (`money_oracle`), in exact minor units with a rounding tolerance."""
        return expected_product_costs(self.day_usage(day, pricing_file), day, minor_unit)

    def day_usage(self, day: date, pricing_file: str | Path) -> DayUsage:
        """Who used what on the day, from the generated requests (`money_oracle.day_usage`): what the actual
        money oracle shares the simulated export out by."""
        return day_usage(
            pricing_file,
            day,
            self._requests,
            self._catalog.report_product_labels.to_pylist(),
            self._catalog.subscription_product,
            self.profile,
            self._missing_gateway_hours_us,
        )

    def expected_saturated_hours(self, window: TimeWindow) -> list[datetime]:
        """The hours starting within the window in which a PTU deployment saturated in at least one minute
        (its load did not fit its capacity): from the generated minute model, not from the rows."""
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        return [
            datetime.fromtimestamp(h // US_PER_SECOND, UTC)
            for h in hours
            if (self._requests(h).ptu_minute_utilisation >= 100).any()
        ]

    def expected_saturated_minutes(self, window: TimeWindow) -> dict[tuple[str, str], int]:
        """Per PTU deployment (backend_id, name): its saturated minutes in the hours starting within the
        window (utilisation 100: load it could not hold spilled)."""
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        counts = dict.fromkeys((DEPLOYMENT_LIST[code].key for code in PTU_DEPLOYMENT_CODES), 0)
        for hour_us in hours:
            saturated = (self._requests(hour_us).ptu_minute_utilisation >= 100).sum(axis=1)
            for row, code in enumerate(PTU_DEPLOYMENT_CODES):
                counts[DEPLOYMENT_LIST[code].key] += int(saturated[row])
        return counts

    def expected_ptu_turned_away(self, window: TimeWindow) -> dict[tuple[str, str], tuple[int, int]]:
        """Per PTU deployment (backend_id, name): (requests its pay-as-you-go twin served instead, 429s it
        answered), over the gateway requests of the hours starting within the window that have an LLM
        record (the LLM log is what names a request's deployment). From the requests, not the rows."""
        hours = hours_starting_within(epoch_us(window.start), epoch_us(window.end))
        counts = {d.key: [0, 0] for d in DEPLOYMENT_LIST if d.billing == "ptu"}
        for hour_us in hours:
            requests = self._requests(hour_us)
            logged = requests.has_gateway_row & requests.has_llm_record
            home = WORKLOAD_HOME_DEPLOYMENT[requests.workload]
            for code, deployment in enumerate(DEPLOYMENT_LIST):
                if deployment.key in counts:
                    counts[deployment.key][0] += int((logged & requests.is_spillover & (home == code)).sum())
                    served = logged & (requests.deployment == code)
                    counts[deployment.key][1] += int((served & (requests.response_code == 429)).sum())
        return {key: (spilled, throttled) for key, (spilled, throttled) in counts.items()}

    # Internals ---------------------------------------------------------------------------------------

    def _hour(self, hour_start_us: int) -> GeneratedHour:
        """The generated hour, from a small LRU cache: memory stays bounded on 10M-request days."""
        generated = self._hours.get(hour_start_us)
        if generated is None:
            generated = GeneratedHour(generate_hour(self.profile, self._catalog, hour_start_us), self._catalog)
            self._hours[hour_start_us] = generated
            if len(self._hours) > self._CACHED_HOURS:
                self._hours.popitem(last=False)
        else:
            self._hours.move_to_end(hour_start_us)
        return generated

    def _requests(self, hour_start_us: int) -> HourRequests:
        """The requests of a generated hour: all that metrics and ground truth need (never its rows)."""
        return self._hour(hour_start_us).requests


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()

"""The simulated source as a Dagster resource (the default: no Azure account needed)."""

from datetime import datetime

from pydantic import Field

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogSourceResource


class SimulatedSourceResource(LogSourceResource):
    """Deterministic simulated APIM traffic with its ground truth (README: the simulated source)."""

    simulated_requests_per_hour: int = Field(default=2000, ge=0, le=5_000_000)
    simulated_seed: int = 20260101
    # Fault injection for drills and tests: SimulationProfile fractions by name (e.g. bypass_fraction),
    # and hours (ISO 8601, UTC) whose gateway rows the simulator loses.
    simulated_faults: dict[str, float] = {}
    simulated_missing_gateway_hours: list[str] = []

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile

        missing = frozenset(datetime.fromisoformat(h) for h in self.simulated_missing_gateway_hours)
        return SimulatedSource(
            SimulationProfile(
                requests_per_hour=self.simulated_requests_per_hour,
                seed=self.simulated_seed,
                missing_gateway_hours=missing,
                **self.simulated_faults,
            )
        )

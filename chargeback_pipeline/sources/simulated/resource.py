"""The simulated source as a Dagster resource (the default: no Azure account needed)."""

from datetime import datetime

from pydantic import Field, field_validator

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.sources.simulated.catalog import parse_surge_day
from chargeback_pipeline.sources.simulated.profile import DEFAULT_PROFILE


class SimulatedSourceResource(LogSourceResource):
    """Deterministic simulated APIM traffic with its ground truth (README: the simulated source)."""

    simulated_requests_per_hour: int = Field(default=2000, ge=0, le=5_000_000)
    simulated_seed: int = 20260101
    # Fault injection for drills and tests: SimulationProfile fractions by name (e.g. bypass_fraction),
    # and hours (ISO 8601, UTC) whose gateway rows the simulator loses.
    simulated_faults: dict[str, float] = {}
    simulated_missing_gateway_hours: list[str] = []
    # A cost anomaly to find (README "Budgets and anomalies"): this product's tokens times the factor on
    # these UTC days ("2026-11-20" a spike on that day, "2026-11-20.." a step from that day on).
    simulated_surge_product: str = ""
    simulated_surge_factor: float = Field(default=1.0, ge=0, le=100)
    simulated_surge_days: list[str] = []
    # The simulated PTU deployments' PTU counts, "name=count" each (e.g. gpt-4.1=65,gpt-4o=60): the load
    # against them decides spill, 429s and utilisation. Unset: the example pricing file's counts.
    simulated_ptu_counts: list[str] = []

    @field_validator("simulated_ptu_counts")
    @classmethod
    def _ptu_counts(cls, value: list[str]) -> list[str]:
        _parse_ptu_counts(value)
        return value

    @field_validator("simulated_surge_product")
    @classmethod
    def _known_product(cls, value: str) -> str:
        if value and value not in DEFAULT_PROFILE.product_ids:
            raise ValueError(f"must be one of the simulated products {', '.join(DEFAULT_PROFILE.product_ids)}")
        return value

    @field_validator("simulated_surge_days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                parse_surge_day(text)
            except ValueError:
                raise ValueError(f"{text!r} is neither a day (2026-11-20) nor a day on (2026-11-20..)") from None
        return value

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile

        missing = frozenset(datetime.fromisoformat(h) for h in self.simulated_missing_gateway_hours)
        return SimulatedSource(
            SimulationProfile(
                requests_per_hour=self.simulated_requests_per_hour,
                seed=self.simulated_seed,
                missing_gateway_hours=missing,
                surge_product=self.simulated_surge_product,
                surge_factor=self.simulated_surge_factor,
                surge_days=tuple(self.simulated_surge_days),
                ptu_counts=_parse_ptu_counts(self.simulated_ptu_counts),
                **self.simulated_faults,
            ),
            callers=self.caller_identity(),
        )


def _parse_ptu_counts(entries: list[str]) -> tuple[tuple[str, int], ...]:
    """["gpt-4.1=65", ...] over the defaults: every PTU deployment keeps its default unless named."""
    counts = dict(DEFAULT_PROFILE.ptu_counts)
    for entry in entries:
        name, _, count = entry.partition("=")
        if name.strip() not in counts or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(
                f"{entry!r}: each entry is <PTU deployment>=<count >= 1>, deployments {', '.join(sorted(counts))}"
            )
        counts[name.strip()] = int(count)
    return tuple(sorted(counts.items()))

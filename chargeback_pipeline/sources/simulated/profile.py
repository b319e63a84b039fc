"""What traffic to simulate: the knobs of the simulator, validated once, and their defaults."""

from dataclasses import dataclass
from datetime import datetime

from chargeback_pipeline.sources.simulated.deployments import PTU_DEPLOYMENT_NAMES
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, epoch_us

# RNG seeds are [profile seed, hour epoch seconds, stream]. Traffic uses [seed, hour] (a missing third
# word counts as 0), so these stream ids keep the other draws apart from it.
BYPASS_STREAM = 1
CATALOG_STREAM = 2

# PTU per PTU deployment: what pricing.example.yaml deploys (it must say the same, or its capacity is wrong).
DEFAULT_PTU_COUNTS = (("gpt-4.1", 65), ("gpt-4o", 60))

_DEFAULT_PRODUCT_IDS = (
    "customer-support-bot",
    "contract-search",
    "hr-assistant",
    "code-review",
    "marketing-copy",
    "finance-analytics",
)


@dataclass(frozen=True)
class SimulationProfile:
    """What traffic to simulate. Every knob has a realistic default; tests use them to inject faults.

    The PTU deployments (gpt-4.1, gpt-4o on the PTU resource) have `ptu_counts` PTU each; their load
    against that capacity, minute by minute, decides what spills to pay-as-you-go, when Azure's
    utilisation metric reads 100 % and when they answer 429 (`ptu_minutes`). The defaults are the
    example pricing file's counts, sized like a real tenant for the default 2,000 requests an hour: busy
    afternoon minutes saturate, nights idle. A profile of another volume states counts that fit it.
    """

    requests_per_hour: int = 2000  # mean gateway requests per hour, shaped by a diurnal curve
    seed: int = 20260101
    duplicate_fraction: float = 0.02  # share of gateway rows and of LLM rows emitted twice
    failed_fraction: float = 0.03
    chunked_fraction: float = 0.05  # LLM requests split into 2-4 records
    non_llm_fraction: float = 0.02  # successful calls with no LLM record ("list-deployments")
    orphan_llm_fraction: float = 0.005  # LLM records whose gateway row does not exist
    unassigned_fraction: float = 0.03  # calls with empty ProductId and ApimSubscriptionId
    ptu_counts: tuple[tuple[str, int], ...] = DEFAULT_PTU_COUNTS  # (PTU deployment name, PTU count)
    bypass_fraction: float = 0.01  # deployment tokens that never passed APIM, relative per deployment-hour
    nonzero_chunk_token_fraction: float = 0.0  # fault: later chunks that (wrongly) carry tokens
    missing_gateway_hours: frozenset[datetime] = frozenset()  # fault: hours whose gateway rows are lost
    product_ids: tuple[str, ...] = _DEFAULT_PRODUCT_IDS  # ordered from heaviest to tiniest volume
    # Cost anomalies (drills, tests, the demo): `surge_product`'s tokens times `surge_factor` on `surge_days`
    # (UTC days: "2026-11-20" one day, a spike; "2026-11-20.." that day on, a step). `catalog.Catalog`
    # reads them; no random draw changes, so everything else stays as it was.
    surge_product: str = ""
    surge_factor: float = 1.0
    surge_days: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.requests_per_hour < 0 or self.seed < 0:
            raise ValueError("requests_per_hour and seed must be >= 0")
        fractions = {
            name: getattr(self, name)
            for name in (
                "duplicate_fraction",
                "failed_fraction",
                "chunked_fraction",
                "non_llm_fraction",
                "orphan_llm_fraction",
                "unassigned_fraction",
                "bypass_fraction",
                "nonzero_chunk_token_fraction",
            )
        }
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.orphan_llm_fraction + self.failed_fraction + self.non_llm_fraction > 1.0:
            raise ValueError("orphan_llm_fraction + failed_fraction + non_llm_fraction must not exceed 1")
        if not self.product_ids or len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("product_ids must be non-empty and unique")
        if "" in self.product_ids:
            raise ValueError("an empty product id is how unassigned calls look; use a name")
        names = sorted(name for name, _ in self.ptu_counts)
        if names != list(PTU_DEPLOYMENT_NAMES) or any(count < 1 for _, count in self.ptu_counts):
            raise ValueError(
                f"ptu_counts must give each PTU deployment ({', '.join(PTU_DEPLOYMENT_NAMES)}) once, a count >= 1"
            )
        for hour in self.missing_gateway_hours:
            if hour.tzinfo is None or epoch_us(hour) % US_PER_HOUR:
                raise ValueError(f"missing_gateway_hours must hold timezone-aware hour starts, got {hour}")

    @property
    def ptu_count_of(self) -> dict[str, int]:
        """PTU deployment name -> its PTU count."""
        return dict(self.ptu_counts)


DEFAULT_PROFILE = SimulationProfile()

"""The chargeback lines of one day while they are built: what a line is keyed by, and what it sums."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from chargeback_pipeline.core.billing.pricing import BackendKind, Pricing
from chargeback_pipeline.core.billing.schemas import CostType


@dataclass(frozen=True)
class LineKey:
    product_id: str
    subscription_id: str | None
    model_name: str
    deployment_name: str
    backend_id: str
    cost_type: CostType
    caller_id: str | None = None  # who called, where the day was attributed with callers

    def order(self) -> tuple[str, ...]:
        """The deterministic order of lines: in the table, and for ties in largest-remainder splits."""
        return (
            self.deployment_name,
            self.backend_id,
            self.product_id,
            self.subscription_id or "",
            self.model_name,
            self.cost_type.value,
            self.caller_id or "",
        )


@dataclass
class Line:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    weighted_tokens: Decimal | None = Decimal(0)
    ptu_minor: int = 0
    paygo_minor: int = 0

    def is_empty(self) -> bool:
        return not (self.calls or self.prompt_tokens or self.completion_tokens or self.ptu_minor or self.paygo_minor)


@dataclass(frozen=True)
class Usage:
    """Tokens of one line in one hour."""

    hour: datetime
    key: LineKey
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0


def token_cost_type(pricing: Pricing, backend_id: str) -> CostType:
    return CostType.ptu if pricing.backend(backend_id).kind == BackendKind.ptu else CostType.paygo


def weighted_tokens(usage: Usage, weight: Decimal | None) -> Decimal | None:
    """Input-equivalent tokens: cached prompt tokens weigh nothing, an output token weighs `weight`."""
    if weight is None:
        return None
    return Decimal(usage.prompt_tokens - usage.cached_prompt_tokens) + Decimal(usage.completion_tokens) * weight


@dataclass
class DayLines:
    """The chargeback lines of one day as they are built."""

    pricing: Pricing
    day: date
    lines: defaultdict[LineKey, Line] = field(default_factory=lambda: defaultdict(Line))
    with_callers: bool = False  # the usage carried caller_id: the lines and origin shares carry it too
    # Each origin charge (PTU deployment-hour, pay-as-you-go deployment-day) with its split, as recorded
    # by the allocation (origin_charges.OriginCharge): kept for the FOCUS 1.3 export.
    origins: list = field(default_factory=list)

    def weight_of(self, key: LineKey) -> Decimal | None:
        model = self.pricing.deployment(key.backend_id, key.deployment_name).model
        return self.pricing.model(model).output_token_weight

    def add_tokens(self, usage: Usage) -> None:
        line = self.lines[usage.key]
        line.calls += usage.calls
        line.prompt_tokens += usage.prompt_tokens
        line.completion_tokens += usage.completion_tokens
        weighted = weighted_tokens(usage, self.weight_of(usage.key))
        line.weighted_tokens = (
            None if weighted is None or line.weighted_tokens is None else line.weighted_tokens + weighted
        )

"""The pricing file: what provisioned (PTU) capacity and pay-as-you-go tokens cost, validated at load.

The file is YAML; `pricing.example.yaml` at the repository root documents every setting, and
`CHARGEBACK_PRICING_FILE` points at the user's own. Loading fails at once, naming each offending
setting by its path (`pricing.backends.<id>.deployments.<name>.rates[1].effective_from: ...`), so a
typo never turns into a wrong bill weeks later.

Rules this module fixes (the allocation relies on them):
- Money is `Decimal` from the file on (YAML floats are read as decimals, never as binary floats).
- A rate list is ordered by `effective_from` (strictly increasing dates, UTC). The rate in force on
  day D is the last one whose `effective_from` <= D; a day is priced entirely with the rates in force
  on it.
- A PTU deployment costs `ptu_count * hourly_rate_per_ptu` per deployed hour, or, with a monthly
  reservation, `ptu_count * monthly_reservation_per_ptu / H` per deployed hour, where H is the number
  of hours of that calendar month in UTC (days * 24: 744 in January, 672 in a 28-day February, 696 in
  a 29-day one). A deployment fully deployed for a month therefore costs exactly the monthly amount.
- A deployment is deployed on [deployed_from, deployed_until) (whole UTC hours); outside it costs
  nothing. deployed_from defaults to midnight UTC of its first rate's effective_from.
"""

import calendar
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chargeback_pipeline.core.billing.caller_rules import CallerRule
from chargeback_pipeline.core.billing.meters import MeterKind
from chargeback_pipeline.core.periods import utc_day_start

# ISO 4217 minor units (digits after the decimal point) of the currencies a bill is likely to use.
# Any other currency works by setting `minor_unit` in the file.
ISO_4217_MINOR_UNITS: dict[str, int] = {
    "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2, "DKK": 2,
    "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3,
    "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PLN": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "USD": 2, "VND": 0,
    "ZAR": 2,
}  # fmt: skip

# "1 output token = N input tokens" when sizing and measuring PTU capacity, from Microsoft's PTU
# documentation: 4 for gpt-4.1 and newer, 3 for gpt-4o era models. Embeddings produce no output tokens.
DEFAULT_OUTPUT_TOKEN_WEIGHTS: dict[str, int] = {
    "gpt-4.1": 4, "gpt-4.1-mini": 4, "gpt-4.1-nano": 4, "o3": 4, "o4-mini": 4,
    "gpt-4o": 3, "gpt-4o-mini": 3,
    "text-embedding-3-small": 1, "text-embedding-3-large": 1, "text-embedding-ada-002": 1,
}  # fmt: skip

# Input tokens per minute one PTU sustains (Microsoft's PTU sizing table). Only the `unallocated` and
# `fixed` unused-capacity policies need it: they measure what part of an hour's capacity was used.
DEFAULT_PTU_INPUT_TOKENS_PER_MINUTE: dict[str, int] = {
    "gpt-4.1": 3000, "gpt-4.1-mini": 14900, "gpt-4.1-nano": 59400, "o3": 3000, "o4-mini": 5400,
    "gpt-4o": 2500, "gpt-4o-mini": 37000,
}  # fmt: skip

_MODEL_VERSION_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # "gpt-4o-2024-11-20" -> "gpt-4o"


class PricingError(ValueError):
    """The pricing file is missing, malformed, or lacks what a computation needs; the message says where."""


class UnknownDeploymentError(PricingError):
    """Usage names a backend or deployment the pricing file does not price."""


class NoRateError(PricingError):
    """No rate is in force on the day asked for (the first rate starts later)."""


class UnusedCapacityPolicy(StrEnum):
    proportional = "proportional"  # spread over the hour's users by weighted tokens
    unallocated = "unallocated"  # left on the "platform-unallocated" line
    fixed = "fixed"  # split by fixed shares per product


class CachedTokenMode(StrEnum):
    # The gateway logs carry no cached-token counts, so today every prompt token counts in full.
    count_in_full = "count_in_full"
    # Use a `cached_prompt_tokens` usage column where one exists: cached tokens weigh nothing on PTU
    # capacity (Microsoft deducts them 100%) and cost `cached_input_per_1k` on pay-as-you-go.
    deduct = "deduct"


class BackendKind(StrEnum):
    ptu = "ptu"
    paygo = "paygo"


class _Setting(BaseModel):
    # Unknown keys are errors: a misspelt setting must not silently fall back to its default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenPrices(_Setting):
    """Pay-as-you-go prices of one model per 1,000 tokens, in force from `effective_from`."""

    effective_from: date
    input_per_1k: Decimal = Field(ge=0)
    output_per_1k: Decimal = Field(ge=0)
    cached_input_per_1k: Decimal | None = Field(default=None, ge=0)

    @property
    def cached_input_price(self) -> Decimal:
        return self.input_per_1k if self.cached_input_per_1k is None else self.cached_input_per_1k


class PtuRate(_Setting):
    """What one PTU deployment costs from `effective_from` on: an hourly rate or a monthly reservation."""

    effective_from: date
    ptu_count: int = Field(gt=0)
    hourly_rate_per_ptu: Decimal | None = Field(default=None, ge=0)
    monthly_reservation_per_ptu: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _exactly_one_price(self) -> "PtuRate":
        if (self.hourly_rate_per_ptu is None) == (self.monthly_reservation_per_ptu is None):
            raise ValueError("set exactly one of hourly_rate_per_ptu or monthly_reservation_per_ptu")
        return self

    def hour_cost(self, hour_start: datetime) -> Fraction:
        """The exact (unrounded) cost of one deployed hour at this rate."""
        if self.hourly_rate_per_ptu is not None:
            return self.ptu_count * Fraction(self.hourly_rate_per_ptu)
        assert self.monthly_reservation_per_ptu is not None
        return self.ptu_count * Fraction(self.monthly_reservation_per_ptu) / hours_in_month(hour_start)


class _Dated(Protocol):
    effective_from: date


R = TypeVar("R", bound=_Dated)


def rate_in_force(rates: Sequence[R], day: date, what: str) -> R:
    """The last rate whose effective_from is on or before `day` (rates are sorted, validated at load)."""
    index = bisect_right([rate.effective_from for rate in rates], day)
    if index == 0:
        first = f"the first rate is effective from {rates[0].effective_from}" if rates else "it has no rates"
        raise NoRateError(f"no rate in force on {day} for {what}: {first}")
    return rates[index - 1]


def hours_in_month(moment: date | datetime) -> int:
    """Hours of the UTC calendar month containing `moment`: the month's real length."""
    return calendar.monthrange(moment.year, moment.month)[1] * 24


class Deployment(_Setting):
    """One model deployment on a backend. PTU deployments carry `rates`; pay-as-you-go ones do not."""

    model: str = Field(min_length=1)
    deployed_from: datetime | None = None
    deployed_until: datetime | None = None
    rates: tuple[PtuRate, ...] = ()
    # PTU rightsizing: the counts this PTU deployment can have (its minimum, then steps); unset, the
    # CHARGEBACK_PTU_MINIMUM / CHARGEBACK_PTU_INCREMENT defaults. Regional deployments differ by model.
    ptu_minimum: int | None = Field(default=None, gt=0)
    ptu_increment: int | None = Field(default=None, gt=0)

    @field_validator("deployed_from", "deployed_until", mode="before")
    @classmethod
    def _date_is_midnight_utc(cls, value: Any) -> Any:
        # A bare YAML date (2026-01-01) means that day's midnight UTC.
        if isinstance(value, date) and not isinstance(value, datetime):
            return utc_day_start(value)
        return value

    @field_validator("deployed_from", "deployed_until")
    @classmethod
    def _whole_utc_hour(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-01-01T00:00:00Z")
        value = value.astimezone(UTC)
        if value != value.replace(minute=0, second=0, microsecond=0):
            raise ValueError("must be on a whole hour (PTU is billed per deployed hour)")
        return value

    @property
    def billed_from(self) -> datetime | None:
        if self.deployed_from is not None:
            return self.deployed_from
        if not self.rates:
            return None
        first = self.rates[0].effective_from
        return datetime(first.year, first.month, first.day, tzinfo=UTC)

    def is_deployed(self, hour_start: datetime) -> bool:
        start = self.billed_from
        if start is None or hour_start < start:
            return False
        return self.deployed_until is None or hour_start < self.deployed_until

    def rate_on(self, day: date) -> PtuRate:
        return rate_in_force(self.rates, day, f"PTU deployment model {self.model!r}")

    def hour_cost(self, hour_start: datetime) -> Fraction:
        """Exact cost of the hour starting at `hour_start` (zero when not deployed)."""
        if not self.is_deployed(hour_start):
            return Fraction(0)
        return self.rate_on(hour_start.date()).hour_cost(hour_start)


class Backend(_Setting):
    """An APIM backend (`BackendId` in the gateway log): one Azure OpenAI resource and its deployments."""

    kind: BackendKind
    resource_id: str | None = None  # the Azure OpenAI resource's ARM id, used as FOCUS ResourceId
    deployments: dict[str, Deployment] = Field(min_length=1)


class ModelPricing(_Setting):
    output_token_weight: Decimal | None = Field(default=None, gt=0)
    ptu_input_tokens_per_minute: int | None = Field(default=None, gt=0)
    rates: tuple[TokenPrices, ...] = ()


class UnusedCapacity(_Setting):
    policy: UnusedCapacityPolicy = UnusedCapacityPolicy.proportional
    fixed_shares: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("fixed_shares")
    @classmethod
    def _shares_are_fractions(cls, shares: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [product for product, share in shares.items() if not 0 < share <= 1]
        if bad:
            raise ValueError(f"each share must be > 0 and <= 1 (not: {', '.join(bad)})")
        return shares

    @model_validator(mode="after")
    def _fixed_shares_sum_to_one(self) -> "UnusedCapacity":
        if self.policy == UnusedCapacityPolicy.fixed:
            total = sum(self.fixed_shares.values(), Decimal(0))
            if total != 1:
                raise ValueError(f"policy 'fixed' needs fixed_shares that sum to exactly 1 (they sum to {total})")
        return self


class FocusAccount(_Setting):
    """Who the FOCUS export names as the billing account."""

    billing_account_id: str = Field(default="azure-openai-chargeback", min_length=1)
    billing_account_name: str = Field(default="Azure OpenAI chargeback", min_length=1)


class MeterMapping(_Setting):
    """What a cost export meter bills (core.billing.meters): needed only where its name does not say."""

    kind: MeterKind
    model: str | None = None  # the model of the deployments it bills; not needed for provisioned meters


class Pricing(_Setting):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    minor_unit: int | None = Field(default=None, ge=0, le=4)
    cached_tokens: CachedTokenMode = CachedTokenMode.count_in_full
    unused_capacity: UnusedCapacity = Field(default_factory=UnusedCapacity)
    models: dict[str, ModelPricing] = Field(min_length=1)
    backends: dict[str, Backend] = Field(min_length=1)
    focus: FocusAccount = Field(default_factory=FocusAccount)
    # Cost export meters by name (README "Actual cost: the Cost Management export").
    meters: dict[str, MeterMapping] = Field(default_factory=dict)
    # Allocation rules by caller (caller_rules.py): caller id -> product and/or cost centre.
    callers: dict[str, CallerRule] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fill_model_defaults(cls, data: Any) -> Any:
        """Write Microsoft's defaults into the model settings, so a loaded Pricing shows what it uses."""
        if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
            return data
        models = {}
        for name, settings in data["models"].items():
            settings = {} if settings is None else settings
            if isinstance(settings, Mapping):
                settings = dict(settings)
                family = model_family(str(name))
                if family in DEFAULT_OUTPUT_TOKEN_WEIGHTS:
                    settings.setdefault("output_token_weight", DEFAULT_OUTPUT_TOKEN_WEIGHTS[family])
                if family in DEFAULT_PTU_INPUT_TOKENS_PER_MINUTE:
                    settings.setdefault("ptu_input_tokens_per_minute", DEFAULT_PTU_INPUT_TOKENS_PER_MINUTE[family])
            models[name] = settings
        return {**data, "models": models}

    @model_validator(mode="after")
    def _consistent(self) -> "Pricing":
        problems = _consistency_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def currency_minor_unit(self) -> int:
        if self.minor_unit is not None:
            return self.minor_unit
        return ISO_4217_MINOR_UNITS[self.currency]

    def backend(self, backend_id: str) -> Backend:
        try:
            return self.backends[backend_id]
        except KeyError:
            known = ", ".join(sorted(self.backends))
            raise UnknownDeploymentError(
                f"backend {backend_id!r} is not in the pricing file (pricing.backends has: {known})"
            ) from None

    def deployment(self, backend_id: str, deployment_name: str) -> Deployment:
        backend = self.backend(backend_id)
        try:
            return backend.deployments[deployment_name]
        except KeyError:
            raise UnknownDeploymentError(
                f"deployment {deployment_name!r} on backend {backend_id!r} is not in the pricing file: "
                f"add it under pricing.backends.{backend_id}.deployments"
            ) from None

    def missing_entries(self, used: set[tuple[str, str, str | None]]) -> list[str]:
        """What the file lacks to price `used` (backend_id, deployment_name, model_name or None): one YAML
        snippet per backend, every missing deployment (and the models it needs) in place."""
        missing: dict[str, list[str]] = {}
        models: set[str] = set()
        for backend_id, name, model in sorted(used, key=lambda u: (u[0], u[1], u[2] or "")):
            backend = self.backends.get(backend_id)
            if backend is not None and name in backend.deployments:
                continue
            lines = missing.setdefault(backend_id, [])
            if f"      {name}:" not in lines:
                lines += [f"      {name}:", f"        model: {model or '<model name>'}"]
            if model and model not in self.models:
                models.add(model)
        snippets = []
        for backend_id, lines in missing.items():
            head = [f"  {backend_id}:"]
            if backend_id not in self.backends:
                head += ["    kind: ptu | paygo", "    resource_id: <the Azure OpenAI resource's ARM id>"]
            snippets.append("\n".join([*head, "    deployments:", *lines]))
        for model in sorted(models):
            snippets.append(f"models:\n  {model}:\n    rates: [...]  # pay-as-you-go prices, see pricing.example.yaml")
        return snippets

    def backend_of_deployment(self, deployment_name: str) -> str:
        """The one backend serving `deployment_name` (for tables, like metrics, that carry no backend)."""
        owners = [bid for bid, backend in self.backends.items() if deployment_name in backend.deployments]
        if not owners:
            raise UnknownDeploymentError(f"deployment {deployment_name!r} is not in the pricing file")
        if len(owners) > 1:
            raise UnknownDeploymentError(
                f"deployment {deployment_name!r} exists on several backends ({', '.join(owners)}): "
                "the table needs a backend_id column"
            )
        return owners[0]

    def deployment_names(self) -> set[str]:
        """Every deployment name the file prices, on any backend."""
        return {name for backend in self.backends.values() for name in backend.deployments}

    def model(self, model_name: str) -> ModelPricing:
        try:
            return self.models[model_name]
        except KeyError:
            raise PricingError(f"model {model_name!r} is not under pricing.models") from None

    def token_prices_on(self, model_name: str, day: date) -> TokenPrices:
        return rate_in_force(self.model(model_name).rates, day, f"model {model_name!r} (pricing.models)")

    def ptu_capacity_per_hour(self, backend_id: str, deployment_name: str, day: date) -> int | None:
        """Weighted (input-equivalent) tokens a PTU deployment can serve in one hour, if known."""
        deployment = self.deployment(backend_id, deployment_name)
        per_minute = self.model(deployment.model).ptu_input_tokens_per_minute
        if per_minute is None:
            return None
        return deployment.rate_on(day).ptu_count * per_minute * 60


def model_family(model_name: str) -> str:
    """A model name without its version date: "gpt-4o-2024-11-20" -> "gpt-4o"."""
    return _MODEL_VERSION_SUFFIX.sub("", model_name)


def _ordering_problems(path: str, rates: Sequence[_Dated]) -> list[str]:
    return [
        f"{path}[{i}].effective_from: {later.effective_from} must be after "
        f"rates[{i - 1}].effective_from ({earlier.effective_from}); list rates oldest first, one per date"
        for i, (earlier, later) in enumerate(pairwise(rates), start=1)
        if later.effective_from <= earlier.effective_from
    ]


def _consistency_problems(pricing: Pricing) -> list[str]:
    """Cross-setting rules, each message naming the setting's full path."""
    problems: list[str] = []
    if pricing.minor_unit is None and pricing.currency not in ISO_4217_MINOR_UNITS:
        problems.append(
            f"pricing.currency: minor unit of {pricing.currency!r} unknown; set pricing.minor_unit (e.g. 2)"
        )
    for name, model in pricing.models.items():
        problems += _ordering_problems(f"pricing.models.{name}.rates", model.rates)
    needs_capacity = pricing.unused_capacity.policy != UnusedCapacityPolicy.proportional
    for backend_id, backend in pricing.backends.items():
        for name, deployment in backend.deployments.items():
            path = f"pricing.backends.{backend_id}.deployments.{name}"
            problems += _deployment_problems(pricing, backend, deployment, path, needs_capacity)
    return problems


def _deployment_problems(
    pricing: Pricing, backend: Backend, deployment: Deployment, path: str, needs_capacity: bool
) -> list[str]:
    problems = _ordering_problems(f"{path}.rates", deployment.rates)
    model = pricing.models.get(deployment.model)
    if model is None:
        problems.append(f"{path}.model: {deployment.model!r} is not under pricing.models")
    if backend.kind == BackendKind.paygo:
        if deployment.rates:
            problems.append(
                f"{path}.rates: a pay-as-you-go deployment has no PTU rates; "
                f"its prices are pricing.models.{deployment.model}.rates"
            )
        for sizing in ("ptu_minimum", "ptu_increment"):
            if getattr(deployment, sizing) is not None:
                problems.append(f"{path}.{sizing}: only a PTU deployment has PTU counts")
        if model is not None and not model.rates:
            problems.append(f"pricing.models.{deployment.model}.rates: needed to price pay-as-you-go deployment {path}")
        return problems
    if not deployment.rates:
        problems.append(f"{path}.rates: a PTU deployment needs at least one rate")
    first = deployment.rates[0].effective_from if deployment.rates else None
    if deployment.deployed_from is not None and first is not None and deployment.deployed_from.date() < first:
        problems.append(f"{path}.deployed_from: is before its first rate (rates[0].effective_from {first})")
    start = deployment.billed_from
    if deployment.deployed_until is not None and start is not None and deployment.deployed_until <= start:
        problems.append(f"{path}.deployed_until: must be after deployed_from ({start.isoformat()})")
    if model is not None and model.output_token_weight is None:
        problems.append(
            f"pricing.models.{deployment.model}.output_token_weight: needed to weigh tokens on PTU "
            f"deployment {path}; no default is known for this model"
        )
    if needs_capacity and model is not None and model.ptu_input_tokens_per_minute is None:
        problems.append(
            f"pricing.models.{deployment.model}.ptu_input_tokens_per_minute: needed by unused_capacity.policy "
            f"{pricing.unused_capacity.policy.value!r} to measure unused capacity; no default is known"
        )
    return problems


class DecimalSafeLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as Decimal (money must never pass through binary floats)
    and rejects duplicate keys (a repeated deployment must not silently replace the first)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node)
    try:
        return Decimal(str(text).replace("_", ""))
    except InvalidOperation:
        return text  # .inf / .nan: left as text, rejected by validation with the setting's name


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise PricingError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node)


def _construct_date(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as error:  # 2026-02-30: a date-shaped value that is no date
        raise PricingError(
            f"{loader.construct_scalar(node)!r} at line {node.start_mark.line + 1} is not a date ({error})"
        ) from None


DecimalSafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
DecimalSafeLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)
DecimalSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _setting_path(loc: tuple) -> str:
    path = "pricing"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(error: ValidationError) -> list[str]:
    messages = []
    for item in error.errors(include_url=False):
        if item["type"] == "value_error":
            reason = str(item["ctx"]["error"])
        elif item["type"] == "extra_forbidden":
            reason = "not a known setting (check the spelling against pricing.example.yaml)"
        else:
            reason = item["msg"]
        if item["loc"]:
            messages.append(f"{_setting_path(item['loc'])}: {reason}")
        else:  # cross-setting problems, one a line, each already naming its full path
            messages += reason.splitlines()
    return messages


def parse_pricing(data: Any, source: str = "pricing") -> Pricing:
    """Validate an already-parsed pricing document (a mapping), raising PricingError that names settings."""
    if not isinstance(data, Mapping):
        raise PricingError(f"{source}: the pricing file must be a YAML mapping of settings")
    try:
        return Pricing.model_validate(data)
    except ValidationError as error:
        problems = "\n".join(f"  - {message}" for message in _describe(error))
        raise PricingError(f"invalid pricing file {source}:\n{problems}") from None


def load_pricing(path: str | Path) -> Pricing:
    """Read and validate the pricing YAML file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PricingError(f"cannot read pricing file {path}: {error.strerror or error}") from None
    try:
        data = yaml.load(text, Loader=DecimalSafeLoader)  # a SafeLoader subclass: no arbitrary objects
    except PricingError as error:
        raise PricingError(f"invalid pricing file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise PricingError(f"pricing file {path} is not valid YAML: {error}") from None
    return parse_pricing(data, source=str(path))

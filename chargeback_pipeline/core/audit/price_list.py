"""The pricing file read a second time, by the audit alone: plain `yaml.safe_load` and its own arithmetic.

The money engine reads the same file through `core.billing.pricing` (validated pydantic models, its hour
costs, its weights). The audit must not share that code, or a bug in it would judge itself; so this module
reads only the settings it needs, as the file states them (README: Money, the setting table), and prices a
PTU day from first principles: every deployed hour costs `ptu_count x hourly_rate_per_ptu`, or `ptu_count x
monthly_reservation_per_ptu / (days in that month x 24)`; a month's hours are rounded cumulatively, half to
even, so a day costs round(cost of the month up to the day's end) - round(cost up to its start).
The file is validated when the code location loads, so a malformed one never reaches here.
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import yaml


def _exact(value) -> Fraction:
    # YAML floats arrive as binary floats here: their shortest text is what the file says (0.0022).
    return Fraction(Decimal(str(value)))


def _moment(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # a quoted YAML date or time (as `chargeback discover --write` writes them)
        value = datetime.fromisoformat(value) if "T" in value or " " in value.strip() else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _day(value) -> date:
    if isinstance(value, str):  # a quoted YAML date
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value


def in_force(rates: list[dict], day: date) -> dict | None:
    """The last rate whose effective_from is on or before `day` (None before the first)."""
    found = None
    for rate in sorted(rates, key=lambda r: _day(r["effective_from"])):
        if _day(rate["effective_from"]) <= day:
            found = rate
    return found


@dataclass(frozen=True)
class PriceList:
    document: dict

    @classmethod
    def read(cls, path: str | Path) -> "PriceList":
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})

    @property
    def backends(self) -> dict:
        return self.document.get("backends") or {}

    def kind(self, backend_id: str) -> str | None:
        return (self.backends.get(backend_id) or {}).get("kind")

    def deployment(self, backend_id: str, name: str) -> dict | None:
        return ((self.backends.get(backend_id) or {}).get("deployments") or {}).get(name)

    def backends_serving(self, deployment_name: str) -> list[str]:
        """Every backend the file gives a deployment of this name."""
        return sorted(
            b for b, backend in self.backends.items() if deployment_name in (backend.get("deployments") or {})
        )

    def backend_of_resource(self, resource_id: str | None) -> str | None:
        """The backend whose resource_id is this ARM id (case-insensitive), else the id's account name."""
        if not resource_id:
            return None
        for backend_id, backend in self.backends.items():
            if str(backend.get("resource_id") or "").lower() == resource_id.lower():
                return backend_id
        return resource_id.rstrip("/").rsplit("/", 1)[-1]

    def output_token_weight(self, model: str) -> Fraction | None:
        """The weight the file states for the model (None when it leaves it to the engine's default)."""
        weight = ((self.document.get("models") or {}).get(model) or {}).get("output_token_weight")
        return None if weight is None else _exact(weight)

    def token_prices(self, model: str, day: date) -> tuple[Fraction, Fraction] | None:
        """Pay-as-you-go (input, output) price per token on `day`."""
        rates = ((self.document.get("models") or {}).get(model) or {}).get("rates") or []
        rate = in_force(rates, day)
        if rate is None:
            return None
        return _exact(rate["input_per_1k"]) / 1000, _exact(rate["output_per_1k"]) / 1000

    def ptu_hour_cost(self, deployment: dict, hour: datetime) -> Fraction:
        """The exact cost of one hour of a PTU deployment: zero when it is not deployed."""
        rates = deployment.get("rates") or []
        if not rates:
            return Fraction(0)
        first = min(_day(r["effective_from"]) for r in rates)
        start = _moment(deployment.get("deployed_from")) or datetime.combine(first, time(0), tzinfo=UTC)
        until = _moment(deployment.get("deployed_until"))
        if hour < start or (until is not None and hour >= until):
            return Fraction(0)
        rate = in_force(rates, hour.date())
        if rate is None:
            return Fraction(0)
        count = int(rate["ptu_count"])
        if rate.get("hourly_rate_per_ptu") is not None:
            return count * _exact(rate["hourly_rate_per_ptu"])
        hours_in_this_month = calendar.monthrange(hour.year, hour.month)[1] * 24
        return count * _exact(rate["monthly_reservation_per_ptu"]) / hours_in_this_month

    def ptu_day(self, backend_id: str, name: str, day: date, minor_unit: int) -> tuple[int, int, Fraction]:
        """(deployed hours, the day's cost in minor units as Azure bills it, its exact cost in minor units)."""
        deployment = self.deployment(backend_id, name) or {}
        scale = 10**minor_unit
        month_start = datetime(day.year, day.month, 1, tzinfo=UTC)
        day_start = datetime.combine(day, time(0), tzinfo=UTC)
        before = Fraction(0)
        hour = month_start
        while hour < day_start:
            before += self.ptu_hour_cost(deployment, hour)
            hour += timedelta(hours=1)
        hours = [day_start + timedelta(hours=h) for h in range(24)]
        costs = [self.ptu_hour_cost(deployment, h) for h in hours]
        deployed = sum(1 for h in hours if self._deployed(deployment, h))
        during = sum(costs, Fraction(0))
        billed = round((before + during) * scale) - round(before * scale)  # half to even (Python's round)
        return deployed, billed, during * scale

    def _deployed(self, deployment: dict, hour: datetime) -> bool:
        rates = deployment.get("rates") or []
        if not rates:
            return False
        first = min(_day(r["effective_from"]) for r in rates)
        start = _moment(deployment.get("deployed_from")) or datetime.combine(first, time(0), tzinfo=UTC)
        until = _moment(deployment.get("deployed_until"))
        return hour >= start and (until is None or hour < until) and in_force(rates, hour.date()) is not None

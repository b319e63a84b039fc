"""The budgets file and each day's budget status: spend to date, month-end forecast, percent of budget.

The file is YAML (`budgets.example.yaml` documents it; `CHARGEBACK_BUDGETS_FILE` points at it), validated
at load like the pricing file: an unknown key, a negative or zero amount, a date that is not the first of a
month or entries out of order stop the load, naming the setting (`budgets.products.<id>.monthly[1].amount`).
Amounts are Decimal, in the pricing file's currency. A month's budget is the entry in force on its first
day (entries are dated like prices, `effective_from`, oldest first).

Forecast (README "Budgets and anomalies"): spend to date plus the run rate times the days still to come,
that is the days of the month after the partition's day (a daily partition is judged after its day ended).
The run rate is the mean daily cost of the published days among the last RUN_RATE_DAYS days up to the
partition's day (across a month boundary): a week, so weekday and weekend traffic weigh as they will over
the rest of the month, and a change of traffic shows within days instead of being diluted by the whole
month. A past day of the month without a published chargeback (held back by reconciliation, never run) is
a data gap: counted in `days_missing`, neither projected nor counted as zero, so the spend to date and the
forecast are lower bounds while it lasts. A forecast may cross a threshold (and so alert) only on evidence:
at least `forecast_min_days` published days in its run-rate window (CHARGEBACK_BUDGET_FORECAST_MIN_DAYS,
5 of 7 by default); below that it is shown, marked `forecast_can_alert` false, and alerts nobody.
"""

import calendar
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chargeback_pipeline.core.billing.pricing import DecimalSafeLoader, PricingError
from chargeback_pipeline.core.periods import month_text

RUN_RATE_DAYS = 7
# The scope of a budget: (product_id, subscription_id), the subscription None for the product's whole budget.
Scope = tuple[str, str | None]


class BudgetsError(ValueError):
    """The budgets file is missing or malformed; the message names the setting."""


class _Setting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonthlyBudget(_Setting):
    effective_from: date
    amount: Decimal = Field(gt=0, le=Decimal(10**12))  # what the money columns hold: more is a typo (1e26)

    @field_validator("effective_from")
    @classmethod
    def _first_of_month(cls, value: date) -> date:
        if value.day != 1:
            raise ValueError(f"{value} is not the first day of a month (a budget is per calendar month)")
        return value


def _ordered(entries: tuple[MonthlyBudget, ...]) -> tuple[MonthlyBudget, ...]:
    if not entries:
        raise ValueError("needs at least one entry (effective_from, amount)")
    for earlier, later in itertools.pairwise(entries):
        if later.effective_from <= earlier.effective_from:
            raise ValueError(
                f"effective_from {later.effective_from} must be after {earlier.effective_from}; "
                "list entries oldest first, one per month"
            )
    return entries


class ProductBudget(_Setting):
    monthly: tuple[MonthlyBudget, ...] = ()
    subscriptions: dict[str, tuple[MonthlyBudget, ...]] = Field(default_factory=dict)

    @field_validator("monthly")
    @classmethod
    def _monthly_ordered(cls, value: tuple) -> tuple:
        return _ordered(value) if value else value

    @field_validator("subscriptions")
    @classmethod
    def _subscriptions_ordered(cls, value: dict) -> dict:
        for entries in value.values():
            _ordered(entries)
        return value


class Budgets(_Setting):
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")  # must match the pricing file's
    products: dict[str, ProductBudget] = Field(min_length=1)

    @field_validator("products")
    @classmethod
    def _named(cls, value: dict) -> dict:
        empty = [name for name, budget in value.items() if not budget.monthly and not budget.subscriptions]
        if any(not str(name).strip() for name in value):
            raise ValueError("a product id must not be empty")
        if empty:
            raise ValueError(f"{', '.join(empty)}: give `monthly` and/or `subscriptions` budgets")
        return value

    def in_force(self, month: date) -> dict[Scope, Decimal]:
        """Every scope's budget of `month` (the entry in force on its first day); scopes not yet budgeted
        that month are left out."""
        first = month.replace(day=1)
        found: dict[Scope, Decimal] = {}
        for product, budget in self.products.items():
            entries: list[tuple[Scope, tuple[MonthlyBudget, ...]]] = [((product, None), budget.monthly)]
            entries += [((product, sub), subs) for sub, subs in budget.subscriptions.items()]
            for scope, dated in entries:
                amounts = [entry.amount for entry in dated if entry.effective_from <= first]
                if amounts:
                    found[scope] = amounts[-1]
        return found

    def setting(self, scope: Scope) -> str:
        """Where a scope's budget is set in the file (for messages)."""
        product, subscription = scope
        return f"budgets.products.{product}" + (f".subscriptions.{subscription}" if subscription else ".monthly")


def _path(loc: tuple) -> str:
    path = "budgets"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_budgets(data: Any, source: str = "budgets") -> Budgets:
    if not isinstance(data, Mapping):
        raise BudgetsError(f"{source}: the budgets file must be a YAML mapping with `products`")
    try:
        return Budgets.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            reason = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
            if item["type"] == "extra_forbidden":
                reason = "not a known setting (check the spelling against budgets.example.yaml)"
            problems.append(f"  - {_path(item['loc'])}: {reason}")
        raise BudgetsError(f"invalid budgets file {source}:\n" + "\n".join(problems)) from None


def load_budgets(path: str | Path) -> Budgets:
    """Read and validate the budgets YAML file at `path` (floats read as Decimal, duplicate keys refused)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BudgetsError(f"cannot read budgets file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise BudgetsError(f"budgets file {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    try:
        data = yaml.load(text, Loader=DecimalSafeLoader)  # the pricing file's safe loader
    except (PricingError, yaml.YAMLError) as error:
        raise BudgetsError(f"invalid budgets file {path}: {error}") from None
    return parse_budgets(data, source=str(path))


@dataclass(frozen=True)
class Threshold:
    kind: str  # "forecast" or "actual"
    percent: float
    strict: bool = False  # crossed above the percent, not at it

    @property
    def name(self) -> str:
        return "over_budget" if self.strict else f"{self.kind}_{self.percent:g}pct"

    def crossed(self, forecast: Decimal | None, spend: Decimal, budget: Decimal) -> bool:
        if self.kind == "forecast" and forecast is None:  # too little evidence to judge a forecast
            return False
        value, limit = 100 * (forecast if self.kind == "forecast" else spend), Decimal(str(self.percent)) * budget
        return value > limit if self.strict else value >= limit


OVER_BUDGET = Threshold("actual", 100.0, strict=True)  # spend to date above the budget itself


def thresholds(forecast_warn_percent: float, actual_warn_percent: float) -> tuple[Threshold, ...]:
    return (Threshold("forecast", forecast_warn_percent), Threshold("actual", actual_warn_percent), OVER_BUDGET)


@dataclass(frozen=True)
class BudgetLine:
    """One scope's budget status on one day."""

    usage_date: date
    product_id: str
    subscription_id: str | None
    budget: Decimal
    spend_to_date: Decimal
    days_published: int
    days_in_month: int
    run_rate: Decimal
    run_rate_days: int
    forecast: Decimal
    crossed: tuple[str, ...]  # Threshold names crossed, mildest first
    days_missing: int = 0  # past days of the month up to usage_date without a published chargeback: a gap
    forecast_min_days: int = 1  # published days the run rate needs before the forecast may alert

    @property
    def days_to_come(self) -> int:
        """Days of the month after usage_date: the only days the forecast projects."""
        return self.days_in_month - self.usage_date.day

    @property
    def forecast_can_alert(self) -> bool:
        return self.run_rate_days >= self.forecast_min_days

    @property
    def actual_percent(self) -> float:
        return round(float(100 * self.spend_to_date / self.budget), 2)

    @property
    def forecast_percent(self) -> float:
        return round(float(100 * self.forecast / self.budget), 2)

    @property
    def status(self) -> str:
        return self.crossed[-1] if self.crossed else "ok"

    @property
    def over_budget(self) -> bool:
        return OVER_BUDGET.name in self.crossed

    def row(self, currency: str) -> dict:
        return {
            "usage_date": self.usage_date,
            "month": month_text(self.usage_date),
            "product_id": self.product_id,
            "subscription_id": self.subscription_id,
            "currency": currency,
            "budget": self.budget,
            "spend_to_date": self.spend_to_date,
            "actual_percent": self.actual_percent,
            "run_rate_per_day": self.run_rate,
            "run_rate_days": self.run_rate_days,
            "forecast": self.forecast,
            "forecast_percent": self.forecast_percent,
            "days_published": self.days_published,
            "days_in_month": self.days_in_month,
            "days_missing": self.days_missing,
            "days_to_come": self.days_to_come,
            "forecast_can_alert": self.forecast_can_alert,
            "status": self.status,
        }


def scope_costs(lines: Sequence[Mapping]) -> dict[Scope, Decimal]:
    """A day's total cost per product and per (product, subscription), from its chargeback lines."""
    costs: dict[Scope, Decimal] = {}
    for line in lines:
        product, subscription = line["product_id"], line["subscription_id"]
        for scope in [(product, None)] + ([(product, subscription)] if subscription is not None else []):
            costs[scope] = costs.get(scope, Decimal(0)) + line["total_cost"]
    return costs


def run_rate_window(day: date) -> list[date]:
    return [day - timedelta(days=n) for n in range(RUN_RATE_DAYS - 1, -1, -1)]


def budget_lines(
    day: date,
    costs_by_day: Mapping[date, Mapping[Scope, Decimal]],
    budgets: Budgets,
    limits: Sequence[Threshold],
    minor_unit: int,
    forecast_min_days: int = 1,
) -> list[BudgetLine]:
    """Every budgeted scope's status on `day`. `costs_by_day` holds the published days (a day absent is
    not published) of the month up to `day` and of the run-rate window before it. The forecast projects
    the days after `day` only; past days absent are reported as missing. With fewer than
    `forecast_min_days` published days in the run-rate window the forecast crosses no threshold."""
    quantum = Decimal(1).scaleb(-minor_unit)
    month_days = [day.replace(day=n) for n in range(1, day.day + 1)]
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    published = [d for d in month_days if d in costs_by_day]
    window = [d for d in run_rate_window(day) if d in costs_by_day]
    days_to_come = days_in_month - day.day
    judged = len(window) >= forecast_min_days
    lines = []
    for scope, budget in sorted(budgets.in_force(day).items(), key=lambda item: (item[0][0], item[0][1] or "")):
        spend = sum((costs_by_day[d].get(scope, Decimal(0)) for d in published), Decimal(0))
        rate = sum((costs_by_day[d].get(scope, Decimal(0)) for d in window), Decimal(0)) / (len(window) or 1)
        forecast = (spend + rate * days_to_come).quantize(quantum)
        rate = rate.quantize(quantum)
        crossed = tuple(limit.name for limit in limits if limit.crossed(forecast if judged else None, spend, budget))
        lines.append(
            BudgetLine(day, scope[0], scope[1], budget, spend, len(published), days_in_month, rate, len(window),
                       forecast, crossed, len(month_days) - len(published), forecast_min_days)
        )  # fmt: skip
    return lines


def unknown_scopes(budgets: Budgets, month: date, seen: set[Scope]) -> list[str]:
    """The settings of budgets in force in `month` whose product (or subscription) no published chargeback
    of the days looked at names: a typo, or a product not live yet."""
    return [budgets.setting(scope) for scope in sorted(budgets.in_force(month), key=str) if scope not in seen]

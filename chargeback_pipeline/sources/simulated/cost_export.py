"""The simulated tenant's Cost Management export: what Azure would bill for the simulator's resources,
consistent with its metrics (Azure bills the tokens its meters count, which Azure Monitor reports).

The agreement differs from the pricing file on purpose, as a real one does:
- pay-as-you-go tokens at the pricing file's list prices less a negotiated discount (`paygo_discount`);
- a share of the prompt tokens billed on the cached-input meter at the model's cached-input price
  (`cached_prompt_share`), less the same discount;
- PTU hours covered by a monthly reservation (`reservation_ptu` PTUs at `reservation_per_ptu_month`): the
  resource's rows are the reservation's used part (EffectiveCost amortized over the month's hours,
  BilledCost 0); reserved PTUs no deployment uses are the unused part, on the reservation's own id
  (not a resource of the pricing file, so never allocated); the purchase is billed on day 1;
- exports lag `lag_days` (a run on day D covers the month up to D - lag), and `restate` re-runs the
  export with one day's pay-as-you-go usage corrected (what a restatement looks like: a new run of the
  same month whose rows for that day changed).

Meter names follow Azure's ("gpt 4.1 Inpt glbl 1M Tokens", "gpt 4.1 cchd Inpt glbl 1M Tokens",
"gpt 4.1 Outp glbl 1M Tokens", "Global Provisioned Managed Unit"); the embedding model's meter,
"text-embedding-3-large Tokens", does not say input or output, so the pricing file maps it.
"""

import calendar
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.simulated.cost_export_files import (
    RunSpec,
    export_columns,
    export_row,
    write_export_run,
)
from chargeback_pipeline.sources.simulated.source import SimulatedSource
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.schemas import METRIC_COMPLETION_TOKENS, METRIC_PROMPT_TOKENS

BILLING_ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/12345678"
RESERVATION_ID = "/providers/Microsoft.Capacity/reservationOrders/sim-order/reservations/sim-ptu-reservation"
SCHEMA_VERSION = "1.2-preview"
EXPORT_NAME = "focus-cost-daily"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class TokenPrices:
    """A model's list prices per 1,000 tokens (the pricing file's), before the negotiated discount."""

    input_per_1k: Decimal
    cached_input_per_1k: Decimal
    output_per_1k: Decimal


@dataclass(frozen=True)
class DayTerms:
    """What the tenant runs and what it lists at on one day: pay-as-you-go resources (ARM id ->
    deployment -> model), PTU resources (ARM id -> PTU-hours deployed that day), token list prices."""

    paygo: dict[str, dict[str, str]] = field(default_factory=dict)
    ptu_hours: dict[str, int] = field(default_factory=dict)
    prices: dict[str, TokenPrices] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulatedAgreement:
    paygo_discount: Decimal = Decimal("0.15")
    cached_prompt_share: Decimal = Decimal("0.20")
    reservation_ptu: int = 160
    reservation_per_ptu_month: Decimal = Decimal("240")
    lag_days: int = 2
    invoice_id: str = "G000123456"


def utc_day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _meter_model(model: str) -> str:
    return model.replace("-", " ") if model.startswith("gpt") else model


PROVISIONED_METER = "Global Provisioned Managed Unit"


def token_meters(model: str) -> dict[str, str]:
    """The simulated meters of a model's tokens, by what they bill (`input`, `cached_input`, `output`; an
    embedding model has one meter, `input`): the names the export writes, known here by construction."""
    name = _meter_model(model)
    if model.startswith("text-embedding"):
        return {"input": f"{name} Tokens"}
    return {
        "input": f"{name} Inpt glbl 1M Tokens",
        "cached_input": f"{name} cchd Inpt glbl 1M Tokens",
        "output": f"{name} Outp glbl 1M Tokens",
    }


def _row(
    day: date,
    resource_id: str,
    meter: str,
    quantity,
    unit: str,
    effective: Decimal,
    billed: Decimal,
    list_cost: Decimal | None = None,
    **more,
):
    """One export row; `list_cost` the charge at list price (default: the effective cost). The FOCUS 1.2
    columns every row carries are filled as Microsoft fills them, so the FinOps Foundation's validator can
    check the simulated export (README "Actual cost")."""
    start = utc_day_start(day)
    quantity = Decimal(quantity).quantize(Decimal("0.000001"))  # a decimal, as Microsoft writes quantities
    month_end = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
    purchase = more.get("charge_category") == "Purchase"
    extra = {
        "ProviderName": "Microsoft",
        "PublisherName": "Microsoft",
        "ServiceName": "Azure OpenAI",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "BillingAccountName": "Contoso (simulated)",
        "BillingPeriodEnd": month_end,
        "ChargeFrequency": "Recurring" if purchase else "Usage-Based",
        "ListCost": list_cost if list_cost is not None else max(effective, billed),
        "ContractedCost": max(effective, billed),
        "ResourceName": resource_id.rstrip("/").rsplit("/", 1)[-1],
    }
    values = {
        "billing_account_id": BILLING_ACCOUNT,
        "billing_currency": "USD",
        "billing_period_start": datetime(day.year, day.month, 1, tzinfo=UTC),
        "charge_period_start": start,
        "charge_period_end": start + timedelta(days=1),
        "charge_category": "Usage",
        "charge_description": meter,
        "pricing_category": "Standard",
        "resource_id": resource_id,
        "sub_account_id": SUBSCRIPTION,
        "meter_id": f"sim-meter/{meter}",
        "sku_price_id": f"sim-price/{meter}",
        "consumed_quantity": quantity,
        "consumed_unit": unit,
        "pricing_quantity": quantity,
        "pricing_unit": unit,
        "billed_cost": billed,
        "effective_cost": effective,
        "invoice_issuer_name": "Microsoft",
        "meter_name": meter,
        **more,
    }
    return export_row(SCHEMA_VERSION, values, extra)


def metered_tokens(source: SimulatedSource, day: date) -> dict[tuple[str, str], list[int]]:
    """(resource id, deployment) -> [prompt, completion] tokens Azure Monitor counts on `day`."""
    start = utc_day_start(day)
    metrics = source.deployment_metrics(TimeWindow(start, start + timedelta(days=1))).rows.to_pylist()
    tokens: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in metrics:
        if row["MetricName"] in (METRIC_PROMPT_TOKENS, METRIC_COMPLETION_TOKENS):
            tokens[(row["ResourceId"], row["ModelDeploymentName"])][row["MetricName"] == METRIC_COMPLETION_TOKENS] += (
                row["Total"]
            )
    return tokens


def day_rows(source: SimulatedSource, terms: DayTerms, agreement: SimulatedAgreement, day: date, correction=1):
    """The export's rows of one day (`correction` scales the pay-as-you-go tokens: a restatement)."""
    rows = []
    tokens = metered_tokens(source, day)
    keep = 1 - agreement.paygo_discount
    for resource_id, deployments in sorted(terms.paygo.items()):
        by_model: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, model in deployments.items():
            prompt, completion = tokens.get((resource_id, name), [0, 0])
            by_model[model][0] += round(prompt * correction)
            by_model[model][1] += round(completion * correction)
        for model, (prompt, completion) in sorted(by_model.items()):
            prices = terms.prices[model]
            cached = int(prompt * agreement.cached_prompt_share)
            meters = token_meters(model)
            if model.startswith("text-embedding"):
                cost = Decimal(prompt) / 1000 * prices.input_per_1k * keep
                rows.append(_row(day, resource_id, meters["input"], prompt, "Tokens", cost, cost, cost / keep))
                continue
            for meter, quantity, price in (
                (meters["input"], prompt - cached, prices.input_per_1k),
                (meters["cached_input"], cached, prices.cached_input_per_1k),
                (meters["output"], completion, prices.output_per_1k),
            ):
                cost = Decimal(quantity) / 1000 * price * keep
                rows.append(_row(day, resource_id, meter, quantity, "Tokens", cost, cost, cost / keep))
    for resource_id, ptu_hours in sorted(terms.ptu_hours.items()):
        hourly = agreement.reservation_per_ptu_month / (calendar.monthrange(day.year, day.month)[1] * 24)
        rows.append(
            _row(
                day,
                resource_id,
                PROVISIONED_METER,
                ptu_hours,
                "Hours",
                hourly * ptu_hours,
                Decimal(0),
                pricing_category="Committed",
                commitment_discount_id=RESERVATION_ID,
                commitment_discount_status="Used",
                commitment_discount_type="Reservation",
            )
        )
        unused_hours = agreement.reservation_ptu * 24 - ptu_hours
        if unused_hours > 0:
            rows.append(
                _row(
                    day,
                    RESERVATION_ID,
                    PROVISIONED_METER,
                    unused_hours,
                    "Hours",
                    hourly * unused_hours,
                    Decimal(0),
                    pricing_category="Committed",
                    commitment_discount_id=RESERVATION_ID,
                    commitment_discount_status="Unused",
                    commitment_discount_type="Reservation",
                )
            )
    if day.day == 1:  # the reservation's purchase, billed (not amortized) on the month's first day
        cost = agreement.reservation_per_ptu_month * agreement.reservation_ptu
        rows.append(_row(day, RESERVATION_ID, "Reservation purchase", 1, "Purchase", Decimal(0), cost,
                         charge_category="Purchase", commitment_discount_id=RESERVATION_ID))  # fmt: skip
    for row in rows:
        row["InvoiceId"] = agreement.invoice_id
    return rows


def write_simulated_run(
    store: ObjectStore,
    root: str,
    source: SimulatedSource,
    terms_of: Callable[[date], DayTerms],
    run_day: date,
    run_id: str,
    agreement: SimulatedAgreement = SimulatedAgreement(),
    restated: dict[date, float] | None = None,
    file_format: str = "csv.gz",
) -> RunSpec:
    """One month-to-date run submitted on `run_day`: the month's days up to run_day - lag (`restated`:
    day -> correction factor of its pay-as-you-go tokens). Returns the run's spec."""
    return write_simulated_month(store, root, source, terms_of, run_day.replace(day=1), run_day, run_id, agreement,
                                 restated, file_format)  # fmt: skip


def write_simulated_month(
    store: ObjectStore,
    root: str,
    source: SimulatedSource,
    terms_of: Callable[[date], DayTerms],
    month: date,
    run_day: date,
    run_id: str,
    agreement: SimulatedAgreement = SimulatedAgreement(),
    restated: dict[date, float] | None = None,
    file_format: str = "csv.gz",
) -> RunSpec:
    """A run of `month` submitted on `run_day` (in the month, or after it: then it covers the whole month
    once the lag has passed): the month's days up to run_day - lag."""
    month_end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    last = min(run_day - timedelta(days=agreement.lag_days), month_end)
    days = [month + timedelta(days=n) for n in range((last - month).days + 1)] if last >= month else []
    rows = [
        row for day in days for row in day_rows(source, terms_of(day), agreement, day, (restated or {}).get(day, 1))
    ]
    spec = RunSpec(
        root=root,
        export_name=EXPORT_NAME,
        period_start=month,
        period_end=month_end,
        run_id=run_id,
        submitted=datetime(run_day.year, run_day.month, run_day.day, 6, tzinfo=UTC),
        schema_version=SCHEMA_VERSION,
        file_format=file_format,
    )
    write_export_run(store, spec, rows, export_columns(SCHEMA_VERSION))
    return spec

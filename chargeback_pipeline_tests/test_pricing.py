"""The pricing file: schema, validation messages that name the setting, rate lookups, amortisation."""

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from chargeback_pipeline.core.billing.pricing import (
    BackendKind,
    NoRateError,
    PricingError,
    UnknownDeploymentError,
    hours_in_month,
    load_pricing,
    parse_pricing,
)

EXAMPLE_FILE = Path(__file__).resolve().parents[1] / "pricing.example.yaml"

BASE = {
    "currency": "USD",
    "models": {
        "gpt-4.1": {"rates": [{"effective_from": "2026-01-01", "input_per_1k": "0.002", "output_per_1k": "0.008"}]},
    },
    "backends": {
        "ptu": {
            "kind": "ptu",
            "deployments": {
                "gpt-41-ptu": {
                    "model": "gpt-4.1",
                    "rates": [
                        {"effective_from": "2026-01-01", "ptu_count": 50, "hourly_rate_per_ptu": "2.00"},
                        {"effective_from": "2026-02-01", "ptu_count": 50, "monthly_reservation_per_ptu": "260"},
                    ],
                }
            },
        },
        "paygo": {"kind": "paygo", "deployments": {"gpt-41-paygo": {"model": "gpt-4.1"}}},
    },
}


def with_changes(change) -> dict:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def ptu_deployment(data: dict) -> dict:
    return data["backends"]["ptu"]["deployments"]["gpt-41-ptu"]


def test_example_file_loads_and_prices_every_simulated_deployment():
    from chargeback_pipeline.sources.simulated import SIMULATED_DEPLOYMENTS

    pricing = load_pricing(EXAMPLE_FILE)
    assert pricing.currency == "USD"
    assert pricing.currency_minor_unit == 2
    for simulated in SIMULATED_DEPLOYMENTS.values():
        deployment = pricing.deployment(simulated.backend_id, simulated.name)
        assert deployment.model == simulated.model_name
        assert pricing.backend(simulated.backend_id).kind == BackendKind(simulated.billing)
        assert pricing.backend(simulated.backend_id).resource_id == simulated.resource_id


def test_example_file_has_a_price_change():
    pricing = load_pricing(EXAMPLE_FILE)
    before = pricing.token_prices_on("gpt-4.1", date(2026, 2, 28))
    after = pricing.token_prices_on("gpt-4.1", date(2026, 3, 1))
    assert (before.input_per_1k, before.output_per_1k) == (Decimal("0.0022"), Decimal("0.0088"))
    assert (after.input_per_1k, after.output_per_1k) == (Decimal("0.0020"), Decimal("0.0080"))


def test_yaml_numbers_are_read_as_exact_decimals(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text(EXAMPLE_FILE.read_text())
    pricing = load_pricing(path)
    prices = pricing.token_prices_on("gpt-4o", date(2026, 1, 1))
    assert prices.input_per_1k == Decimal("0.00275")  # not 0.0027500000000000002
    assert str(prices.cached_input_per_1k) == "0.001375"


def test_rates_in_force_on_a_day_are_the_latest_started():
    pricing = parse_pricing(BASE)
    deployment = pricing.deployment("ptu", "gpt-41-ptu")
    assert deployment.rate_on(date(2026, 1, 31)).hourly_rate_per_ptu == Decimal("2.00")
    assert deployment.rate_on(date(2026, 2, 1)).monthly_reservation_per_ptu == Decimal("260")
    assert deployment.rate_on(date(2027, 6, 1)).monthly_reservation_per_ptu == Decimal("260")


def test_no_rate_before_the_first_one():
    pricing = parse_pricing(BASE)
    with pytest.raises(NoRateError, match=r"no rate in force on 2025-12-31 .*first rate is effective from 2026-01-01"):
        pricing.token_prices_on("gpt-4.1", date(2025, 12, 31))


def test_hours_in_month_is_the_real_length():
    assert hours_in_month(date(2026, 1, 15)) == 31 * 24 == 744
    assert hours_in_month(date(2026, 2, 1)) == 28 * 24 == 672
    assert hours_in_month(date(2028, 2, 1)) == 29 * 24 == 696
    assert hours_in_month(date(2026, 4, 30)) == 30 * 24 == 720


def test_hour_cost_hourly_rate_and_monthly_reservation():
    deployment = parse_pricing(BASE).deployment("ptu", "gpt-41-ptu")
    # January: hourly, 50 PTU x $2.00.
    assert deployment.hour_cost(datetime(2026, 1, 31, 23, tzinfo=UTC)) == 100
    # February (672 hours): 50 PTU x $260 / 672, exactly.
    assert deployment.hour_cost(datetime(2026, 2, 1, 0, tzinfo=UTC)) == Fraction(13000, 672)
    assert deployment.hour_cost(datetime(2026, 2, 1, 0, tzinfo=UTC)) * 672 == 13000
    # March (744 hours): the same reservation costs less per hour.
    assert deployment.hour_cost(datetime(2026, 3, 1, 0, tzinfo=UTC)) * 744 == 13000


def test_deployed_hours_bound_the_cost():
    def window(data):
        ptu_deployment(data)["deployed_from"] = "2026-01-10T06:00:00Z"
        ptu_deployment(data)["deployed_until"] = "2026-01-12T00:00:00+00:00"

    deployment = parse_pricing(with_changes(window)).deployment("ptu", "gpt-41-ptu")
    assert deployment.hour_cost(datetime(2026, 1, 10, 5, tzinfo=UTC)) == 0
    assert deployment.hour_cost(datetime(2026, 1, 10, 6, tzinfo=UTC)) == 100
    assert deployment.hour_cost(datetime(2026, 1, 11, 23, tzinfo=UTC)) == 100
    assert deployment.hour_cost(datetime(2026, 1, 12, 0, tzinfo=UTC)) == 0


def test_deployed_from_defaults_to_the_first_rate_and_accepts_a_bare_date():
    deployment = parse_pricing(BASE).deployment("ptu", "gpt-41-ptu")
    assert deployment.hour_cost(datetime(2025, 12, 31, 23, tzinfo=UTC)) == 0
    assert deployment.hour_cost(datetime(2026, 1, 1, 0, tzinfo=UTC)) == 100

    data = with_changes(lambda d: ptu_deployment(d).update(deployed_from=date(2026, 1, 3)))
    assert parse_pricing(data).deployment("ptu", "gpt-41-ptu").deployed_from == datetime(2026, 1, 3, tzinfo=UTC)


def test_output_weights_default_from_microsoft_docs_and_can_be_overridden():
    def models(data):
        data["models"]["gpt-4o-2024-11-20"] = {"rates": BASE["models"]["gpt-4.1"]["rates"]}
        data["models"]["gpt-4.1-mini"] = {"output_token_weight": "5", "rates": BASE["models"]["gpt-4.1"]["rates"]}

    pricing = parse_pricing(with_changes(models))
    assert pricing.model("gpt-4.1").output_token_weight == 4
    assert pricing.model("gpt-4o-2024-11-20").output_token_weight == 3  # version suffix ignored
    assert pricing.model("gpt-4.1-mini").output_token_weight == 5
    assert pricing.model("gpt-4.1").ptu_input_tokens_per_minute == 3000


def test_currency_minor_units():
    assert parse_pricing(with_changes(lambda d: d.update(currency="JPY"))).currency_minor_unit == 0
    assert parse_pricing(with_changes(lambda d: d.update(currency="KWD"))).currency_minor_unit == 3
    unusual = parse_pricing(with_changes(lambda d: d.update(currency="XAU", minor_unit=4)))
    assert unusual.currency_minor_unit == 4


def test_capacity_per_hour_is_ptu_count_times_tokens_per_minute():
    pricing = parse_pricing(BASE)
    assert pricing.ptu_capacity_per_hour("ptu", "gpt-41-ptu", date(2026, 1, 1)) == 50 * 3000 * 60


def _set(path: list, value):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


PTU = ["backends", "ptu", "deployments", "gpt-41-ptu"]
PTU_PATH = "pricing.backends.ptu.deployments.gpt-41-ptu"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set([*PTU, "rates", 1, "effective_from"], "2025-12-01"),
            f"{PTU_PATH}.rates[1].effective_from: 2025-12-01 must be after rates[0].effective_from (2026-01-01)",
        ),
        (
            _set([*PTU, "rates", 0, "monthly_reservation_per_ptu"], "100"),
            f"{PTU_PATH}.rates[0]: set exactly one of hourly_rate_per_ptu or monthly_reservation_per_ptu",
        ),
        (
            _set([*PTU, "rates", 0, "ptu_count"], 0),
            f"{PTU_PATH}.rates[0].ptu_count: Input should be greater than 0",
        ),
        (
            _set([*PTU, "rates", 0, "effective_from"], "2026-13-01"),
            f"{PTU_PATH}.rates[0].effective_from: Input should be a valid date",
        ),
        (
            _set(["models", "gpt-4.1", "ouput_token_weight"], 4),
            "pricing.models.gpt-4.1.ouput_token_weight: not a known setting",
        ),
        (
            _set(["models", "gpt-4.1", "rates", 0, "input_per_1k"], "-0.1"),
            "pricing.models.gpt-4.1.rates[0].input_per_1k: Input should be greater than or equal to 0",
        ),
        (
            _set([*PTU, "model"], "gpt-9"),
            f"{PTU_PATH}.model: 'gpt-9' is not under pricing.models",
        ),
        (
            _set(
                ["backends", "paygo", "deployments", "gpt-41-paygo", "rates"],
                BASE["backends"]["ptu"]["deployments"]["gpt-41-ptu"]["rates"],
            ),
            "pricing.backends.paygo.deployments.gpt-41-paygo.rates: a pay-as-you-go deployment has no PTU rates",
        ),
        (
            _set([*PTU, "rates"], []),
            f"{PTU_PATH}.rates: a PTU deployment needs at least one rate",
        ),
        (
            _set(["models", "gpt-4.1", "rates"], []),
            "pricing.models.gpt-4.1.rates: needed to price pay-as-you-go deployment",
        ),
        (
            _set(["unused_capacity"], {"policy": "fixed", "fixed_shares": {"a": "0.5", "b": "0.4"}}),
            "pricing.unused_capacity: policy 'fixed' needs fixed_shares that sum to exactly 1 (they sum to 0.9)",
        ),
        (
            _set(["unused_capacity"], {"policy": "evenly"}),
            "pricing.unused_capacity.policy: Input should be 'proportional', 'unallocated' or 'fixed'",
        ),
        (
            _set(["cached_tokens"], "ignore"),
            "pricing.cached_tokens: Input should be 'count_in_full' or 'deduct'",
        ),
        (
            _set([*PTU, "deployed_from"], "2026-01-02T00:00:00"),
            f"{PTU_PATH}.deployed_from: needs a time zone",
        ),
        (
            _set([*PTU, "deployed_from"], "2026-01-02T00:30:00Z"),
            f"{PTU_PATH}.deployed_from: must be on a whole hour",
        ),
        (
            _set([*PTU, "deployed_from"], "2025-12-31T00:00:00Z"),
            f"{PTU_PATH}.deployed_from: is before its first rate",
        ),
        (
            _set([*PTU, "deployed_until"], "2025-12-31T00:00:00Z"),
            f"{PTU_PATH}.deployed_until: must be after deployed_from",
        ),
        (
            _set(["currency"], "usd"),
            "pricing.currency: String should match pattern",
        ),
        (
            _set(["currency"], "XAU"),
            "pricing.currency: minor unit of 'XAU' unknown; set pricing.minor_unit",
        ),
        (
            _set(["backends", "ptu", "kind"], "reserved"),
            "pricing.backends.ptu.kind: Input should be 'ptu' or 'paygo'",
        ),
    ],
)
def test_validation_names_the_setting_and_the_reason(change, message):
    with pytest.raises(PricingError) as raised:
        parse_pricing(with_changes(change))
    assert message in str(raised.value)


def test_ptu_model_without_a_known_weight_must_set_one():
    def gpt5(data):
        data["models"]["gpt-5"] = {}
        ptu_deployment(data)["model"] = "gpt-5"

    with pytest.raises(PricingError, match=r"pricing\.models\.gpt-5\.output_token_weight: needed to weigh tokens"):
        parse_pricing(with_changes(gpt5))


def test_unallocated_policy_needs_the_capacity_of_each_ptu_model():
    def gpt5(data):
        data["models"]["gpt-5"] = {"output_token_weight": 8}
        ptu_deployment(data)["model"] = "gpt-5"
        data["unused_capacity"] = {"policy": "unallocated"}

    with pytest.raises(PricingError, match=r"pricing\.models\.gpt-5\.ptu_input_tokens_per_minute: needed by"):
        parse_pricing(with_changes(gpt5))
    data = with_changes(gpt5)
    data["models"]["gpt-5"]["ptu_input_tokens_per_minute"] = 1200
    assert parse_pricing(data).ptu_capacity_per_hour("ptu", "gpt-41-ptu", date(2026, 1, 1)) == 50 * 1200 * 60


def test_every_problem_is_reported_at_once():
    def two_problems(data):
        ptu_deployment(data)["model"] = "gpt-9"
        data["models"]["gpt-4.1"]["rates"].append(dict(data["models"]["gpt-4.1"]["rates"][0]))

    with pytest.raises(PricingError) as raised:
        parse_pricing(with_changes(two_problems))
    message = str(raised.value)
    assert f"{PTU_PATH}.model" in message
    assert "pricing.models.gpt-4.1.rates[1].effective_from" in message


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PricingError, match=r"cannot read pricing file .*missing\.yaml"):
        load_pricing(missing)

    broken = tmp_path / "broken.yaml"
    broken.write_text("currency: USD\nmodels: [unclosed\n")
    with pytest.raises(PricingError, match="is not valid YAML"):
        load_pricing(broken)

    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(PricingError, match="must be a YAML mapping"):
        load_pricing(scalar)


def test_duplicate_keys_are_rejected_not_silently_replaced(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(
        EXAMPLE_FILE.read_text().replace(
            "      text-embedding-3-large:\n",
            "      gpt-4.1:\n        model: gpt-4.1\n      text-embedding-3-large:\n",
        )
    )
    with pytest.raises(PricingError, match=r"duplicate key 'gpt-4\.1' at line"):
        load_pricing(path)


def test_lookups_of_unknown_backends_and_deployments_say_what_to_add():
    pricing = parse_pricing(BASE)
    with pytest.raises(
        UnknownDeploymentError, match=r"backend 'nope' is not in the pricing file \(pricing.backends has"
    ):
        pricing.deployment("nope", "gpt-41-ptu")
    with pytest.raises(UnknownDeploymentError, match=r"add it under pricing\.backends\.ptu\.deployments"):
        pricing.deployment("ptu", "gpt-41-paygo")
    assert pricing.backend_of_deployment("gpt-41-paygo") == "paygo"


def test_a_deployment_name_on_two_backends_needs_the_backend():
    def same_name(data):
        data["backends"]["paygo"]["deployments"]["gpt-41-ptu"] = {"model": "gpt-4.1"}

    pricing = parse_pricing(with_changes(same_name))
    assert pricing.deployment("paygo", "gpt-41-ptu").model == "gpt-4.1"
    with pytest.raises(UnknownDeploymentError, match="exists on several backends"):
        pricing.backend_of_deployment("gpt-41-ptu")


def test_deployment_names_lists_every_priced_deployment():
    assert parse_pricing(BASE).deployment_names() == {"gpt-41-ptu", "gpt-41-paygo"}


def test_an_impossible_date_names_the_file_the_value_and_the_line(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(EXAMPLE_FILE.read_text().replace("effective_from: 2026-03-01", "effective_from: 2026-02-30"))
    with pytest.raises(PricingError) as raised:
        load_pricing(path)
    message = str(raised.value)
    assert message.startswith(f"invalid pricing file {path}: '2026-02-30' at line ")
    assert "is not a date (day is out of range for month)" in message

"""The audit: its own PTU arithmetic (`core.audit.price_list`) against amounts worked out by hand from the
pricing file's numbers: the month's real length (28, 29, 30, 31 days), a mid-month rate change, a deployment
that starts mid-day. Expected values are written out, not computed by any code under test. And its checks
failing on the bugs they exist for (the mutants harness plants them in a whole run: README "Planted bugs")."""

from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pytest

from chargeback_pipeline.core.audit import comparisons
from chargeback_pipeline.core.audit.price_list import PriceList
from chargeback_pipeline.core.audit.raw_evidence import DayEvidence
from chargeback_pipeline.defs.audit import checks
from chargeback_pipeline_tests.conftest import REPO

RESERVATION = {
    "backends": {
        "ptu": {
            "kind": "ptu",
            "deployments": {
                "gpt-4.1": {
                    "model": "gpt-4.1",
                    "rates": [
                        {"effective_from": date(2025, 1, 1), "ptu_count": 100, "monthly_reservation_per_ptu": 260.0}
                    ],
                }
            },
        }
    }
}


@pytest.mark.parametrize(
    ("day", "cents", "why"),
    [
        # 100 x $260 = $26,000 a month, spread over the month's real hours and rounded cumulatively.
        (date(2026, 12, 1), 83871, "31 days: 26000 / 31 = 838.709..."),
        (date(2026, 11, 19), 86667, "30 days: C(19 days) 16466.67 - C(18) 15600.00"),
        (date(2026, 11, 20), 86666, "30 days: C(20) 17333.33 - C(19) 16466.67"),
        (date(2026, 2, 1), 92857, "28 days: 26000 / 28 = 928.571..."),
        (date(2028, 2, 1), 89655, "29 days (leap year): 26000 / 29 = 896.551..."),
        (date(2026, 12, 31), 83871, "31 days: 26000.00 - C(30 days) 25161.29"),
    ],
)
def test_a_reserved_ptu_day_costs_the_months_reservation_over_its_real_hours(day, cents, why):
    hours, billed, _ = PriceList(RESERVATION).ptu_day("ptu", "gpt-4.1", day, 2)

    assert (hours, billed) == (24, cents), why


def test_a_mid_month_rate_change_prices_each_hour_at_the_rate_in_force():
    # 50 PTU at $2.00 an hour ($2,400 a day) until the 15th, then a $260 reservation: 13000 / 744 an hour.
    prices = PriceList(
        {
            "backends": {
                "ptu": {
                    "kind": "ptu",
                    "deployments": {
                        "gpt-4o": {
                            "model": "gpt-4o",
                            "rates": [
                                {"effective_from": date(2026, 12, 1), "ptu_count": 50, "hourly_rate_per_ptu": 2.0},
                                {
                                    "effective_from": date(2026, 12, 16),
                                    "ptu_count": 50,
                                    "monthly_reservation_per_ptu": 260.0,
                                },
                            ],
                        }
                    },
                }
            }
        }
    )

    # C(15 days) = 36,000.00; C(16) = 36,419.354... -> 36,419.35; C(17) = 36,838.709... -> 36,838.71
    assert prices.ptu_day("ptu", "gpt-4o", date(2026, 12, 15), 2)[1] == 240000
    assert prices.ptu_day("ptu", "gpt-4o", date(2026, 12, 16), 2)[1] == 41935
    assert prices.ptu_day("ptu", "gpt-4o", date(2026, 12, 17), 2)[1] == 41936


def test_a_deployment_starting_mid_day_is_billed_for_its_deployed_hours_only(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text(
        """
backends:
  ptu:
    kind: ptu
    deployments:
      gpt-4o:
        model: gpt-4o
        deployed_from: 2026-12-01T06:00:00Z
        deployed_until: 2026-12-02
        rates:
          - effective_from: 2026-01-01
            ptu_count: 50
            hourly_rate_per_ptu: 2.00
"""
    )
    prices = PriceList.read(path)

    assert prices.ptu_day("ptu", "gpt-4o", date(2026, 12, 1), 2)[:2] == (18, 180000)
    assert prices.ptu_day("ptu", "gpt-4o", date(2026, 12, 2), 2)[:2] == (0, 0)


def test_a_720_hour_month_fails_the_audit_naming_the_deployment():
    """The planted bug of the issue: December 1 billed $866.67 per 100 PTU (a 720-hour month) instead of
    $838.71; the engine's own check cannot see it, the audit's arithmetic does. The example pricing file's
    65 PTU at $260 a month: 65 x 260 / 30 = 563.33 billed, 65 x 260 / 31 = 545.16 expected."""
    example = PriceList.read(REPO / "pricing.example.yaml")
    day = date(2026, 12, 1)
    lines = [
        {"backend_id": "aoai-ptu-eastus", "deployment_name": "gpt-4.1", "total_cost": Decimal("563.33")},
        {"backend_id": "aoai-ptu-eastus", "deployment_name": "gpt-4o", "total_cost": Decimal("503.23")},
    ]

    result = checks.ptu_cost_matches_rate(
        dg.AssetKey("chargeback_audit"), comparisons.ptu_costs(day, lines, example, 2), "USD"
    )

    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "aoai-ptu-eastus/gpt-4.1: lines 56333, expected 54516 minor units" in result.description
    assert "gpt-4o" not in result.description
    assert result.metadata["ptu_deployment_days_off"].value == 1


def test_billed_tokens_above_the_successful_requests_fail_the_audit():
    hour = datetime(2026, 12, 1, 7, tzinfo=UTC)
    evidence = DayEvidence(date(2026, 12, 1))
    key = (hour, "aoai-paygo-eastus", "gpt-4o")
    evidence.billed_by_hour.update({(key, "prompt"): 1_200, (key, "completion"): 300})
    evidence.successful_by_hour.update({(key, "prompt"): 1_000, (key, "completion"): 300})

    result = checks.billed_within_successful(
        dg.AssetKey("chargeback_audit"), comparisons.billed_against_successful(evidence, [])
    )

    assert not result.passed and result.metadata["periods_over"].value == 1

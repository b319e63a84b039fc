"""The audit's own PTU arithmetic (`core.audit.price_list`) against amounts worked out by hand from the
pricing file's numbers: the month's real length (28, 29, 30, 31 days), a mid-month rate change, a deployment
that starts mid-day. Expected values are written out, not computed by any code under test."""

from datetime import date

import pytest

from chargeback_pipeline.core.audit.price_list import PriceList

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

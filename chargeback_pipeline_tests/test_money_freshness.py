"""Every asset that states money carries a freshness policy, so the UI flags it when it is late."""

import dagster as dg

from chargeback_pipeline_tests.conftest import ASSETS

MONEY_ASSETS = {"daily_chargeback", "focus_export", "budget_status", "cost_anomalies", "monthly_statement"}


def test_every_money_asset_has_a_deadline_after_its_inputs_land():
    policies = {spec.key.to_user_string(): spec.freshness_policy for asset in ASSETS for spec in asset.specs}

    for name in MONEY_ASSETS:
        policy = policies[name]
        assert isinstance(policy, dg.FreshnessPolicy), name
        # After the last hour of the day lands (00:20 UTC) and the daily step has run.
        assert policy.deadline_cron in ("0 2 * * *", "0 3 * * *") and policy.timezone == "UTC", name

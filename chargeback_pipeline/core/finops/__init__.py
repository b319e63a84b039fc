"""FinOps views over the published chargebacks: budgets with month-end forecasts, cost anomalies, and the
alerts both raise (pure: no Dagster, no I/O beyond reading the budgets file)."""

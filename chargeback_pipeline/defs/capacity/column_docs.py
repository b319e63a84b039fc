"""Column schemas, descriptions and code references of the PTU capacity assets (merged into
`defs/column_docs.py`, which shows them in the UI)."""

from chargeback_pipeline.core.capacity.monthly import RIGHTSIZING_SCHEMA
from chargeback_pipeline.core.capacity.utilisation import PTU_UTILIZATION_SCHEMA

CAPACITY_COLUMNS = {"ptu_utilization": PTU_UTILIZATION_SCHEMA, "ptu_rightsizing": RIGHTSIZING_SCHEMA}
CAPACITY_CODE = {
    "ptu_utilization": [
        "marts/fct_hourly_backend_traffic.sql",
        "marts/fct_minute_backend_traffic.sql",
        "core/capacity/utilisation.py",
    ],
    "ptu_rightsizing": ["core/capacity/monthly.py", "core/capacity/rightsizing.py", "core/capacity/what_if_plot.py"],
}
CAPACITY_DESCRIPTIONS = {
    "ptu_utilization": {
        "usage_hour": "The hour (UTC).",
        "backend_id": "The PTU backend (pricing file `backends.<id>`, kind ptu).",
        "deployment_name": "The PTU deployment.",
        "model_name": "Its model (pricing file).",
        "ptu_count": "PTUs deployed in the hour (the rate in force).",
        "capacity_weighted_tokens": "ptu_count x ptu_input_tokens_per_minute x 60: weighted tokens the hour holds.",
        "served_requests": "Requests the PTU backend served for this deployment (429s not counted).",
        "served_prompt_tokens": "Their prompt tokens.",
        "served_completion_tokens": "Their completion tokens.",
        "served_weighted_tokens": "prompt + output_token_weight x completion tokens served.",
        "utilization_percent": "served_weighted_tokens / capacity_weighted_tokens, in percent.",
        "throttled_requests": "Requests the PTU backend answered 429 (saturated).",
        "spillover_requests": "Requests a pay-as-you-go backend's deployment of the same name served instead.",
        "spillover_prompt_tokens": "Their prompt tokens.",
        "spillover_completion_tokens": "Their completion tokens.",
        "spillover_weighted_tokens": "Their weighted tokens.",
        "demand_weighted_tokens": "served + spillover weighted tokens: the hour's demand on this deployment.",
        "azure_utilization_percent": (
            "AzureOpenAIProvisionedManagedUtilizationV2, the hour's maximum (Azure Monitor); null when the "
            "source has none."
        ),
        "saturated": "Capacity used (tokens or Azure's metric at 100 %) or demand turned away (spill, 429).",
        "azure_p95_utilization_percent": "95th percentile of the hour's minutes of Azure's metric (nearest rank).",
        "azure_p99_utilization_percent": "99th percentile of the hour's minutes of Azure's metric (nearest rank).",
        "azure_minutes_reported": "Minutes of the hour Azure Monitor reported the metric for (60 at PT1M).",
        "azure_saturated_minutes": "Minutes at 100 % (Azure's metric); null when the source has none.",
        "max_minute_weighted_tokens": "Served weighted tokens in the busiest minute (tokens per minute, logs).",
        "p95_minute_weighted_tokens": "95th percentile of the minutes' served weighted tokens (nearest rank).",
        "p99_minute_weighted_tokens": "99th percentile of the minutes' served weighted tokens (nearest rank).",
        "minute_demand_weighted_tokens": "60 values: each minute's served + spilled weighted tokens (successful).",
        "minute_throttled_requests": "60 values: each minute's 429s from the PTU backend.",
    },
    "ptu_rightsizing": {
        "month": "The month, YYYY-MM (as its folder monthly/month=YYYY-MM).",
        "backend_id": "The PTU backend.",
        "deployment_name": "The PTU deployment.",
        "model_name": "Its model.",
        "currency": "Currency of every amount (pricing file).",
        "hours": "Hours of the month measured by ptu_utilization.",
        "current_ptu_count": "PTUs deployed at the month's last measured hour.",
        "p50_utilization_percent": "Median hourly utilisation (nearest rank).",
        "p95_utilization_percent": "95th percentile of hourly utilisation (nearest rank).",
        "p99_utilization_percent": "99th percentile of hourly utilisation (nearest rank).",
        "max_utilization_percent": "The busiest hour's utilisation.",
        "saturated_hours": "Hours ptu_utilization marked saturated.",
        "spillover_requests": "Requests that spilled to pay-as-you-go.",
        "spillover_prompt_tokens": "Their prompt tokens.",
        "spillover_completion_tokens": "Their completion tokens.",
        "spillover_paygo_cost": "What they cost at the model's pay-as-you-go rates.",
        "throttled_requests": "429s the PTU backend answered.",
        "current_cost": "The month as deployed: PTU cost + pay-as-you-go cost of the demand above capacity.",
        "best_ptu_count": "The advised count: the cheapest meeting the saturation target (null: not calibrated).",
        "best_cost": "The measured window's cost at that count.",
        "saving": "current_cost - best_cost.",
        "best_saturated_hours": "Hours whose demand would not fit at the advised count.",
        "recommendation": "The advice in words: add / cut / keep N PTU with its numbers, or why it cannot calibrate.",
        "measured_from": "First hour measured (UTC).",
        "measured_until": "End of the last hour measured (UTC).",
        "saturated_minutes": "Minutes Azure's utilisation metric read 100 % (null without the metric).",
        "model_saturated_minutes": "Minutes the what-if at the deployed count saturates (calibration).",
        "spillover_weighted_tokens": "Weighted tokens that spilled to pay-as-you-go.",
        "model_spillover_weighted_tokens": "Weighted tokens the what-if at the deployed count puts over capacity.",
        "calibrated": "Whether the what-if reproduces the observed saturation within the stated tolerances.",
        "calibration": "The comparison: what the model gives against what was observed.",
        "action": "add, cut, keep, or cannot calibrate.",
        "best_saturated_minutes": "Saturated minutes at the advised count (the what-if).",
        "monthly_run_rate_saving": "(current - advised cost) x 730 / hours measured; negative: adding costs more.",
    },
}

"""Column schemas, descriptions and code references of the PTU capacity assets (merged into
`defs/column_docs.py`, which shows them in the UI)."""

from chargeback_pipeline.core.capacity.monthly import RIGHTSIZING_SCHEMA
from chargeback_pipeline.core.capacity.utilisation import PTU_UTILIZATION_SCHEMA

CAPACITY_COLUMNS = {"ptu_utilization": PTU_UTILIZATION_SCHEMA, "ptu_rightsizing": RIGHTSIZING_SCHEMA}
CAPACITY_CODE = {
    "ptu_utilization": ["marts/fct_hourly_backend_traffic.sql", "core/capacity/utilisation.py"],
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
    },
    "ptu_rightsizing": {
        "month": "First day of the month.",
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
        "best_ptu_count": "The cheapest PTU count of the what-if.",
        "best_cost": "The month's cost at that count.",
        "saving": "current_cost - best_cost.",
        "best_saturated_hours": "Hours whose demand would not fit at the cheapest count.",
        "recommendation": "keep N PTU, or reduce / increase to N PTU with the monthly saving.",
    },
}

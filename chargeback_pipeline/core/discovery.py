"""Onboarding a tenant: what a source shows over a window, and a pricing-file skeleton to fill in.

`chargeback discover` feeds this the raw tables of each hour (the source's own rows, never stored); the
SQL models `marts/fct_hour_discovery` and `marts/fct_hour_metered_resources` summarise each hour, and
the hours are summed here: products and subscriptions, backends, deployments with their models and the
resources that host them, and the share of traffic that never reached the LLM log.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import yaml

from chargeback_pipeline.core.attribution import hour_params, stage_relations
from chargeback_pipeline.core.billing.pricing import model_family
from chargeback_pipeline.core.topology import account_name
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.schemas import SOURCE_REJECT_SCHEMA

TRAFFIC_MODEL = "marts/fct_hour_discovery"
METERED_MODEL = "marts/fct_hour_metered_resources"
FILL_IN = "FILL_IN"  # a placeholder the pricing validator rejects, naming the setting


@dataclass
class Discovery:
    """The window's traffic summed from its hours."""

    hours: int = 0
    traffic: list[pa.Table] = field(default_factory=list)
    metered: list[pa.Table] = field(default_factory=list)

    def add_hour(self, hour: datetime, gateway: pa.Table, llm: pa.Table, metrics: pa.Table) -> None:
        """Summarise one hour of raw rows (the LLM rows may span a margin around the hour)."""
        con = sql.connect()
        try:
            empty = SOURCE_REJECT_SCHEMA.empty_table()
            relations = {
                "raw_gateway_logs": gateway,
                "raw_llm_logs": llm,
                "raw_gateway_rejected": empty,
                "raw_llm_rejected": empty,
            }
            stage_relations(con, relations, hour, [])
            sql.register(con, "raw_deployment_metrics", metrics)
            params = hour_params(hour, [])
            self.traffic.append(sql.select_model(con, TRAFFIC_MODEL, params))
            self.metered.append(sql.select_model(con, METERED_MODEL, params))
        finally:
            con.close()
        self.hours += 1

    def _rows(self, tables: list[pa.Table]) -> list[dict]:
        return [row for table in tables for row in table.to_pylist()]

    def products(self) -> list[dict]:
        """Per product and subscription: requests and tokens, busiest first."""
        totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        for row in self._rows(self.traffic):
            if row["product_id"] is not None:
                total = totals[(row["product_id"], row["subscription_id"])]
                total[0] += row["gateway_requests"]
                total[1] += row["prompt_tokens"] + row["completion_tokens"]
        rows = [{"product": p, "subscription": s, "requests": r, "tokens": t} for (p, s), (r, t) in totals.items()]
        return sorted(rows, key=lambda r: (-r["tokens"], r["product"], r["subscription"]))

    def backends(self) -> list[dict]:
        """Per backend (and deployment): requests and tokens; backend `(no gateway row)` for LLM requests
        logged without one."""
        totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in self._rows(self.traffic):
            if row["deployment_name"] is None:
                continue
            total = totals[(row["backend_id"] or "(no gateway row)", row["deployment_name"], row["model_name"])]
            total[0] += row["gateway_requests"]
            total[1] += row["llm_requests"]
            total[2] += row["prompt_tokens"] + row["completion_tokens"]
        rows = [
            {"backend": b, "deployment": d, "model": m, "requests": r, "llm_requests": lr, "tokens": t}
            for (b, d, m), (r, lr, t) in totals.items()
        ]
        return sorted(rows, key=lambda r: (r["backend"], r["deployment"], r["model"] or ""))

    def resources(self) -> list[dict]:
        """Per resource and deployment of the metrics: the tokens Azure Monitor counted."""
        totals: dict[tuple, int] = defaultdict(int)
        for row in self._rows(self.metered):
            key = (row["resource_id"] or "(no resource id)", row["deployment_name"])
            totals[key] += row["metric_prompt_tokens"] + row["metric_completion_tokens"]
        rows = [{"resource": r, "deployment": d, "metered_tokens": t} for (r, d), t in totals.items()]
        return sorted(rows, key=lambda r: (r["resource"], r["deployment"]))

    def llm_log_share(self) -> dict[str, int | float]:
        """How much gateway traffic reached the LLM log, and how many LLM requests had no gateway row."""
        rows = self._rows(self.traffic)
        gateway = sum(r["gateway_requests"] for r in rows)
        reached = sum(r["llm_requests"] for r in rows if r["product_id"] is not None)
        orphans = sum(r["llm_requests"] for r in rows if r["product_id"] is None)
        return {
            "gateway_requests": gateway,
            "reached_llm_log": reached,
            "never_reached_llm_log_percent": round(100.0 * (gateway - reached) / gateway, 2) if gateway else 0.0,
            "llm_requests_without_gateway_row": orphans,
        }

    def _served(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """backend -> deployment -> model, and backend -> resource id (where the metrics name one)."""
        served: dict[str, dict[str, str]] = defaultdict(dict)
        for row in self.backends():
            if row["backend"] != "(no gateway row)" and row["model"]:
                served[row["backend"]].setdefault(row["deployment"], model_family(row["model"]))
        resource_of = {}
        for row in self.resources():
            if row["resource"] != "(no resource id)":
                backend = next((b for b in served if b.lower() == account_name(row["resource"]).lower()), None)
                resource_of[backend or account_name(row["resource"])] = row["resource"]
                served.setdefault(backend or account_name(row["resource"]), {})
        return served, resource_of

    def resource_models(self) -> dict[str, set[str]]:
        """Resource id -> the models of its deployments: what a cost export's meters on it can bill."""
        served, resource_of = self._served()
        return {resource: set(served[backend].values()) for backend, resource in resource_of.items()}

    def pricing_skeleton(self, currency: str = "USD", meters: dict[str, dict] | None = None) -> str:
        """A pricing file with every backend, resource id, deployment and model in place, and `FILL_IN`
        where a price or a kind goes: the validator then names each one still to fill in. `meters`: the
        cost export's meters with what they bill (`meters.meter_mapping`), when an export was read."""
        served, resource_of = self._served()
        models = sorted({model for deployments in served.values() for model in deployments.values()})
        document = {
            "currency": currency,
            "models": {
                model: {"rates": [{"effective_from": FILL_IN, "input_per_1k": FILL_IN, "output_per_1k": FILL_IN}]}
                for model in models
            },
            "backends": {
                backend: {
                    "kind": FILL_IN,
                    **({"resource_id": resource_of[backend]} if backend in resource_of else {}),
                    "deployments": {name: {"model": model} for name, model in sorted(deployments.items())}
                    or {FILL_IN: {"model": FILL_IN}},
                }
                for backend, deployments in sorted(served.items())
            },
            **({"meters": meters} if meters else {}),
        }
        return SKELETON_HEADER + yaml.safe_dump(document, sort_keys=False, width=200)


SKELETON_HEADER = """\
# Pricing file written by `chargeback discover --write` from what the source showed.
# Fill in every FILL_IN, then check it: `chargeback check-pricing <this file>` names each value still
# missing or wrong by its path; any chargeback command validates the file it is given the same way.
# - backends.<id>.kind: ptu (provisioned throughput) or paygo (pay-as-you-go).
# - a ptu deployment needs rates: [{effective_from: YYYY-MM-DD, ptu_count: N, hourly_rate_per_ptu: X}]
#   (or monthly_reservation_per_ptu: X); see pricing.example.yaml for every setting.
# - models.<model>.rates: pay-as-you-go prices per 1,000 tokens, needed for models a paygo backend serves;
#   a model only PTU deployments serve needs no rates (delete its entry's rates).
# - meters (written when a Cost Management export is configured): each meter the export bills these
#   resources on, with its kind and model read from its name; FILL_IN where the name does not say.
"""

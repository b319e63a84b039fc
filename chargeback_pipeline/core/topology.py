"""Which APIM backend is which Azure OpenAI resource, and which backends serve a deployment name.

One deployment name may live on several resources (a PTU resource and the pay-as-you-go resource it
spills over to, behind one APIM backend pool). The gateway log names the backend that served a request,
the metrics name the resource: this is the map between them that the reconciliation joins on. It comes
from the pricing file when there is one (`backends.<id>.resource_id`, `backends.<id>.deployments`);
without one, a resource's backend is its account name (`fct_deployment_reconciliation` explains).
"""

from dataclasses import dataclass

import pyarrow as pa

from chargeback_pipeline.core.billing.pricing import Pricing

RESOURCES_SCHEMA = pa.schema([("backend_id", pa.string()), ("resource_id", pa.string())])
DEPLOYMENTS_SCHEMA = pa.schema([("backend_id", pa.string()), ("deployment_name", pa.string())])


class TopologyError(ValueError):
    """The metrics cannot be placed on a backend: the message says what to configure."""


@dataclass(frozen=True)
class BackendTopology:
    resources: tuple[tuple[str, str], ...] = ()  # (backend_id, resource_id)
    deployments: tuple[tuple[str, str], ...] = ()  # (backend_id, deployment_name)

    @classmethod
    def of_pricing(cls, pricing: Pricing | None) -> "BackendTopology":
        if pricing is None:
            return cls()
        return cls(
            resources=tuple(
                (backend_id, backend.resource_id)
                for backend_id, backend in sorted(pricing.backends.items())
                if backend.resource_id
            ),
            deployments=tuple(
                (backend_id, name)
                for backend_id, backend in sorted(pricing.backends.items())
                for name in sorted(backend.deployments)
            ),
        )

    def relations(self) -> dict[str, pa.Table]:
        """The relations `fct_deployment_reconciliation` reads."""
        return {
            "backend_resources": pa.Table.from_pylist(
                [{"backend_id": b, "resource_id": r} for b, r in self.resources], schema=RESOURCES_SCHEMA
            ),
            "backend_deployments": pa.Table.from_pylist(
                [{"backend_id": b, "deployment_name": d} for b, d in self.deployments], schema=DEPLOYMENTS_SCHEMA
            ),
        }


NO_TOPOLOGY = BackendTopology()  # no pricing file: backends are the resources' account names


def account_name(resource_id: str) -> str:
    """The Azure OpenAI account name of an ARM resource id (its last segment)."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1]

"""What serves the simulated calls: two Azure OpenAI accounts (PTU and pay-as-you-go) and their deployments.

The topology is the production one of an APIM backend pool: the PTU resource and the pay-as-you-go
resource it spills over to host deployments of the *same name* (`gpt-4.1`, `gpt-4o`), because APIM
routes `/openai/deployments/{name}/...` unchanged to whichever backend of the pool serves the request.
A deployment is therefore identified by (backend_id, deployment name), never by its name alone: the
gateway row's BackendId says which resource served a request, the LLM record only names the
deployment, and each resource's metrics report its own deployments.

Requests refer to a deployment by its integer code, its index in `DEPLOYMENT_LIST`; the lookup arrays
and Arrow labels below turn those codes into backend codes and column values.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from chargeback_pipeline.sources.simulated.arrays import labels

REGION = "East US"
UNKNOWN = "unknown"  # report label for model / deployment of a request without an LLM record

PTU_BACKEND_ID = "aoai-ptu-eastus"
PAYGO_BACKEND_ID = "aoai-paygo-eastus"
_AZURE_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
_RESOURCE_GROUP = "rg-ai"


def account_resource_id(account_name: str) -> str:
    """ARM id of the (simulated) Azure OpenAI account behind a backend."""
    return (
        f"/subscriptions/{_AZURE_SUBSCRIPTION_ID}/resourceGroups/{_RESOURCE_GROUP}"
        f"/providers/Microsoft.CognitiveServices/accounts/{account_name}"
    )


@dataclass(frozen=True)
class SimulatedDeployment:
    name: str  # deployment name: the same on every resource of the backend pool that hosts it
    model_name: str
    backend_id: str  # APIM backend id; equal to the Azure OpenAI account name
    resource_id: str  # the account's ARM id: the metrics' ResourceId
    billing: Literal["ptu", "paygo"]

    @property
    def key(self) -> tuple[str, str]:
        """(backend_id, name): what identifies a deployment (names repeat across resources)."""
        return (self.backend_id, self.name)


def _deployment(name: str, model_name: str, backend_id: str, billing: Literal["ptu", "paygo"]) -> SimulatedDeployment:
    return SimulatedDeployment(name, model_name, backend_id, account_resource_id(backend_id), billing)


DEPLOYMENT_LIST = (
    _deployment("gpt-4.1", "gpt-4.1", PTU_BACKEND_ID, "ptu"),
    _deployment("gpt-4o", "gpt-4o", PTU_BACKEND_ID, "ptu"),
    _deployment("gpt-4.1", "gpt-4.1", PAYGO_BACKEND_ID, "paygo"),  # the PTU's spillover, same name
    _deployment("gpt-4o", "gpt-4o", PAYGO_BACKEND_ID, "paygo"),  # the PTU's spillover, same name
    _deployment("text-embedding-3-large", "text-embedding-3-large", PAYGO_BACKEND_ID, "paygo"),
)

# (backend_id, deployment name) -> what the simulator serves from it; the pricing file names these.
SIMULATED_DEPLOYMENTS: Mapping[tuple[str, str], SimulatedDeployment] = MappingProxyType(
    {deployment.key: deployment for deployment in DEPLOYMENT_LIST}
)
# The distinct deployment names, sorted (what the LLM log's DeploymentName can hold).
SIMULATED_DEPLOYMENT_NAMES = tuple(sorted({deployment.name for deployment in DEPLOYMENT_LIST}))
DEPLOYMENT_INDEX = {deployment.key: index for index, deployment in enumerate(DEPLOYMENT_LIST)}
BACKEND_IDS = (PTU_BACKEND_ID, PAYGO_BACKEND_ID)
DEPLOYMENT_IS_PTU = np.array([d.billing == "ptu" for d in DEPLOYMENT_LIST], dtype=bool)
DEPLOYMENT_BACKEND = np.array([BACKEND_IDS.index(d.backend_id) for d in DEPLOYMENT_LIST])
# Per deployment code: is its name served by more than one backend? A logged record of such a name
# whose gateway row is not at hand cannot be placed on a resource (ground_truth, unattributed tokens).
DEPLOYMENT_NAME_SHARED = np.array(
    [sum(other.name == d.name for other in DEPLOYMENT_LIST) > 1 for d in DEPLOYMENT_LIST], dtype=bool
)

# What one PTU of a model sustains, as Azure measures it (Microsoft's PTU sizing table, "Provisioned
# throughput units", 2025): input tokens per minute, and how many input tokens one output token weighs.
# This is the simulated Azure's truth; the pricing file states its own figures, which may be wrong.
PTU_MODEL_CAPACITY = MappingProxyType({"gpt-4.1": (3000, 4), "gpt-4o": (2500, 3)})
PTU_DEPLOYMENT_CODES = np.flatnonzero(DEPLOYMENT_IS_PTU)
PTU_DEPLOYMENT_NAMES = tuple(sorted(d.name for d in DEPLOYMENT_LIST if d.billing == "ptu"))
# Per deployment code: weighted tokens per minute per PTU, and the output token weight (0 / 1 off PTU).
DEPLOYMENT_TOKENS_PER_PTU_MINUTE = np.array(
    [PTU_MODEL_CAPACITY[d.model_name][0] if d.billing == "ptu" else 0 for d in DEPLOYMENT_LIST], dtype=np.int64
)
DEPLOYMENT_OUTPUT_WEIGHT = np.array(
    [PTU_MODEL_CAPACITY[d.model_name][1] if d.billing == "ptu" else 1 for d in DEPLOYMENT_LIST], dtype=np.int64
)

DEPLOYMENT_NAME_LABELS = labels(d.name for d in DEPLOYMENT_LIST)
MODEL_NAME_LABELS = labels(d.model_name for d in DEPLOYMENT_LIST)
RESOURCE_ID_LABELS = labels(d.resource_id for d in DEPLOYMENT_LIST)
DEPLOYMENT_BACKEND_ID_LABELS = labels(d.backend_id for d in DEPLOYMENT_LIST)
BACKEND_ID_LABELS = labels(BACKEND_IDS)

# The usage report adds one code after the deployments: "unknown", for requests without an LLM record.
REPORT_DEPLOYMENT_LABELS = labels([*(d.name for d in DEPLOYMENT_LIST), UNKNOWN])
REPORT_MODEL_LABELS = labels([*(d.model_name for d in DEPLOYMENT_LIST), UNKNOWN])
NO_LLM_DEPLOYMENT = len(DEPLOYMENT_LIST)  # report code of "unknown" model / deployment
REPORT_DEPLOYMENT_CODES = NO_LLM_DEPLOYMENT + 1

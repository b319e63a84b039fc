"""What serves the simulated calls: two Azure OpenAI accounts (PTU and pay-as-you-go) and their deployments.

Requests refer to a deployment by its index in `DEPLOYMENT_LIST`; the lookup arrays and Arrow labels
below turn those integer codes into backend codes and column values.
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
    name: str
    model_name: str
    backend_id: str  # APIM backend id; equal to the Azure OpenAI account name
    resource_id: str
    billing: Literal["ptu", "paygo"]


DEPLOYMENT_LIST = (
    SimulatedDeployment("gpt-41-ptu", "gpt-4.1", PTU_BACKEND_ID, account_resource_id(PTU_BACKEND_ID), "ptu"),
    SimulatedDeployment("gpt-4o-ptu", "gpt-4o", PTU_BACKEND_ID, account_resource_id(PTU_BACKEND_ID), "ptu"),
    SimulatedDeployment("gpt-41-paygo", "gpt-4.1", PAYGO_BACKEND_ID, account_resource_id(PAYGO_BACKEND_ID), "paygo"),
    SimulatedDeployment("gpt-4o-paygo", "gpt-4o", PAYGO_BACKEND_ID, account_resource_id(PAYGO_BACKEND_ID), "paygo"),
    SimulatedDeployment(
        "embedding-large-paygo",
        "text-embedding-3-large",
        PAYGO_BACKEND_ID,
        account_resource_id(PAYGO_BACKEND_ID),
        "paygo",
    ),
)

# Deployment name -> what the simulator serves from it; the pricing file names these deployments.
SIMULATED_DEPLOYMENTS: Mapping[str, SimulatedDeployment] = MappingProxyType(
    {deployment.name: deployment for deployment in DEPLOYMENT_LIST}
)
DEPLOYMENT_INDEX = {deployment.name: index for index, deployment in enumerate(DEPLOYMENT_LIST)}
BACKEND_IDS = (PTU_BACKEND_ID, PAYGO_BACKEND_ID)
DEPLOYMENT_BACKEND = np.array([BACKEND_IDS.index(d.backend_id) for d in DEPLOYMENT_LIST])

DEPLOYMENT_NAME_LABELS = labels(d.name for d in DEPLOYMENT_LIST)
MODEL_NAME_LABELS = labels(d.model_name for d in DEPLOYMENT_LIST)
RESOURCE_ID_LABELS = labels(d.resource_id for d in DEPLOYMENT_LIST)
BACKEND_ID_LABELS = labels(BACKEND_IDS)

# The usage report adds one code after the deployments: "unknown", for requests without an LLM record.
REPORT_DEPLOYMENT_LABELS = labels([*(d.name for d in DEPLOYMENT_LIST), UNKNOWN])
REPORT_MODEL_LABELS = labels([*(d.model_name for d in DEPLOYMENT_LIST), UNKNOWN])
NO_LLM_DEPLOYMENT = len(DEPLOYMENT_LIST)  # report code of "unknown" model / deployment
REPORT_DEPLOYMENT_CODES = NO_LLM_DEPLOYMENT + 1

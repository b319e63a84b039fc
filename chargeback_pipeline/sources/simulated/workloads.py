"""What the simulated calls do: the kinds of LLM call (workloads), their deployments and token sizes.

A workload calls one deployment name. Its home backend serves it; a workload with a spillover backend
overflows to that backend's deployment of the same name when the PTU is saturated (traffic decides
when). Requests refer to a workload by its index in `WORKLOADS`; the per-workload arrays below let a
whole hour of requests look up their workload's properties (deployment codes included) in one numpy
indexing step.
"""

from dataclasses import dataclass

import numpy as np

from chargeback_pipeline.sources.simulated.arrays import labels
from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_INDEX, PAYGO_BACKEND_ID, PTU_BACKEND_ID

API_ID = "azure-openai"
NON_LLM_OPERATION_ID = "list-deployments"


@dataclass(frozen=True)
class Workload:
    """One kind of LLM call: which operation, which deployments serve it, how many tokens it takes."""

    operation_id: str  # gateway OperationId
    llm_operation_name: str  # LLM log OperationName
    deployment_name: str  # the deployment the client calls (the LLM log's DeploymentName)
    backend_id: str  # the backend that serves it normally
    spillover_backend_id: str | None  # serves the same name when the PTU overflows; None: never spills
    prompt_median: float
    prompt_sigma: float  # log-normal spread: heavy-tailed token counts
    prompt_max: int
    completion_median: float  # 0: the operation generates no tokens (embeddings)
    completion_sigma: float
    stream_share: float


WORKLOADS = (
    Workload("chat-completions", "ChatCompletions_Create", "gpt-4.1", PTU_BACKEND_ID, PAYGO_BACKEND_ID,
             1500, 1.1, 30_000, 300, 1.0, 0.5),
    Workload("chat-completions", "ChatCompletions_Create", "gpt-4o", PTU_BACKEND_ID, PAYGO_BACKEND_ID,
             900, 1.0, 30_000, 220, 0.9, 0.4),
    Workload("completions", "Completions_Create", "gpt-4o", PTU_BACKEND_ID, PAYGO_BACKEND_ID,
             400, 0.8, 30_000, 120, 0.8, 0.0),
    Workload("embeddings", "Embeddings_Create", "text-embedding-3-large", PAYGO_BACKEND_ID, None,
             350, 0.9, 8191, 0, 0.0, 0.0),
)  # fmt: skip
MIN_PROMPT_TOKENS = 50
MAX_COMPLETION_TOKENS = 4000

# Per-workload lookup arrays, indexed by workload code. Deployments are codes (DEPLOYMENT_LIST index),
# looked up by (backend_id, deployment name): the name alone is ambiguous.
WORKLOAD_HOME_DEPLOYMENT = np.array([DEPLOYMENT_INDEX[w.backend_id, w.deployment_name] for w in WORKLOADS])
WORKLOAD_SPILLOVER_DEPLOYMENT = np.array(
    [DEPLOYMENT_INDEX[w.spillover_backend_id or w.backend_id, w.deployment_name] for w in WORKLOADS]
)
WORKLOAD_CAN_SPILL = np.array([w.spillover_backend_id is not None for w in WORKLOADS])
WORKLOAD_PROMPT_MEDIAN = np.array([w.prompt_median for w in WORKLOADS])
WORKLOAD_PROMPT_SIGMA = np.array([w.prompt_sigma for w in WORKLOADS])
WORKLOAD_PROMPT_MAX = np.array([w.prompt_max for w in WORKLOADS])
WORKLOAD_COMPLETION_MEDIAN = np.array([w.completion_median for w in WORKLOADS])
WORKLOAD_COMPLETION_SIGMA = np.array([w.completion_sigma for w in WORKLOADS])
WORKLOAD_GENERATES = np.array([w.completion_median > 0 for w in WORKLOADS])
WORKLOAD_STREAM_SHARE = np.array([w.stream_share for w in WORKLOADS])

# Gateway operations: those of the workloads (first-seen order), then the one successful non-LLM call.
GATEWAY_OPERATIONS = (*dict.fromkeys(w.operation_id for w in WORKLOADS), NON_LLM_OPERATION_ID)
WORKLOAD_GATEWAY_OPERATION = np.array([GATEWAY_OPERATIONS.index(w.operation_id) for w in WORKLOADS])
NON_LLM_OPERATION = GATEWAY_OPERATIONS.index(NON_LLM_OPERATION_ID)
GATEWAY_OPERATION_LABELS = labels(GATEWAY_OPERATIONS)
LLM_OPERATION_LABELS = labels(w.llm_operation_name for w in WORKLOADS)

"""Usage report figures of many requests, folded into one entry per report key with numpy.

A report key (product, subscription, model, deployment, backend) is encoded as one int64 group code:
product follows from subscription and model from deployment, so three codes suffice. Hours are folded
one by one and the small partials merged, so a whole day of requests never has to sit in memory.
"""

from typing import NamedTuple

import numpy as np

from chargeback_pipeline.sources.simulated.deployments import (
    BACKEND_IDS,
    DEPLOYMENT_BACKEND,
    NO_LLM_DEPLOYMENT,
    REPORT_DEPLOYMENT_CODES,
)
from chargeback_pipeline.sources.simulated.hour_requests import HourRequests


class UsageGroups(NamedTuple):
    """Usage report figures per group code (subscription, reported deployment, backend), int64 arrays."""

    group: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    calls: np.ndarray
    failed_calls: np.ndarray
    first_seen_us: np.ndarray
    last_seen_us: np.ndarray

    @classmethod
    def of_requests(
        cls, requests: HourRequests, extra: np.ndarray | None = None, extra_codes: int = 1
    ) -> "UsageGroups":
        """One entry per reported request (billable or failed), reduced to one per group. `extra`: a code
        per request below the report key (e.g. its caller, < extra_codes): group = key * extra_codes + code."""
        billable = requests.has_gateway_row & requests.is_success & requests.has_llm_record
        failed = requests.has_gateway_row & ~requests.is_success
        reported = np.flatnonzero(billable | failed)
        deployment = requests.deployment[reported]
        report_deployment = np.where(requests.has_llm_record[reported], deployment, NO_LLM_DEPLOYMENT)
        group = encode_usage_group(requests.subscription[reported], report_deployment, DEPLOYMENT_BACKEND[deployment])
        if extra is not None:
            group = group * extra_codes + extra[reported]
        is_billable = billable[reported]
        gateway_time_us = requests.gateway_time_us[reported]
        return cls(
            group=group,
            prompt_tokens=np.where(is_billable, requests.prompt_tokens[reported], 0),
            completion_tokens=np.where(is_billable, requests.completion_tokens[reported], 0),
            calls=is_billable.astype(np.int64),
            failed_calls=failed[reported].astype(np.int64),
            first_seen_us=gateway_time_us,
            last_seen_us=gateway_time_us,
        ).reduced()

    @classmethod
    def merge(cls, parts: list["UsageGroups"]) -> "UsageGroups":
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True))).reduced()

    def reduced(self) -> "UsageGroups":
        """One entry per group, groups ascending: sums, earliest first_seen, latest last_seen."""
        if len(self.group) == 0:
            return self
        order = np.argsort(self.group, kind="stable")
        sorted_group = self.group[order]
        starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])

        def per_group(reduction: np.ufunc, values: np.ndarray) -> np.ndarray:
            return reduction.reduceat(values[order], starts)

        return UsageGroups(
            group=sorted_group[starts],
            prompt_tokens=per_group(np.add, self.prompt_tokens),
            completion_tokens=per_group(np.add, self.completion_tokens),
            calls=per_group(np.add, self.calls),
            failed_calls=per_group(np.add, self.failed_calls),
            first_seen_us=per_group(np.minimum, self.first_seen_us),
            last_seen_us=per_group(np.maximum, self.last_seen_us),
        )

    def key_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(subscription, reported deployment, backend) codes of each group."""
        rest, backend = np.divmod(self.group, len(BACKEND_IDS))
        subscription, report_deployment = np.divmod(rest, REPORT_DEPLOYMENT_CODES)
        return subscription, report_deployment, backend


def encode_usage_group(subscription, report_deployment, backend) -> np.ndarray:
    """One int64 per report key (product follows from subscription, model from deployment)."""
    return (subscription * REPORT_DEPLOYMENT_CODES + report_deployment) * len(BACKEND_IDS) + backend

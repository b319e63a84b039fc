"""The data-quality thresholds: every one declared here once, with its default and its bounds.

`settings.Settings` reads them from the environment (CHARGEBACK_<NAME>), the Dagster resource
`DataQualityPolicy` carries them into runs (where the UI can override them per run), and the engine's
judges read them from either: all three are this class.
"""

from pydantic import BaseModel, Field, model_validator


class QualityPolicy(BaseModel):
    """Thresholds of the asset checks (README: Checks)."""

    # A deployment-hour or -day breaches a level when its unattributed share exceeds the percent AND
    # its unattributed tokens exceed the token amount; deployment-periods whose metrics count fewer than
    # reconciliation_min_tokens are not judged (a few stray tokens make huge percentages).
    reconciliation_warn_percent: float = Field(default=2.0, ge=0, le=100)
    reconciliation_block_percent: float = Field(default=10.0, ge=0, le=100)
    reconciliation_warn_tokens: int = Field(default=0, ge=0)
    reconciliation_block_tokens: int = Field(default=0, ge=0)
    reconciliation_min_tokens: int = Field(default=10_000, ge=0)
    # Share of an hour's rows quarantined above which the quarantine check fails.
    quarantine_max_percent: float = Field(default=1.0, ge=0, le=100)
    # Share of an hour's LLM requests with no gateway row above which the gateway log is judged
    # incomplete; hours with fewer LLM requests than the minimum are not judged.
    orphan_llm_max_percent: float = Field(default=5.0, ge=0, le=100)
    gateway_completeness_min_requests: int = Field(default=20, ge=0)
    # The audit (defs/audit): share of a resource-deployment-day's metered tokens (raw Azure Monitor rows)
    # charged to `unattributed` above which its check warns, and fails the day.
    audit_unattributed_warn_percent: float = Field(default=5.0, ge=0, le=100)
    audit_unattributed_error_percent: float = Field(default=10.0, ge=0, le=100)

    @model_validator(mode="after")
    def _block_above_warn(self):
        if self.reconciliation_block_percent < self.reconciliation_warn_percent:
            raise ValueError(
                "CHARGEBACK_RECONCILIATION_BLOCK_PERCENT must be at least CHARGEBACK_RECONCILIATION_WARN_PERCENT"
            )
        return self

    def thresholds(self) -> dict:
        """The thresholds alone (a subclass may carry more fields)."""
        return {name: getattr(self, name) for name in QualityPolicy.model_fields}

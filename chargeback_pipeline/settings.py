"""All configuration, read from the environment once and validated at load time.

This is the only module that reads `os.environ` (through pydantic-settings). A malformed value fails
the code location at load with the setting's name and the reason, instead of failing a run hours later.
Secrets (the Blob connection string) are not held here: `definitions.py` hands them to resources as
`dg.EnvVar`, so they never appear in the Dagster UI or the run config.
"""

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeback_pipeline.pricing import Pricing, PricingError, load_pricing

PRICING_FILE_ENV = "CHARGEBACK_PRICING_FILE"
DEFAULT_PRICING_FILE = Path("pricing.example.yaml")
# The repository's own example, used when the default is asked for from a directory that lacks it.
_REPOSITORY_PRICING_FILE = Path(__file__).resolve().parent.parent / DEFAULT_PRICING_FILE


class SourceKind(StrEnum):
    simulated = "simulated"
    folder = "folder"
    log_analytics = "log_analytics"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHARGEBACK_", extra="ignore", frozen=True)

    source: SourceKind = SourceKind.simulated
    source_folder: Path | None = None
    simulated_requests_per_hour: int = Field(default=2000, ge=0, le=5_000_000)
    simulated_seed: int = 20260101

    # Where landed raw Parquet and intermediate tables live (the "lake"), and where reports go.
    lake_dir: Path = Path("data/lake")
    output_dir: Path = Path("data/reports")
    blob_account_url: str | None = None
    # Only whether it is set: the value itself is handed to resources as dg.EnvVar, never held here.
    blob_connection_string: SecretStr | None = None
    blob_container: str = "chargeback"
    # Keep the lake in the same Blob container (under this prefix) so runs on any machine share it.
    lake_on_blob: bool = False
    blob_lake_prefix: str = "lake"

    # First hour the partitions start at (UTC). Backfills cannot reach earlier.
    partitions_start: date = date(2026, 1, 1)
    # How far past the hour an LLM record of a request of that hour may be logged and still be joined.
    llm_join_overlap_minutes: int = Field(default=10, ge=0, le=60)

    # Scheduling: hour H is landed LAG minutes after it ends; every hourly run re-pulls the LOOKBACK
    # hours before it (late rows), and reaches back up to CATCHUP hours to hours never landed.
    schedule_lag_minutes: int = Field(default=20, ge=0, le=1440)
    late_data_lookback_hours: int = Field(default=6, ge=0, le=168)
    catchup_hours: int = Field(default=72, ge=1, le=24 * 31)

    # Data-quality policy (see README "Checks"). A deployment-hour or -day breaches a level when its
    # unattributed share exceeds the percent AND its unattributed tokens exceed the token amount;
    # deployment-hours whose metrics count fewer than reconciliation_min_tokens are not judged.
    reconciliation_warn_percent: float = Field(default=2.0, ge=0, le=100)
    reconciliation_block_percent: float = Field(default=10.0, ge=0, le=100)
    reconciliation_warn_tokens: int = Field(default=0, ge=0)
    reconciliation_block_tokens: int = Field(default=0, ge=0)
    reconciliation_min_tokens: int = Field(default=10_000, ge=0)
    quarantine_max_percent: float = Field(default=1.0, ge=0, le=100)
    # Share of an hour's LLM requests with no gateway row above which the gateway log is judged incomplete.
    orphan_llm_max_percent: float = Field(default=5.0, ge=0, le=100)
    # The pricing file (README "Money"). A relative path is relative to the current directory.
    pricing_file: Path = DEFAULT_PRICING_FILE
    # Deployments the pipeline knows (comma-separated). LLM rows naming another are quarantined. Empty:
    # the deployments the pricing file names.
    deployments: str = ""

    log_analytics_workspace_id: str | None = None
    log_analytics_endpoint: str = "https://api.loganalytics.io/v1"
    metrics_endpoint: str | None = None
    openai_resource_ids: str = ""
    gateway_table: str = "ApiManagementGatewayLogs"
    llm_table: str = "ApiManagementGatewayLlmLog"

    _pricing: Pricing | None = PrivateAttr(default=None)

    @field_validator("pricing_file")
    @classmethod
    def _absolute_pricing_file(cls, path: Path) -> Path:
        if path == DEFAULT_PRICING_FILE and not path.is_file() and _REPOSITORY_PRICING_FILE.is_file():
            return _REPOSITORY_PRICING_FILE
        return path if path.is_absolute() else Path.cwd() / path

    @field_validator("blob_account_url")
    @classmethod
    def _https_account_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://127.", "http://localhost")):
            raise ValueError("must be an https:// account URL (http is allowed only on loopback)")
        return value or None

    @model_validator(mode="after")
    def _source_needs(self) -> "Settings":
        if self.source == SourceKind.folder and self.source_folder is None:
            raise ValueError("CHARGEBACK_SOURCE=folder needs CHARGEBACK_SOURCE_FOLDER")
        if self.source == SourceKind.log_analytics and not self.log_analytics_workspace_id:
            raise ValueError("CHARGEBACK_SOURCE=log_analytics needs CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID")
        if self.lake_on_blob and not (self.blob_account_url or self.blob_connection_string_set):
            raise ValueError(
                "CHARGEBACK_LAKE_ON_BLOB=true needs CHARGEBACK_BLOB_ACCOUNT_URL or CHARGEBACK_BLOB_CONNECTION_STRING"
            )
        if self.catchup_hours < self.late_data_lookback_hours:
            raise ValueError("CHARGEBACK_CATCHUP_HOURS must be at least CHARGEBACK_LATE_DATA_LOOKBACK_HOURS")
        if self.reconciliation_block_percent < self.reconciliation_warn_percent:
            raise ValueError(
                "CHARGEBACK_RECONCILIATION_BLOCK_PERCENT must be at least CHARGEBACK_RECONCILIATION_WARN_PERCENT"
            )
        return self

    @model_validator(mode="after")
    def _load_pricing(self) -> "Settings":
        # Validated here, once, so a bad pricing file fails the code location at load, not a run later.
        try:
            self._pricing = load_pricing(self.pricing_file)
        except PricingError as error:
            raise ValueError(f"{PRICING_FILE_ENV}={self.pricing_file}: {error}") from None
        return self

    @property
    def pricing(self) -> Pricing:
        """The validated pricing file."""
        assert self._pricing is not None
        return self._pricing

    @property
    def blob_connection_string_set(self) -> bool:
        return self.blob_connection_string is not None and bool(self.blob_connection_string.get_secret_value())

    @property
    def deployment_list(self) -> list[str]:
        return [d.strip() for d in self.deployments.split(",") if d.strip()]

    @property
    def resource_id_list(self) -> list[str]:
        return [r.strip() for r in self.openai_resource_ids.split(",") if r.strip()]


def load_settings(**overrides) -> Settings:
    """Settings from the environment (plus explicit overrides), with errors that name the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            message = item["msg"].removeprefix("Value error, ")
            if item["loc"]:
                message = f"CHARGEBACK_{'_'.join(str(p) for p in item['loc']).upper()}: {message}"
            problems.append(message)  # cross-setting problems name their variables themselves
        raise SettingsError("invalid chargeback configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    return load_settings()

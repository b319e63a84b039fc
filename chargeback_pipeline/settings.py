"""Every setting, read from the environment (CHARGEBACK_<NAME>) when asked for, never at import.

`load_settings()` reads and validates them all: the general ones below, the data-quality thresholds
(`core.quality.QualityPolicy`, declared there once) and the chosen source's own settings (the fields of
its resource, `sources.registry`). A malformed value fails the code location at load with the
variable's name and the reason, instead of failing a run hours later. Secrets (the Blob connection
string) are not held here: `definitions.py` hands them to resources as `dg.EnvVar`, so they never
appear in the Dagster UI or the run config.
"""

import difflib
import logging
import os
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_origin

from azure.storage.blob import BlobServiceClient
from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeback_pipeline.core.billing.pricing import Pricing, PricingError, load_pricing
from chargeback_pipeline.core.finops.budgets import Budgets, BudgetsError, load_budgets
from chargeback_pipeline.core.finops.policy import FinOpsPolicy
from chargeback_pipeline.core.quality import QualityPolicy
from chargeback_pipeline.sources.registry import SOURCE_RESOURCES
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage.package_files import package_path
from chargeback_pipeline.storage.sql import DEFAULT_MEMORY_LIMIT, memory_limit_checked

LOGGER = logging.getLogger(__name__)
ENV_PREFIX = "CHARGEBACK_"
# CHARGEBACK_* variables read outside the settings (none today; a new one is listed here, or it is warned about).
OTHER_VARIABLES: frozenset[str] = frozenset()
PRICING_FILE_ENV = "CHARGEBACK_PRICING_FILE"
BUDGETS_FILE_ENV = "CHARGEBACK_BUDGETS_FILE"
ALERT_WEBHOOK_URL_ENV = "CHARGEBACK_ALERT_WEBHOOK_URL"
BLOB_CONNECTION_STRING_ENV = "CHARGEBACK_BLOB_CONNECTION_STRING"
FINOPS_HUBS_CONNECTION_STRING_ENV = "CHARGEBACK_FINOPS_HUBS_CONNECTION_STRING"
COST_EXPORT_CONNECTION_STRING_ENV = "CHARGEBACK_COST_EXPORT_CONNECTION_STRING"
# The example pricing file shipped in the package (the repository's pricing.example.yaml): the same file
# whatever the working directory, in a checkout and in an installed wheel. A list-price estimate.
DEFAULT_PRICING_FILE = package_path("pricing.example.yaml")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(BaseSettings, QualityPolicy, FinOpsPolicy):
    # A variable set to an empty string is unset (its default), not an empty path or name: an empty
    # CHARGEBACK_OUTPUT_DIR must not write reports into the working folder. (CHARGEBACK_PRICING_FILE= keeps
    # its documented meaning, no pricing file: `load_settings`.)
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    # Which source (sources.registry); its own settings are its resource's fields.
    source: str = "simulated"

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

    # Scheduling: hour H is landed LAG minutes after it ends; every hourly run re-pulls the LOOKBACK
    # hours before it (late rows), and reaches back up to CATCHUP hours to hours never landed.
    schedule_lag_minutes: int = Field(default=20, ge=0, le=1440)
    late_data_lookback_hours: int = Field(default=6, ge=0, le=168)
    catchup_hours: int = Field(default=72, ge=1, le=24 * 31)

    # The pricing file (README "Money"). A relative path is relative to the current directory. Empty:
    # no pricing file; usage, reconciliation and the usage report run, the cost assets say what to set.
    pricing_file: Path | None = DEFAULT_PRICING_FILE
    # An optional allow-list of deployments (comma-separated): LLM rows naming another are quarantined.
    # Empty: every deployment the source shows.
    deployments: str = ""

    # The FOCUS export's version (README "FOCUS"): 1.3 (split-cost allocation per origin charge) or 1.2.
    focus_version: Literal["1.3", "1.2"] = "1.3"
    # FinOps hubs copy (README "FinOps hubs"), off unless one target is set: the hub storage account's
    # blob URL (Entra ID), or its connection string (a secret: handed over as dg.EnvVar, only whether it
    # is set is held here), or a local folder standing in for the `ingestion` container. SCOPE_PATH is
    # the folder under Costs/yyyy/mm/ that holds this pipeline's data (one folder per scope).
    finops_hubs_blob_account_url: str | None = None
    finops_hubs_connection_string: SecretStr | None = None
    finops_hubs_dir: Path | None = None
    finops_hubs_scope_path: str = Field(
        default="azure-openai-chargeback", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
    )

    # Actual cost (README "Actual cost: the Cost Management export"), off unless one location is set: the
    # storage account's blob URL (Entra ID), or its connection string (a secret: handed over as dg.EnvVar),
    # or a local folder standing in for the container; the container and the export's root folder in it.
    cost_export_blob_account_url: str | None = None
    cost_export_connection_string: SecretStr | None = None
    cost_export_dir: Path | None = None
    cost_export_container: str = "msexports"
    cost_export_root_folder: str = ""
    # The estimate-vs-actual check warns above this share of a product's estimated day (0.10: 10 %).
    cost_variance_warn_share: Decimal = Field(default=Decimal("0.10"), ge=0)

    # PTU rightsizing (README "PTU utilisation and rightsizing"): the counts a PTU deployment can have are
    # PTU_MINIMUM, then steps of PTU_INCREMENT (Azure's Global and Data Zone provisioned: 15, then 5).
    ptu_minimum: int = Field(default=15, ge=1, le=100_000)
    ptu_increment: int = Field(default=5, ge=1, le=100_000)
    # The rightsizing check warns when another count would save more than this over a month's measured hours
    # (pricing currency).
    rightsizing_warn_saving: Decimal = Field(default=Decimal("100"), ge=0, le=Decimal(10**12))
    # A cut needs this many days measured in the month (a week: weekday peaks and quiet weekends both seen);
    # on fewer the advice is "keep", naming the cut the hours so far would suggest. 0: any measured hour.
    rightsizing_min_days_to_cut: int = Field(default=7, ge=0, le=31)

    # What DuckDB may hold in memory during an hourly run before it spills to a temporary folder (README
    # "Performance"): a size like 600MB or 2GiB.
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT

    # Budgets per product and month (README "Budgets and anomalies"); empty: no budgets. Alerts of budgets
    # and anomalies go to this Slack or Teams incoming webhook (a secret: handed to the resource as
    # dg.EnvVar, only whether it is set is held here), as `text` or a Teams `adaptive_card`.
    budgets_file: Path | None = None
    alert_webhook_url: SecretStr | None = None
    alert_webhook_format: Literal["text", "adaptive_card"] = "text"
    _budgets: Budgets | None = PrivateAttr(default=None)

    _pricing: Pricing | None = PrivateAttr(default=None)
    _source_resource: LogSourceResource | None = PrivateAttr(default=None)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in SOURCE_RESOURCES:
            raise ValueError(f"must be one of {', '.join(SOURCE_RESOURCES)}, got {value!r}")
        return value

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        return memory_limit_checked(value.strip())

    @field_validator("pricing_file", mode="before")
    @classmethod
    def _empty_means_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("pricing_file")
    @classmethod
    def _absolute_pricing_file(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        return path if path.is_absolute() else Path.cwd() / path

    @field_validator("finops_hubs_scope_path")
    @classmethod
    def _plain_scope_path(cls, value: str) -> str:
        if any(segment in (".", "..") for segment in value.split("/")):
            raise ValueError("must be a plain folder path (no '.' or '..' segments), e.g. contoso/apim-prod")
        return value

    @field_validator("blob_account_url", "finops_hubs_blob_account_url", "cost_export_blob_account_url")
    @classmethod
    def _https_account_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://127.", "http://localhost")):
            raise ValueError("must be an https:// account URL (http is allowed only on loopback)")
        return value or None

    @field_validator("blob_connection_string", "finops_hubs_connection_string")
    @classmethod
    def _parsable_connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        text = value.get_secret_value().strip() if value else ""
        if not text:
            return None
        try:  # parsed only, no request: a malformed string fails at load, not after the hourly run
            BlobServiceClient.from_connection_string(text)
        except ValueError:
            # The string holds the account key or SAS: the message never repeats it.
            raise ValueError(
                "is not an Azure Storage connection string (Key=Value pairs separated by ';' with "
                "AccountName and AccountKey, or BlobEndpoint and SharedAccessSignature); the value is not shown"
            ) from None
        return SecretStr(text)

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.lake_on_blob and not (self.blob_account_url or self.blob_connection_string_set):
            raise ValueError(
                "CHARGEBACK_LAKE_ON_BLOB=true needs CHARGEBACK_BLOB_ACCOUNT_URL or CHARGEBACK_BLOB_CONNECTION_STRING"
            )
        if self.catchup_hours < self.late_data_lookback_hours:
            raise ValueError("CHARGEBACK_CATCHUP_HOURS must be at least CHARGEBACK_LATE_DATA_LOOKBACK_HOURS")
        return self

    @field_validator("budgets_file", mode="before")
    @classmethod
    def _empty_budgets_means_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("budgets_file")
    @classmethod
    def _absolute_budgets_file(cls, path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else Path.cwd() / path

    @field_validator("alert_webhook_url")
    @classmethod
    def _https_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value().strip() if value else ""
        loopback = url.startswith(("http://127.", "http://localhost:", "http://localhost/", "http://[::1]"))
        if url and not (url.startswith("https://") or loopback):
            # The URL carries the webhook's token: the message never repeats it.
            raise ValueError("must be an https:// URL (http is allowed only on loopback); the value is not shown")
        return SecretStr(url) if url else None

    @model_validator(mode="after")
    def _load_pricing(self) -> "Settings":
        # Validated here, once, so a bad pricing file fails the code location at load, not a run later.
        if self.pricing_file is None:
            return self
        try:
            self._pricing = load_pricing(self.pricing_file)
        except PricingError as error:
            raise ValueError(f"{PRICING_FILE_ENV}={self.pricing_file}: {error}") from None
        return self

    @model_validator(mode="after")
    def _load_budgets(self) -> "Settings":
        # Validated at load like the pricing file; products are checked against the published chargebacks
        # by the budget_status asset (no product list exists before the data).
        if self.budgets_file is not None:
            try:
                self._budgets = load_budgets(self.budgets_file)
            except BudgetsError as error:
                raise ValueError(f"{BUDGETS_FILE_ENV}={self.budgets_file}: {error}") from None
            currency = self._pricing.currency if self._pricing else None
            if self._budgets.currency and currency and self._budgets.currency != currency:
                raise ValueError(
                    f"{BUDGETS_FILE_ENV}={self.budgets_file}: budgets.currency {self._budgets.currency} differs "
                    f"from the pricing file's currency {currency} ({PRICING_FILE_ENV})"
                )
        return self

    @property
    def alert_webhook_url_set(self) -> bool:
        return self.alert_webhook_url is not None

    @property
    def pricing(self) -> Pricing | None:
        """The validated pricing file, or None when none is configured."""
        return self._pricing

    @property
    def source_resource(self) -> LogSourceResource:
        """The chosen source's resource, configured from its CHARGEBACK_<FIELD> variables."""
        assert self._source_resource is not None, "build Settings with load_settings()"
        return self._source_resource

    @property
    def blob_connection_string_set(self) -> bool:
        return self.blob_connection_string is not None and bool(self.blob_connection_string.get_secret_value())

    @property
    def rollup_horizon_days(self) -> int:
        """How far back the rollup sensors look for changed days: the catch-up window and two days."""
        return self.catchup_hours // 24 + 2

    @property
    def deployment_list(self) -> list[str]:
        return [d.strip() for d in self.deployments.split(",") if d.strip()]

    @property
    def quality(self) -> QualityPolicy:
        return QualityPolicy(**self.thresholds())


class _SourceEnvironment(BaseSettings):
    # No JSON decoding: a list setting is comma-separated in the environment (split below).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, enable_decoding=False, env_ignore_empty=True
    )


def _split_commas(value):
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def _source_environment(resource: type[LogSourceResource]) -> type[BaseSettings]:
    """A settings class with the resource's fields (their types, defaults and bounds), read from the
    environment. Mapping fields are set in code only (fault drills), never from the environment."""
    fields = {
        name: (info.annotation, info)
        for name, info in resource.model_fields.items()
        if get_origin(info.annotation) is not dict
    }
    lists = [name for name, (annotation, _) in fields.items() if get_origin(annotation) is list]
    validators = {"split_commas": field_validator(*lists, mode="before")(_split_commas)} if lists else {}
    return create_model(
        f"{resource.__name__}Environment", __base__=_SourceEnvironment, __validators__=validators, **fields
    )


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            message = f"{ENV_PREFIX}{'_'.join(str(p) for p in item['loc']).upper()}: {message}"
        problems.append(message)  # cross-setting problems name their variables themselves
    return problems


def load_settings(**overrides) -> Settings:
    """Settings from the environment (plus explicit overrides of the general ones), with errors that name
    the variable."""
    if PRICING_FILE_ENV in os.environ and not os.environ[PRICING_FILE_ENV].strip():
        overrides = {"pricing_file": None, **overrides}  # documented: set and empty means no pricing file
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SettingsError("invalid chargeback configuration: " + "; ".join(_problems(error))) from None
    resource = SOURCE_RESOURCES[settings.source]
    try:
        values = _source_environment(resource)().model_dump(exclude_unset=True)
        settings._source_resource = resource(**values)
    except ValidationError as error:
        problems = "; ".join(_problems(error))
        raise SettingsError(
            f"invalid chargeback configuration (CHARGEBACK_SOURCE={settings.source}): {problems}"
        ) from None
    warn_unknown_variables()
    return settings


def known_variables() -> set[str]:
    """Every CHARGEBACK_* variable the pipeline reads: the general settings and every source's."""
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for resource in SOURCE_RESOURCES.values():
        names |= {ENV_PREFIX + name.upper() for name in resource.model_fields}
    return names | OTHER_VARIABLES


def warn_unknown_variables() -> list[str]:
    """Warn about each CHARGEBACK_* variable nothing reads (a misspelt one is otherwise silently ignored),
    with the closest known name; returns the warnings."""
    known = known_variables()
    warnings = []
    for name in sorted(os.environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            closest = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {closest[0]}?" if closest else ""
            warnings.append(f"{name} is not a chargeback setting and is ignored{hint}")
            LOGGER.warning(warnings[-1])
    return warnings


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    return load_settings()

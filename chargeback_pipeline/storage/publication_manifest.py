"""The publication manifest: what was published for a day (or a month), written last with each publication.

`daily/usage_date=YYYY-MM-DD/_publication.json` and `monthly/month=YYYY-MM/_publication.json` hold, per
output (`product_usage`, `chargeback`, `focus`, `finops_hubs`, `cost_anomalies`, `budget_status`;
`statement`, `ptu_rightsizing`, ...), its row count, its products, its total, and the SHA-256 of every
file published, plus every override that let a smaller output through (kept across publications: the
day's audit trail). Nothing run-specific otherwise: the same outputs give the same bytes, whichever run
(single or ranged) published them. The next publication is judged against this record, not against the files, which can
go missing or be cut short; a file whose bytes no longer match its digest is reported, never trusted.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

from chargeback_pipeline.storage.object_store import ObjectStore

MANIFEST_NAME = "_publication.json"
FORMAT_VERSION = 1


def day_manifest_key(day: date) -> str:
    return f"daily/usage_date={day.isoformat()}/{MANIFEST_NAME}"


def month_manifest_key(month: date) -> str:
    return f"monthly/month={month:%Y-%m}/{MANIFEST_NAME}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Manifest:
    period: str  # the day (YYYY-MM-DD) or month (YYYY-MM)
    outputs: dict[str, dict] = field(default_factory=dict)  # name -> {rows, products, total, files}
    overrides: list[dict] = field(default_factory=list)  # each with the run that published by override

    def to_bytes(self) -> bytes:
        record = {
            "format_version": FORMAT_VERSION,
            "period": self.period,
            "outputs": {name: self.outputs[name] for name in sorted(self.outputs)},
            "overrides": self.overrides,
        }
        return (json.dumps(record, indent=2, sort_keys=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Manifest":
        try:
            record = json.loads(data)
            return cls(record["period"], dict(record["outputs"]), list(record.get("overrides", [])))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{where} is not a publication manifest ({type(error).__name__}: {error})") from None

    def files(self) -> dict[str, str]:
        """Every published file's key and digest."""
        return {key: sha for output in self.outputs.values() for key, sha in output.get("files", {}).items()}


def read_manifest(store: ObjectStore, key: str) -> Manifest | None:
    """The manifest at `key`, None when nothing was published there; a damaged one is an error naming it
    (it is the evidence the next publication is judged against)."""
    if not store.exists(key):
        return None
    return Manifest.from_bytes(store.read_bytes(key), store.url(key))

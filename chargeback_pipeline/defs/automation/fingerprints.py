"""A content hash on each hourly partition's materialization, so "did this re-pull change anything?" has an answer.

Hourly assets re-materialize the last hours on every run (late data). The daily rollup sensor compares
these hashes, not materialization times, to decide whether a day must be rolled up again: a re-pull that
wrote the same bytes starts no run. In a ranged run each hour's event gets its own hash, beside the
hour's own numbers (`metadata.record_partition`); the run's totals go to the run's log.
"""

import hashlib
from collections.abc import Mapping
from datetime import datetime

import dagster as dg

from chargeback_pipeline.defs.metadata import record_partition
from chargeback_pipeline.defs.partitions import hour_partition_key

CONTENT_HASH_METADATA = "chargeback/content_hash"


def content_hash(*digests: str) -> str:
    """One hash over the SHA-256 digests of the objects written for an hour (`Lake.write` returns them)."""
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def record_hour_content(
    context: dg.AssetExecutionContext,
    hour: datetime,
    *digests: str,
    asset_key: dg.AssetKey | None = None,
    metadata: Mapping[str, object] | None = None,
) -> None:
    """Put the hash of what was written for `hour`, and the hour's own `metadata` (its row count...),
    on that hour's materialization event only (empty values left out)."""
    record_partition(
        context,
        hour_partition_key(hour),
        {CONTENT_HASH_METADATA: content_hash(*digests), **(metadata or {})},
        asset_key=asset_key,
    )

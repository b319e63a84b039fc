"""A content hash on each hourly partition's materialization, so "did this re-pull change anything?" has an answer.

Hourly assets re-materialize the last hours on every run (late data). The daily rollup sensor compares
these hashes, not materialization times, to decide whether a day must be rolled up again: a re-pull that
wrote the same bytes starts no run. In a ranged run each hour's event gets its own hash.
"""

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

import dagster as dg

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
    on that hour's materialization event only."""
    context.add_asset_metadata(
        {CONTENT_HASH_METADATA: content_hash(*digests), **(metadata or {})},
        asset_key=asset_key,
        partition_key=hour_partition_key(hour),
    )


def record_run_summary(
    context: dg.AssetExecutionContext,
    hours: Sequence[datetime],
    metadata: Mapping[str, object],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Metadata about the whole ranged run (totals, schema, previews), on its last hour's event only.

    Dagster copies a MaterializeResult's metadata onto every partition's event of a ranged run (168
    copies in a week's run, each written twice to the event log): the run's totals then read as each
    hour's, and the event log pays for every copy. The last hour's event is the asset's latest
    materialization, the one the UI shows."""
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=hour_partition_key(hours[-1]))

"""Where landed and intermediate tables live: one Parquet object per dataset and partition.

Keys are stable and human-readable, e.g. `raw/gateway_logs/hour=2026-11-26T13/rows.parquet`, so a
partition's data can be found (and replaced whole on re-run) without any catalogue.
"""

import hashlib
import io
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.object_store import LocalObjectStore, ObjectStore


class MissingPartitionError(RuntimeError):
    """An upstream partition this step reads has not been materialized."""


def hour_key(dataset: str, hour: datetime, part: str = "rows") -> str:
    return f"{dataset}/hour={hour:%Y-%m-%dT%H}/{part}.parquet"


def day_key(dataset: str, day: date, part: str = "rows") -> str:
    return f"{dataset}/usage_date={day.isoformat()}/{part}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    # Same table in, same bytes out: no write timestamps, fixed compression and row groups.
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=256_000)
    return sink.getvalue()


class Lake:
    def __init__(self, store: ObjectStore):
        self.store = store

    def write(self, key: str, table: pa.Table) -> str:
        """Replace the partition's object (a no-op when it already holds exactly these bytes).

        Returns the SHA-256 of the stored bytes: the content hash downstream sensors compare.
        """
        data = parquet_bytes(table)
        self.store.write_bytes(key, data)
        return hashlib.sha256(data).hexdigest()

    def read(self, key: str, schema: pa.Schema | None = None) -> pa.Table:
        if not self.store.exists(key):
            raise MissingPartitionError(
                f"{self.store.url(key)} does not exist: materialize the upstream partition first"
            )
        if isinstance(self.store, LocalObjectStore):
            table = pq.read_table(Path(self.store.url(key)), schema=schema)
        else:
            table = pq.read_table(io.BytesIO(self.store.read_bytes(key)), schema=schema)
        return table

    def read_many(self, keys: list[str], schema: pa.Schema) -> pa.Table:
        tables = [self.read(key, schema) for key in keys]
        return pa.concat_tables(tables) if tables else schema.empty_table()

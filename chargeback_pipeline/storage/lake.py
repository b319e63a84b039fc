"""Where landed and intermediate tables live: one Parquet object per dataset and partition.

Keys (`keys.py`) are stable and human-readable, so a partition's data can be found (and replaced whole
on re-run) without any catalogue.
"""

import hashlib
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chargeback_pipeline.storage.object_store import LocalObjectStore, ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.sql import ParquetFiles, Relation

# Dictionary encoding pays off for repetitive columns (products, models, flags) and is wasted on columns
# of mostly distinct values (ids, timestamps): the writer builds a dictionary, finds it too large and
# falls back to plain encoding anyway. Judged on the first rows, so the same table gives the same bytes.
_DICTIONARY_SAMPLE_ROWS = 4096
_DICTIONARY_MAX_DISTINCT_SHARE = 0.5


class MissingPartitionError(RuntimeError):
    """An upstream partition this step reads has not been materialized."""


def parquet_bytes(table: pa.Table) -> bytes:
    # Same table in, same bytes out: no write timestamps, fixed compression and row groups.
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=256_000)
    return sink.getvalue()


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: those whose first rows repeat values."""
    sample = table.slice(0, _DICTIONARY_SAMPLE_ROWS)
    if sample.num_rows == 0:
        return table.column_names
    limit = _DICTIONARY_MAX_DISTINCT_SHARE * sample.num_rows
    return [
        name
        for name, column in zip(sample.column_names, sample.columns, strict=True)
        # nested columns (the PTU utilisation's per-minute lists) have no distinct count: left plain
        if not pa.types.is_nested(column.type) and pc.count_distinct(column, mode="all").as_py() <= limit
    ]


def lake_parquet_bytes(table: pa.Table) -> bytes:
    """The lake's Parquet: deterministic like `parquet_bytes`, without dictionaries on columns of distinct
    values (a third faster to write for the hourly partitions of large tenants, and smaller)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=256_000, use_dictionary=dictionary_columns(table))
    return sink.getvalue()


@dataclass
class PendingObject:
    """A partition's object being written to a local file (by DuckDB's own Parquet writer, say); stored
    when the `Lake.writing` block ends, which sets `digest`."""

    path: Path
    digest: str = ""

    def schema(self) -> pa.Schema:
        return pq.read_schema(self.path)


class Lake:
    def __init__(self, store: ObjectStore):
        self.store = store

    def write(self, key: str, table: pa.Table) -> str:
        """Replace the partition's object (a no-op when it already holds exactly these bytes).

        Returns the SHA-256 of the stored bytes: the content hash downstream sensors compare.
        """
        data = lake_parquet_bytes(table)
        self.store.write_bytes(key, data)
        return hashlib.sha256(data).hexdigest()

    @contextmanager
    def writing(self, key: str) -> Iterator[PendingObject]:
        """Write the partition's object to a local temporary file, then store it (replacing it whole, as
        `write` does) when the block ends without error; nothing is stored if it raises."""
        with tempfile.TemporaryDirectory(prefix="lake-") as directory:
            pending = PendingObject(Path(directory) / "object.parquet")
            yield pending
            data = pending.path.read_bytes()
            self.store.write_bytes(key, data)
            pending.digest = hashlib.sha256(data).hexdigest()

    def local_path(self, key: str) -> Path | None:
        """The object's file when the lake is a local folder and the object exists, else None."""
        if isinstance(self.store, LocalObjectStore) and self.store.exists(key):
            return Path(self.store.url(key))
        return None

    def read(self, key: str, schema: pa.Schema | None = None) -> pa.Table:
        if not self.store.exists(key):
            raise MissingPartitionError(
                f"{self.store.url(key)} does not exist: materialize the upstream partition first"
            )
        if isinstance(self.store, LocalObjectStore):
            table = pq.read_table(Path(self.store.url(key)), schema=schema)
        else:
            table = read_parquet_bytes(self.store.read_bytes(key), schema=schema)
        return table

    def relation(self, keys: str | list[str], schema: pa.Schema | None = None) -> Relation:
        """Partitions as one relation for the SQL models. Local objects are read by DuckDB itself: only the
        columns and row groups a query needs, in parallel, never all in Python memory. Objects in Blob
        Storage are downloaded and read as Arrow (`schema` then applies)."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        if isinstance(self.store, LocalObjectStore) and keys:
            for key in keys:
                if not self.store.exists(key):
                    raise MissingPartitionError(
                        f"{self.store.url(key)} does not exist: materialize the upstream partition first"
                    )
            return ParquetFiles(tuple(self.store.url(key) for key in keys))
        if schema is not None:
            return self.read_many(keys, schema)
        if not keys:
            raise ValueError("a relation of no partitions needs a schema")
        return pa.concat_tables([self.read(key) for key in keys])

    def read_many(self, keys: list[str], schema: pa.Schema) -> pa.Table:
        tables = [self.read(key, schema) for key in keys]
        return pa.concat_tables(tables) if tables else schema.empty_table()

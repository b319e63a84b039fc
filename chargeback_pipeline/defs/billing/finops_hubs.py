"""The FinOps hubs copy of the FOCUS export: the layout a FinOps hub ingests custom FOCUS data from.

FinOps hubs (Microsoft FinOps toolkit, checked against hub v14) read Parquet files from their storage
account's `ingestion` container at `Costs/{yyyy}/{mm}/{scope-path}/{ingestion-id}__{name}.parquet`, and
start the Data Explorer ingestion of a folder when a `manifest.json` appears in it (empty: it is not
parsed). Each ingestion replaces what the hub holds for that folder, so every day of the month is a
file of the folder, all with one ingestion id (the month): re-exporting a day replaces that file, and the
manifest, written after the day's file, re-ingests the whole month. The hub's cost table maps FOCUS 1.2
column names, so the copy is the 1.2 rendering, whatever version the export itself writes.
"""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.report_files import report_files


def publish_day(hub: ObjectStore, day: date, focus_1_2: pa.Table, scope_path: str) -> tuple[bool, Decimal]:
    """Write (replace) the day's file in its month folder; return whether its bytes changed and its billed
    cost, read back: of the rows that bill a product (a reallocation's reversal rows, which name none, sum
    with its shares to zero)."""
    key = keys.finops_hubs_file_key(day, scope_path)
    changed = hub.write_bytes(key, report_files(focus_1_2)["parquet"])
    read_back = read_parquet_bytes(hub.read_bytes(key))
    products = read_back["x_ApiManagementProductId"].to_pylist()
    billed = read_back["BilledCost"].to_pylist()
    return changed, sum((cost for product, cost in zip(products, billed, strict=True) if product), Decimal(0))


def signal_month(hub: ObjectStore, month: date, scope_path: str) -> str:
    """The month folder's empty manifest.json, written after its files: the hub then ingests the folder.
    Deleted first, so that it is created anew (the hub reacts to a created blob, and an unchanged object
    is not rewritten)."""
    key = keys.finops_hubs_manifest_key(month, scope_path)
    if hub.exists(key):
        hub.delete(key)
    hub.write_bytes(key, b"")
    return hub.url(key)

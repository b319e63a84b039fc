"""Reading one export run's blobs (CSV, gzip CSV or Parquet) down to the rows of the named resources.

A blob is checked against its manifest entry while it is read: present, `byteCount` bytes, and
`dataRowCount` rows. Any difference makes the run incomplete (`IncompleteRunError`), never half-read.
Money and quantities are read as exact decimals (`Decimal` of the text in a CSV; Parquet decimals as
they are), never through binary floats.
"""

import codecs
import csv
import gzip
import io
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from chargeback_pipeline.sources.cost_export.columns import (
    COST_COLUMNS,
    DECIMAL_COLUMNS,
    EXPORT_CHARGE_SCHEMA,
    EXPORT_COLUMNS,
    EXPORT_DECIMAL,
    TIMESTAMP_COLUMNS,
)
from chargeback_pipeline.sources.cost_export.manifest import CostExportError, ExportBlob, ExportRun
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes

UNUSED_STATUS = "Unused"  # FOCUS CommitmentDiscountStatus of a commitment's idle part
_DECIMAL_PLACES = Decimal(1).scaleb(-EXPORT_DECIMAL.scale)


class IncompleteRunError(CostExportError):
    """A blob the manifest lists is missing, or differs from what the manifest says."""


def read_run(store: ObjectStore, run: ExportRun, resource_ids: set[str]) -> pa.Table:
    """The run's rows whose ResourceId is one of `resource_ids` (compared case-insensitively), and the
    unused part of every commitment discount (a PTU reservation) those rows use: rows with
    CommitmentDiscountStatus `Unused` of the same CommitmentDiscountId (they name the reservation as their
    resource). In EXPORT_CHARGE_SCHEMA. IncompleteRunError when any listed blob is missing or not as listed."""
    wanted = pa.array(sorted(resource_id.lower() for resource_id in resource_ids), pa.string())
    names = EXPORT_COLUMNS[run.schema_version]
    parts, unused = [], []
    for blob in run.blobs:
        table = _read_blob(store, run, blob, list(names.values()))
        ours = pc.fill_null(pc.is_in(pc.utf8_lower(table[names["resource_id"]]), value_set=wanted), False)
        status = pc.utf8_lower(pc.fill_null(table[names["commitment_discount_status"]], ""))
        idle = pc.and_(pc.invert(ours), pc.equal(status, UNUSED_STATUS.lower()))
        parts += [_typed(row, names, run, blob) for row in table.filter(ours).to_pylist()]
        unused += [_typed(row, names, run, blob) for row in table.filter(idle).to_pylist()]
    commitments = {row["commitment_discount_id"].lower() for row in parts if row["commitment_discount_id"]}
    parts += [row for row in unused if (row["commitment_discount_id"] or "").lower() in commitments]
    return pa.Table.from_pylist(parts, schema=EXPORT_CHARGE_SCHEMA)


def _read_blob(store: ObjectStore, run: ExportRun, blob: ExportBlob, columns: list[str]) -> pa.Table:
    if not store.exists(blob.name):
        raise IncompleteRunError(f"blob {blob.name} listed in its manifest is missing")
    data = store.read_bytes(blob.name)
    if blob.byte_count is not None and len(data) != blob.byte_count:
        raise IncompleteRunError(f"blob {blob.name} has {len(data)} bytes, its manifest says {blob.byte_count}")
    table = _decode(blob.name, data, columns, run)
    if blob.row_count is not None and table.num_rows != blob.row_count:
        raise IncompleteRunError(f"blob {blob.name} has {table.num_rows} rows, its manifest says {blob.row_count}")
    return table


def _decode(name: str, data: bytes, columns: list[str], run: ExportRun) -> pa.Table:
    lowered = name.lower()
    try:
        if lowered.endswith(".parquet"):
            available = set(pq.read_schema(io.BytesIO(data)).names)
            _require(columns, available, name, run)
            return read_parquet_bytes(data).select(columns)
        if lowered.endswith(".gz"):
            data = gzip.decompress(data)
        data = data.removeprefix(codecs.BOM_UTF8)
        header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]), [])
        _require(columns, set(header), name, run)
        return pa_csv.read_csv(
            io.BytesIO(data),
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, pa.string()),
                # Only an empty cell is null: Arrow's default null spellings (NaN, N/A, NULL, #N/A...) in a
                # cost column are bad input to refuse (`_decimal`), never a charge read as nothing.
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as error:
        raise IncompleteRunError(f"blob {name} cannot be read as CSV or Parquet: {error}") from None


def _require(columns: list[str], available: set[str], name: str, run: ExportRun) -> None:
    missing = [column for column in columns if column not in available]
    if missing:
        raise CostExportError(
            f"cost export blob {name} of {run.describe()} lacks FocusCost {run.schema_version} column(s) "
            f"{', '.join(missing)}: is its dataset version really {run.schema_version}?"
        )


def _typed(row: dict, names: dict[str, str], run: ExportRun, blob: ExportBlob) -> dict:
    typed = {}
    for ours, theirs in names.items():
        value = row[theirs]
        if (value is None or value == "") and ours in COST_COLUMNS:
            # FOCUS: every cost column MUST NOT be null (columns/billedcost.md, effectivecost.md, listcost.md,
            # contractedcost.md). Summed as 0 it would lose the charge and still balance the checks.
            raise CostExportError(
                f"cost export blob {blob.name} of {run.describe()}: {theirs} is empty on a row of "
                f"{row[names['resource_id']]} ({row[names['meter_name']]}, {row[names['charge_period_start']]}); "
                "FOCUS requires it, and a charge is never read as zero"
            )
        if value is None or value == "":
            typed[ours] = None
        elif ours in DECIMAL_COLUMNS:
            typed[ours] = _decimal(value, theirs, blob)
        elif ours in TIMESTAMP_COLUMNS:
            typed[ours] = _timestamp(value)
        else:
            typed[ours] = str(value)
    return {**typed, "export_run_id": run.run_id, "export_schema_version": run.schema_version, "export_blob": blob.name}


def _decimal(value, column: str, blob: ExportBlob) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))  # "1.2E-05" as well
    except InvalidOperation:
        raise CostExportError(f"cost export blob {blob.name}: {column} {value!r} is not a number") from None
    if not number.is_finite():  # NaN, Infinity: text or a Parquet float
        raise CostExportError(f"cost export blob {blob.name}: {column} {value!r} is not a number")
    # The column's precision (decimal128(38, 18)), not the default context's 28 digits: 12,000,000,000
    # tokens at 18 places is 29 digits and a valid quantity.
    with localcontext(prec=EXPORT_DECIMAL.precision):
        try:
            return number.quantize(_DECIMAL_PLACES)
        except InvalidOperation:
            raise CostExportError(
                f"cost export blob {blob.name}: {column} {value!r} does not fit decimal({EXPORT_DECIMAL.precision}, "
                f"{EXPORT_DECIMAL.scale})"
            ) from None


def _timestamp(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

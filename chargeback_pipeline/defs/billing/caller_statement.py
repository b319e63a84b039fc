"""The month's statement per product and then per caller (core/callers.py), beside the statement:
`monthly/month=YYYY-MM/statement_by_caller.csv` and `.parquet`, only for months charged back with callers.

Summed from the same published daily files as the statement, read once for both (`PublishedMonth`: from
the reports and vouched for by each day's manifest, never from the lake), so each product's callers add up
to its statement row exactly; a month without callers has no such file (one left from before is removed).
"""

from datetime import date

import pyarrow as pa

from chargeback_pipeline.core.billing import statements
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.report_files import report_files

EXTENSIONS = ("csv", "parquet")


def publish_caller_statement(
    lines: pa.Table | None, target: ObjectStore, month: date, minor_unit: int | None
) -> tuple[str | None, pa.Table | None]:
    """Stage the month's per-caller statement in `target`, from the published days' lines with their callers
    (`PublishedMonth.caller_lines`, None when no day has callers): its CSV's URL and its rows (for the HTML
    statement's pages), or (None, None) when the month has no callers."""
    if lines is None:
        for extension in EXTENSIONS:
            target.delete(keys.statement_by_caller_key(month, extension))
        return None, None
    by_caller = statements.statement_callers(lines, month)
    for extension, data in report_files(by_caller, minor_unit).items():
        target.write_bytes(keys.statement_by_caller_key(month, extension), data)
    return target.url(keys.statement_by_caller_key(month, "csv")), by_caller

"""`chargeback report DAY|MONTH`: the per-product table of a published day (its chargeback) or month (its
statement), read from the reports store the settings point at (CHARGEBACK_OUTPUT_DIR or Blob).

Nothing is recomputed beyond summing a day's published chargeback lines per product (the monthly
statement's own summing, `statements.monthly_statement`): the terminal shows what finance was sent.
A day priced with no pricing file has no chargeback: its usage report (tokens, no money) is shown.
"""

import io
import json
from calendar import monthrange
from datetime import date, timedelta
from decimal import Decimal

import click
import pyarrow as pa

from chargeback_pipeline.cli.configuration import configured_settings
from chargeback_pipeline.cli.days import DAY_WORDS, utc_today
from chargeback_pipeline.core.identifier_text import terminal_text

FORMATS = ("table", "csv", "json")
TEXT = ("product_id", "caller_id", "currency")
BY = ("product", "caller")  # --by caller: a row per product and caller (core/callers.py)
COUNTS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens")
MONEY = ("ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost")
HEADERS = {
    "product_id": "product",
    "caller_id": "caller",
    "currency": "currency",
    "calls": "calls",
    "prompt_tokens": "prompt tokens",
    "completion_tokens": "completion tokens",
    "total_tokens": "total tokens",
    "ptu_usage_cost": "PTU usage",
    "ptu_unused_cost": "unused PTU",
    "paygo_cost": "pay-as-you-go",
    "total_cost": "total",
    "days_covered": "days",
}


class ReportMissing(click.ClickException):
    """The report asked for is not published: one line naming what to run, exit 2 (like a usage error:
    the command was asked for something that is not there)."""

    exit_code = 2


class Period(click.ParamType):
    """A UTC day (YYYY-MM-DD, `today`, `yesterday`) or a month (YYYY-MM): ("day" | "month", its date)."""

    name = "DAY|MONTH"

    def convert(self, value, param, ctx) -> tuple[str, date]:
        if isinstance(value, tuple):
            return value
        today = utc_today()
        if value in DAY_WORDS:
            return "day", today + timedelta(days=DAY_WORDS[value])
        try:
            kind, when = (
                ("month", date.fromisoformat(f"{value}-01")) if len(value) == 7 else ("day", date.fromisoformat(value))
            )
        except ValueError:
            self.fail(f"{value!r} is not a day (YYYY-MM-DD, 'today', 'yesterday') or a month (YYYY-MM)", param, ctx)
        if when > today:
            self.fail(f"{value} is after today ({today}, UTC): nothing is published for it yet", param, ctx)
        return kind, when


def published_table(store, kind: str, period: date) -> tuple[str, str, pa.Table]:
    """(what it is, where it was read, its per-product rows) of the published day or month."""
    from chargeback_pipeline.core.billing.statements import monthly_statement
    from chargeback_pipeline.storage import keys

    def read(key: str) -> pa.Table:
        return read_published(store, key, f"{period:%Y-%m}" if kind == "month" else str(period))

    if kind == "month":
        key = keys.statement_key(period, "parquet")
        if not store.exists(key):
            # Only complete days are backfilled: the suggestion ends yesterday at the latest.
            last = min(date(period.year, period.month, monthrange(period.year, period.month)[1]), _yesterday())
            what = (
                f"run `chargeback backfill {period} {last}`"
                if last >= period
                else "no day of it has ended yet (the daily job states it once its first day is over)"
            )
            raise ReportMissing(f"no statement of {period:%Y-%m} at {store.url(key)}: {what}")
        return "statement", store.url(key), read(key)
    key, usage_key = keys.chargeback_key(period, "parquet"), keys.product_usage_report_key(period, "parquet")
    if store.exists(key):
        # The day's lines summed per product exactly as the month's statement sums them.
        return "chargeback", store.url(key), monthly_statement(read(key), period)
    if store.exists(usage_key):
        usage = read(usage_key)
        per_product = usage.group_by("product_id").aggregate([(c, "sum") for c in COUNTS])
        return "usage", store.url(usage_key), per_product.rename_columns(["product_id", *COUNTS])
    what = (
        f"run `chargeback backfill {period}`"
        if period <= _yesterday()
        else "it is today (UTC) and not over: its day is published once it ends"
    )
    raise ReportMissing(f"no chargeback of {period} at {store.url(key)}: {what}")


def published_caller_table(store, kind: str, period: date) -> tuple[str, str, pa.Table]:
    """(what it is, where it was read, its rows per product and caller) of the published day or month:
    the month's `statement_by_caller`, the day's chargeback (or usage) lines summed per product and caller."""
    from chargeback_pipeline.core.billing.statements import statement_callers
    from chargeback_pipeline.storage import keys

    label = f"{period:%Y-%m}" if kind == "month" else str(period)
    no_callers = (
        f"{label} was published without callers: name the caller's trace-record keys (CHARGEBACK_CALLER_TRACE_KEYS) "
        f"and run `chargeback backfill` for it again"
    )
    if kind == "month":
        key = keys.statement_by_caller_key(period, "parquet")
        if not store.exists(key):
            published_table(store, kind, period)  # says what to run when there is no statement at all
            raise ReportMissing(no_callers)
        return "statement by caller", store.url(key), read_published(store, key, label)
    what, source, _ = published_table(store, kind, period)  # says what to run when nothing is published
    key = (
        keys.chargeback_key(period, "parquet")
        if what == "chargeback"
        else keys.product_usage_report_key(period, "parquet")
    )
    table = read_published(store, key, label)
    if "caller_id" not in table.column_names:
        raise ReportMissing(no_callers)
    if what == "chargeback":
        return what, source, statement_callers(table, period)
    per_caller = table.group_by(["product_id", "caller_id"]).aggregate([(c, "sum") for c in COUNTS])
    return what, source, per_caller.rename_columns(["product_id", "caller_id", *COUNTS])


def read_published(store, key: str, period: str) -> pa.Table:
    """A published Parquet file, or one line (exit 1) saying it is damaged and what republishes it."""
    from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes

    try:
        return read_parquet_bytes(store.read_bytes(key))
    except pa.ArrowInvalid as error:  # truncated, or overwritten by something else
        raise click.ClickException(
            f"{store.url(key)} is not a readable Parquet file ({error}): "
            f"publish {period} again with `chargeback backfill`"
        ) from None


def _yesterday() -> date:
    return utc_today() - timedelta(days=1)


def product_rows(kind: str, table: pa.Table) -> tuple[list[str], list[dict], list[dict]]:
    """The columns shown, the rows (largest cost first) and a totals row per currency."""
    by_caller = "caller_id" in table.column_names
    columns = ["product_id", *(["caller_id"] if by_caller else []), *(["currency"] if kind != "usage" else []), *COUNTS]
    columns += [*MONEY] if kind != "usage" else []
    columns += ["days_covered"] if kind == "statement" else []
    rows = [{c: row[c] for c in columns} for row in table.to_pylist()]
    for row in rows:
        if by_caller and row["caller_id"] is None:
            row["caller_id"] = ""  # the chargeback's own lines (unattributed, unused capacity) have no caller
    rank = "total_cost" if kind != "usage" else "total_tokens"
    rows.sort(key=lambda r: (r.get("currency") or "", -r[rank], r["product_id"], r.get("caller_id") or ""))
    totals = []
    for currency in sorted({r.get("currency") for r in rows}, key=lambda c: c or ""):
        mine = [r for r in rows if r.get("currency") == currency]
        total = {
            c: sum((r[c] for r in mine), Decimal(0) if c in MONEY else 0) for c in (*COUNTS, *MONEY) if c in columns
        }
        caller = {"caller_id": ""} if by_caller else {}
        totals.append({"product_id": "TOTAL", **caller, **({"currency": currency} if kind != "usage" else {}), **total})
        if kind == "statement":
            totals[-1]["days_covered"] = max((r["days_covered"] for r in mine), default=0)
    return columns, rows, totals


def money_text(amount: Decimal, currency: str | None, separators: bool) -> str:
    """At the currency's minor unit (all digits where an amount has more, never rounded)."""
    from chargeback_pipeline.core.billing.pricing import ISO_4217_MINOR_UNITS

    minor_unit = ISO_4217_MINOR_UNITS.get(currency or "")
    shown = amount.quantize(Decimal(1).scaleb(-minor_unit)) if minor_unit is not None else amount.normalize()
    if shown != amount:
        shown = amount
    return f"{shown:,f}" if separators else f"{shown:f}"


def _cell(row: dict, column: str, separators: bool):
    value = row[column]
    if column in MONEY:
        return money_text(value, row.get("currency"), separators)
    if isinstance(value, int) and separators:
        return f"{value:,}"
    return value


def _shown(row: dict, column: str) -> str:
    cell = str(_cell(row, column, True))
    return terminal_text(cell) if column in TEXT else cell


def aligned(columns: list[str], rows: list[dict], totals: list[dict]) -> str:
    """Text left, figures right, a rule under the header and above the totals."""
    header = [HEADERS[c] for c in columns]
    # Names as a terminal shows them safely: no control or override character, bounded (identifier_text).
    body = [[_shown(r, c) for c in columns] for r in rows]
    foot = [[str(_cell(r, c, True)) for c in columns] for r in totals]
    widths = [max(len(line[i]) for line in [header, *body, *foot]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if column in TEXT else cell.rjust(width)
            for cell, width, column in zip(cells, widths, columns, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body), rule, *(line(r) for r in foot)])


def as_csv(columns: list[str], rows: list[dict]) -> str:
    """RFC 4180 like the published CSVs (text cells that would start a formula escaped, money at the minor
    unit, no thousands separators); no totals row, so a script can sum the rows."""
    import csv

    from chargeback_pipeline.storage.report_files import escape_formula

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([escape_formula(row[c]) if c in TEXT else _cell(row, c, False) for c in columns])
    return buffer.getvalue()


def as_json(kind: str, period: str, source: str, columns: list[str], rows: list[dict], totals: list[dict]) -> str:
    """Money as strings at the minor unit (exact, no binary float), counts as integers."""

    def plain(row: dict) -> dict:
        return {c: _cell(row, c, False) for c in columns if c in row}

    document = {
        "period": period,
        "report": kind,
        "source": source,
        "products": [plain(r) for r in rows],
        "totals": [plain(t) for t in totals],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


@click.command("report")
@click.argument("period", type=Period(), metavar="DAY|MONTH")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--by",
    "by",
    type=click.Choice(BY),
    default="product",
    show_default=True,
    help="caller: a row per product and caller",
)
def report_command(period: tuple[str, date], output: str, by: str) -> None:
    """Print the per-product table of a published DAY (YYYY-MM-DD, `yesterday`: its chargeback) or MONTH
    (YYYY-MM: its statement) from the reports the settings point at: aligned with a totals row, or
    `--format csv|json` for scripts. `--by caller`: per product and caller, where callers were published."""
    from chargeback_pipeline.definitions import build_resources

    settings = configured_settings()
    resources = build_resources(settings)
    store = resources["reports"].process_config_and_initialize().store()
    kind, when = period
    label = f"{when:%Y-%m}" if kind == "month" else str(when)
    what, source, table = (published_caller_table if by == "caller" else published_table)(store, kind, when)
    columns, rows, totals = product_rows(what, table)
    if output == "csv":
        click.echo(as_csv(columns, rows), nl=False)
    elif output == "json":
        click.echo(as_json(what, label, source, columns, rows, totals))
    else:
        title = {
            "statement": "monthly statement",
            "chargeback": "chargeback",
            "usage": "usage (no pricing: tokens only)",
            "statement by caller": "monthly statement",
        }
        per = "per product and caller" if by == "caller" else "per product"
        click.echo(f"{label} {title[what]} {per}, from {source}")
        click.echo(aligned(columns, rows, totals))
        from chargeback_pipeline.cli.report_capacity import capacity_lines, capacity_rows, day_capacity_rows

        if kind == "month":
            capacity = capacity_rows(store, when)
        elif what == "usage":  # a day published without pricing: no PTU cost to show
            capacity = []
        else:
            capacity = day_capacity_rows(resources["lake"].process_config_and_initialize(), resources["pricing"], when)
            if not capacity and resources["pricing"].path:  # priced, yet no hour measured: say so, not nothing
                lake = f"Blob prefix {settings.blob_lake_prefix!r}" if settings.lake_on_blob else settings.lake_dir
                click.echo(
                    f"\nPTU capacity: no measured hour of {when} in the lake at {lake} "
                    "(CHARGEBACK_LAKE_DIR; the day's `ptu_utilization` hours)"
                )
        for line in capacity_lines(capacity):
            click.echo(line)

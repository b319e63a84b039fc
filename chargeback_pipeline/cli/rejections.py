"""The source rows a backfill rejected, for the command's summary: each landing asset's count and reasons
(from the hours' materializations: `rejected_rows`, `rejected_reasons`), so a rejected metric value or
log row is never left to be found in the lake."""

from collections import Counter


def rejected_summary(results) -> list[str]:
    """One line per landing asset that rejected rows in the runs `results`, with its reasons and counts."""
    rows: Counter = Counter()
    reasons: dict[str, Counter] = {}
    hours: dict[str, set] = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            metadata = materialization.metadata
            count = metadata.get("rejected_rows")
            if count is None or not count.value:
                continue
            asset = materialization.asset_key.to_user_string()
            rows[asset] += count.value
            hours.setdefault(asset, set()).add(materialization.partition)
            by_reason = metadata.get("rejected_reasons")
            for reason, n in (by_reason.value if by_reason is not None else {}).items():
                reasons.setdefault(asset, Counter())[reason] += n
    lines = []
    for asset in sorted(rows):
        shown = "; ".join(f"{reason} ({n:,})" for reason, n in reasons.get(asset, Counter()).most_common(5))
        first, last = min(hours[asset]), max(hours[asset])
        span = first if first == last else f"{first}..{last}"
        lines.append(f"  {asset}: {rows[asset]:,} row(s) in {len(hours[asset])} hour(s) ({span}): {shown}")
    return lines

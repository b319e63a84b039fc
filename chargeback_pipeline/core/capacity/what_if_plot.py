"""The rightsizing what-if as a PNG: per PTU deployment, the month's cost at each candidate PTU count
(PTU cost and pay-as-you-go spill stacked), the current count and the cheapest one marked.

Pure: matplotlib's object API (no pyplot, no global state, no display), bytes out."""

import io
from itertools import pairwise

import pyarrow as pa


def what_if_png(what_if: pa.Table, month_label: str, currency: str) -> bytes:
    """PNG bytes of the what-if table (`monthly.WHAT_IF_SCHEMA`): one panel per deployment."""
    from matplotlib.figure import Figure  # about 30 MiB: imported by the monthly run that draws, not at import

    deployments: dict[str, list[dict]] = {}
    for row in what_if.to_pylist():
        deployments.setdefault(f"{row['backend_id']}/{row['deployment_name']}", []).append(row)
    figure = Figure(figsize=(9, 3.4 * max(len(deployments), 1)))
    axes = figure.subplots(max(len(deployments), 1), 1, squeeze=False)[:, 0]
    for axis, (label, rows) in zip(axes, deployments.items(), strict=False):
        counts = [r["ptu_count"] for r in rows]
        ptu = [float(r["ptu_cost"]) for r in rows]
        paygo = [float(r["paygo_cost"]) for r in rows]
        gaps = [b - a for a, b in pairwise(counts)]
        width = max(min(gaps) * 0.8, 0.8) if gaps else 1
        axis.bar(counts, ptu, width=width, label="PTU cost", color="#4878a8")
        axis.bar(counts, paygo, width=width, bottom=ptu, label="pay-as-you-go spill", color="#e8a33d")
        # The current count outlined, the cheapest one in green: the two bars the reader compares.
        for row in rows:
            total = float(row["total_cost"])
            if row["is_current"]:
                axis.bar([row["ptu_count"]], [total], width=width, fill=False, edgecolor="black", linewidth=1.5)
                axis.annotate("current", (row["ptu_count"], total), xytext=(0, 3), textcoords="offset points",
                              ha="center", fontsize=8)  # fmt: skip
            if row["is_best"]:
                axis.bar([row["ptu_count"]], [total], width=width, fill=False, edgecolor="#1a7f37", linewidth=2)
                axis.annotate(
                    f"cheapest: {total:,.2f}", (row["ptu_count"], total), xytext=(0, 14 if row["is_current"] else 3),
                    textcoords="offset points", ha="center", fontsize=8, color="#1a7f37", weight="bold",
                )  # fmt: skip
        axis.set_ylim(0, max((float(r["total_cost"]) for r in rows), default=1) * 1.25 or 1)
        axis.set_title(f"{label}: cost of {month_label} by PTU count")
        axis.set_xlabel("PTU count")
        axis.set_ylabel(currency)
        axis.legend(loc="upper left", fontsize=8)
    if not deployments:
        axes[0].text(0.5, 0.5, "no PTU deployment this month", ha="center", va="center")
    figure.tight_layout()
    buffer = io.BytesIO()
    # No software/date metadata: identical tables give identical bytes.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()

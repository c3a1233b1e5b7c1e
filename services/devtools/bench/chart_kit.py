"""What the benchmark's charts share: the colours, a figure on the Agg canvas, a line, number formats."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

OURS, BEFORE, LIMIT, PEER, TARGET = "#1f77b4", "#aec7e8", "#a6a6a6", "#ff7f0e", "#d62728"
COLOURS = {"ours": OURS, "before": BEFORE, "limit": LIMIT, "peer": PEER}
# One colour per process in both panels of the scale chart (the ledger is the ledger left and right).
SERIES = {
    "ledger": "#1f77b4",
    "ledger (ingest)": "#1f77b4",
    "projector": "#ff7f0e",
    "projector (ingest)": "#ff7f0e",
    "kafka": "#2ca02c",
    "postgresql": "#8c564b",
    "replay": "#9467bd",
    "rebuild": "#e377c2",
    "all processes": "black",
}


def figure(width: float, height: float, rows: int, cols: int, **grid: Any) -> Figure:
    """A figure on the Agg canvas (no display, no pyplot state), laid out without overlaps."""
    drawn = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(drawn)
    drawn.subplots(rows, cols, squeeze=False, gridspec_kw=grid or None)
    return drawn


def line(ax: Any, sizes: list[int], values: list[float | None], label: str, colour: str, style: str) -> None:
    """One series against the log's sizes, its missing points left out."""
    pairs = [(s, v) for s, v in zip(sizes, values, strict=True) if v is not None]
    if pairs:
        ax.plot(*zip(*pairs, strict=True), marker="o", markersize=3, linestyle=style, color=colour, label=label)


def number(value: Any) -> float | None:
    """A measured number, or None for anything else (a missing or non-numeric field of an older run)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def size_label(n: int) -> str:
    """10000 -> 10k, 10000000 -> 10M (the scale curve's ticks)."""
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale:,}{unit}"
    return f"{n:,}"

"""The benchmark's charts as SVG next to results.json: throughput, the scale curve, the latency distribution."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from services.devtools.bench.chart_curves import latency, scale
from services.devtools.bench.chart_throughput import throughput

# A rerun on the same results gives byte-identical files, so bench-results/ diffs cleanly: the SVG
# ids hash with a fixed salt, no creation date is written, and text stays text (not glyph paths,
# which also keeps the files small and the labels searchable).
_RC: dict[str, Any] = {
    "svg.hashsalt": "vote-ledger-bench",
    "svg.fonttype": "none",
    "font.family": "sans-serif",  # the SVG names the whole list, so a browser without DejaVu picks a sans
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA = {"Date": None}

CHARTS_START = "<!-- bench-charts:start -->"
CHARTS_END = "<!-- bench-charts:end -->"


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw each chart the results hold data for as an SVG in out_dir; return the files written.

    A chart without data (e.g. no latency part in this run) is not written, so an earlier file stays.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(_RC):
        for name, draw in CHARTS.items():
            figure = draw(results)
            if figure is None:
                continue
            path = out_dir / name
            figure.savefig(path, format="svg", metadata=_METADATA)
            written.append(path)
    return written


def embed(readme: Path, out_dir: Path) -> bool:
    """Point the README's chart block (between its markers) at the charts in out_dir; False without markers."""
    text = readme.read_text()
    if CHARTS_START not in text or CHARTS_END not in text:
        return False
    relative = Path(os.path.relpath(out_dir, readme.parent))
    images = [f"![{CAPTIONS[name]}]({(relative / name).as_posix()})" for name in CHARTS if (out_dir / name).exists()]
    block = f"{CHARTS_START}\n" + "\n\n".join(images) + ("\n" if images else "") + CHARTS_END
    pattern = re.compile(re.escape(CHARTS_START) + ".*?" + re.escape(CHARTS_END), re.S)
    readme.write_text(pattern.sub(lambda _: block, text, count=1))
    return True


CHARTS: dict[str, Callable[[dict[str, Any]], Figure | None]] = {
    "throughput.svg": throughput,
    "scale.svg": scale,
    "latency.svg": latency,
}
CAPTIONS = {
    "throughput.svg": "Throughput: ours against the limits of its parts and the peers, measured in the same run",
    "scale.svg": "Scale: CPU per submission and peak memory against the log's size",
    "latency.svg": "Latency: publish to visible in the tally, by percentile",
}

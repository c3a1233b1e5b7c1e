"""The benchmark's charts as SVG next to results.json: throughput, the scale curve, the latency distribution."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from services.devtools.bench import report

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

OURS, BEFORE, LIMIT, PEER, TARGET = "#1f77b4", "#aec7e8", "#a6a6a6", "#ff7f0e", "#d62728"
_COLOURS = {"ours": OURS, "before": BEFORE, "limit": LIMIT, "peer": PEER}
# One colour per process in both panels of the scale chart (the ledger is the ledger left and right).
_SERIES = {
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

CHARTS_START = "<!-- bench-charts:start -->"
CHARTS_END = "<!-- bench-charts:end -->"


@dataclass(frozen=True)
class Bar:
    """One bar of the throughput chart: ours, a limit of our parts, or a peer."""

    label: str
    value: float
    kind: str  # "ours", "before" (ours as it was, measured in the same run), "limit" or "peer"
    note: str = ""  # after the value, e.g. "0.14× bare COPY"
    target: float | None = None  # where issue 15's target puts this bar


@dataclass(frozen=True)
class Panel:
    """A group of bars measured in the same unit."""

    title: str
    bars: list[Bar]


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


def throughput_panels(r: dict[str, Any]) -> list[Panel]:
    """Ours next to the limits measured in the same run and the peers, with the targets of issue 15."""
    panels = []
    limits = r.get("limits", {})
    if "ingest" in r:
        ingest = r["ingest"]["submissions_per_s"]
        copy = limits.get("copy", {})
        bare = copy.get("unindexed_rows_per_s")
        signed = r.get("workload", {}).get("signed")  # runs before channel signatures were unsigned
        bars = [
            Bar(
                "ours: signed, projector running" if signed else "ours: projector running",
                ingest,
                "ours",
                f"{ingest / bare:.2f}× bare COPY, target ≥ {report.INGEST_COPY_TARGET:.2f}×" if bare else "",
                report.INGEST_COPY_TARGET * bare if bare else None,
            )
        ]
        if "ingest_unsigned" in r:
            unsigned = r["ingest_unsigned"]["submissions_per_s"]
            bars.append(
                Bar("ours: the same unsigned", unsigned, "ours", f"{unsigned / bare:.2f}× bare COPY" if bare else "")
            )
        if bare:
            bars.append(Bar("raw COPY, bare table", bare, "limit"))
        if copy.get("indexed_rows_per_s"):
            bars.append(Bar("raw COPY, our indexed log", copy["indexed_rows_per_s"], "limit"))
        if "kafka" in limits:
            bars.append(Bar("raw aiokafka produce (acks=all)", limits["kafka"]["produce_per_s"], "limit"))
            bars.append(Bar("raw aiokafka consume", limits["kafka"]["consume_per_s"], "limit"))
        panels.append(Panel("Ingest: Kafka → committed log rows (submissions or rows per s, steady)", bars))
    if "replay" in r:
        panels.append(_replay_panel(r))
    peers = [_peer_bars(r, name, peer) for name, peer in r.get("peers", {}).items()]
    if peers:
        panels.append(
            Panel("Peers: process start → tally up to date, same submissions (submissions/s)", sum(peers, []))
        )
    return panels


def _replay_panel(r: dict[str, Any]) -> Panel:
    rp = r["replay"]
    replayed = rp.get("from_log", {}).get("events_per_s")
    read = report.read_limit(r)
    bars = []
    if replayed:
        bars.append(
            Bar(
                "ours: replay (read, decode, fold)",
                replayed,
                "ours",
                f"{replayed / read:.2f}× the read, target ≥ {report.REPLAY_READ_TARGET:.2f}×" if read else "",
                report.REPLAY_READ_TARGET * read if read else None,
            )
        )
    if rp.get("rebuild", {}).get("events_per_s"):
        rebuilt = rp["rebuild"]["events_per_s"]
        bars.append(
            Bar(
                "ours: projections rebuild",
                rebuilt,
                "ours",
                f"{rebuilt / replayed:.2f}× the replay, target ≥ {report.REBUILD_REPLAY_TARGET:.2f}×"
                if replayed
                else "",
                report.REBUILD_REPLAY_TARGET * replayed if replayed else None,
            )
        )
    if read:
        bars.append(Bar("reading the rows alone (the replay's columns)", read, "limit"))
    if rp.get("from_log", {}).get("read_full_rows_per_s"):
        bars.append(Bar("reading whole rows (every column)", rp["from_log"]["read_full_rows_per_s"], "limit"))
    if rp.get("from_log", {}).get("payload_replay", {}).get("events_per_s"):
        before = rp["from_log"]["payload_replay"]["events_per_s"]
        bars.append(
            Bar(
                "ours before 019: the JSON parsed again",
                before,
                "before",
                f"the replay now {replayed / before:.2f}× this" if replayed else "",
            )
        )
    if rp.get("pure_fold", {}).get("events_per_s"):
        bars.append(Bar("the pure fold in memory", rp["pure_fold"]["events_per_s"], "limit"))
    return Panel("Replay and rebuild from the log (events per s)", bars)


def _peer_bars(r: dict[str, Any], name: str, peer: dict[str, Any]) -> list[Bar]:
    ours = peer.get("ours", r.get("ingest", {})).get("tally_wall_submissions_per_s")
    short = peer.get("system", name).split(":")[0].split(" (")[0]
    bars = []
    if ours:
        ratio = ours / peer["submissions_per_s"]
        bars.append(Bar(f"ours, {peer['submissions']:,} submissions", ours, "ours", f"{ratio:.1f}× {name}"))
    bars.append(Bar(f"peer {short}", peer["submissions_per_s"], "peer"))
    return bars


def throughput(r: dict[str, Any]) -> Figure | None:
    """Horizontal bars per panel on a log axis, each of ours labelled with its ratio and its target marked."""
    panels = [p for p in throughput_panels(r) if p.bars]
    if not panels:
        return None
    heights = [len(p.bars) + 1.2 for p in panels]
    figure = _figure(9.0, 0.32 * sum(heights) + 0.6, len(panels), 1, height_ratios=heights)
    axes = figure.axes
    bars = [b for p in panels for b in p.bars]
    lowest = min(b.value for b in bars) / 2
    # Each bar's label starts right of the bar (and of its target's mark) and must end inside the axes,
    # which are about the figure's width less the longest y label (~0.075 in per 9 pt character).
    width = 9.0 - 0.075 * max(len(b.label) for b in bars) - 0.4
    highest = max(_label_end(lowest, max(b.value, b.target or 0) * 1.1, len(_label(b)), width) for b in bars)
    for ax, panel in zip(axes, panels, strict=True):
        ys = list(range(len(panel.bars)))
        ax.barh(ys, [b.value for b in panel.bars], color=[_COLOURS[b.kind] for b in panel.bars], height=0.7)
        for y, bar in zip(ys, panel.bars, strict=True):
            ax.text(max(bar.value, bar.target or 0) * 1.1, y, _label(bar), va="center", fontsize=8)
            if bar.target is not None:
                ax.plot([bar.target, bar.target], [y - 0.45, y + 0.45], color=TARGET, linewidth=2)
        ax.set_yticks(ys, [b.label for b in panel.bars])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.minorticks_off()  # decades suffice; log minor ticks were half the drawing time
        ax.set_xlim(lowest, highest)
        ax.set_title(panel.title, loc="left", fontsize=9)
        ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)
    kinds = {b.kind for p in panels for b in p.bars}
    handles = [
        Patch(color=OURS, label="ours"),
        *([Patch(color=BEFORE, label="ours before, same run")] if "before" in kinds else []),
        Patch(color=LIMIT, label="limit of a part, same run"),
        Patch(color=PEER, label="peer, same submissions"),
        Line2D([], [], color=TARGET, linewidth=2, label="issue 15 target"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=8)
    return figure


def _label(bar: Bar) -> str:
    return f"{bar.value:,.0f} ({bar.note})" if bar.note else f"{bar.value:,.0f}"


def _label_end(lowest: float, start: float, chars: int, width: float) -> float:
    """The log axis's upper end that leaves a label of ``chars`` 8 pt characters from ``start`` inside the axes.

    The label takes k = chars x 0.06 in / width of the axes, so in decades: U - S >= k (U - L), U = (S - kL) / (1 - k).
    """
    k = min(0.8, chars * 0.06 / width)
    low, start_ = math.log10(lowest), math.log10(start)
    return 10 ** ((start_ - k * low) / (1 - k))


def scale_series(r: dict[str, Any]) -> tuple[list[int], dict[str, list[float | None]], dict[str, list[float | None]]]:
    """The scale curve's sizes, CPU µs per submission by process, and peak RSS (MiB) by process and phase."""
    points = sorted(r.get("scale", []), key=lambda p: p["submissions"])
    sizes = [p["submissions"] for p in points]
    cpus = [report.point_cpu(r, p) for p in points]
    cpu: dict[str, list[float | None]] = {}
    for name in dict.fromkeys(n for c in cpus for n in c):
        cpu[name] = [c.get(name) for c in cpus]
    if cpu:
        cpu["all processes"] = [sum(c.values()) if c else None for c in cpus]
    rss = {
        label: [_number(p.get(key)) for p in points]
        for label, key in (
            ("ledger (ingest)", "ledger_peak_rss_mib"),
            ("projector (ingest)", "projector_peak_rss_mib"),
            ("replay", "replay_peak_rss_mib"),
            ("rebuild", "rebuild_peak_rss_mib"),
        )
    }
    return sizes, cpu, {k: v for k, v in rss.items() if any(x is not None for x in v)}


def scale(r: dict[str, Any]) -> Figure | None:
    """CPU per submission and peak memory against the log's size (log x): flat lines are the goal."""
    sizes, cpu, rss = scale_series(r)
    if not sizes:
        return None
    figure = _figure(10.0, 4.0, 1, 2)
    left, right = figure.axes
    for name, values in cpu.items():
        _line(left, sizes, values, name, _SERIES.get(name, LIMIT), "--" if name == "all processes" else "-")
    if not cpu:
        left.text(0.5, 0.5, "not measured in this run", transform=left.transAxes, ha="center", color="#666666")
    left.set_title("CPU per submission during ingest, by process (µs)", loc="left", fontsize=9)
    for name, values in rss.items():
        _line(right, sizes, values, name, _SERIES.get(name, LIMIT), "-")
    right.axhline(report.LEDGER_RSS_TARGET_MIB, color=TARGET, linewidth=1, linestyle=":")
    right.text(
        sizes[0],
        report.LEDGER_RSS_TARGET_MIB,
        f" ledger target ≤ {report.LEDGER_RSS_TARGET_MIB:.0f} MiB",
        color=TARGET,
        va="bottom",
        fontsize=8,
    )
    right.set_title("Peak RSS (MiB)", loc="left", fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [_size(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("submissions in the log")
        ax.set_ylim(bottom=0)
        ax.grid(color="#e6e6e6", linewidth=0.6)
        if ax.lines:  # below the plot: inside, "best" still covered the lines
            ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3)
    return figure


def latency_points(lat: dict[str, Any]) -> tuple[list[float], list[float], bool]:
    """Percentiles and their delays (ms); False when only p50, p99 and the max were recorded."""
    pairs = lat.get("delays_ms")
    full = bool(pairs)
    if not full:
        pairs = [[50, lat["p50_ms"]], [99, lat["p99_ms"]], [100, lat["max_ms"]]]
    return [float(q) for q, _ in pairs], [float(ms) for _, ms in pairs], full


def _nines(q: float, observed: int) -> float:
    """A percentile as its count of nines (p90 → 1, p99 → 2); the max sits at its rank, 1 in observed."""
    if q >= 100:  # below 1,000 observed the max is p99.9 itself: keep the curve going right
        return max(3.0, math.log10(max(2, observed)))
    return -math.log10(1 - q / 100)


def latency(r: dict[str, Any]) -> Figure | None:
    """Publish → tally delay by percentile, the tail spread out (nines on the x axis), the p99 target drawn."""
    lat = r.get("latency")
    if not lat:
        return None
    qs, ms, full = latency_points(lat)
    observed = int(lat.get("observed") or lat.get("submissions") or 2)
    xs = [_nines(q, observed) for q in qs]
    stages = stage_bars(lat)
    figure = _figure(13.0, 4.0, 1, 2, width_ratios=[3, 2]) if stages else _figure(8.0, 4.0, 1, 1)
    ax = figure.axes[0]
    if stages:
        _stages(figure.axes[1], stages, lat["stages_ms"])
    # Three recorded percentiles are points, not a curve: a line between them would invent the rest.
    ax.plot(xs, ms, color=OURS, marker="" if full else "o", linestyle="-" if full else "none", linewidth=1.5)
    for name, q in (("p50", 50), ("p99", 99), ("max", 100)):
        if q in qs:
            i = qs.index(q)
            ax.plot([xs[i]], [ms[i]], "o", color=OURS, markersize=4)
            ax.annotate(
                f"{name} {ms[i]:,.1f} ms",
                (xs[i], ms[i]),
                textcoords="offset points",
                xytext=(-4, 6) if name == "max" else (4, -10),
                ha="right" if name == "max" else "left",
                fontsize=8,
            )
    ax.axhline(report.P99_TARGET_MS, color=TARGET, linewidth=1, linestyle=":")
    ax.text(
        0.02,
        report.P99_TARGET_MS,
        f"target: p99 ≤ {report.P99_TARGET_MS:.0f} ms",
        color=TARGET,
        va="bottom",
        fontsize=8,
        transform=ax.get_yaxis_transform(),
    )
    ticks = [(0.0, "p0"), (_nines(50, observed), "p50"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9")]
    ticks += [(_nines(100, observed), "max")] if _nines(100, observed) > 3.2 else []
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_xlim(0, max(xs) * 1.03)
    ax.set_xlabel("percentile of submissions")
    ax.set_ylabel("ms")
    if max(ms) > 20 * max(min(ms), 0.1):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(color="#e6e6e6", linewidth=0.6)
    what = "" if full else " (this run recorded only p50, p99 and the max)"
    ax.set_title(
        f"Publish → visible in the tally at {lat['offered_per_s']:,}/s offered, {observed:,} submissions{what}",
        loc="left",
        fontsize=9,
    )
    return figure


def stage_bars(lat: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(stage, p50 ms, p99 ms) for each stage the latency run split its delays into; empty if it did not."""
    stages = lat.get("stages_ms") or {}
    return [
        (report.STAGE_NAMES[name], float(stages[name]["p50"]), float(stages[name]["p99"]))
        for name in report.STAGE_NAMES
        if isinstance(stages.get(name), dict) and stages[name].get("p50") is not None
    ]


def _stages(ax: Any, bars: list[tuple[str, float, float]], stages: dict[str, Any]) -> None:
    """Where the time goes: each stage's p50 and p99, and the stage the slowest 1% spent most in."""
    ys = list(range(len(bars)))
    ax.barh([y - 0.2 for y in ys], [b[1] for b in bars], height=0.4, color=BEFORE, label="p50")
    ax.barh([y + 0.2 for y in ys], [b[2] for b in bars], height=0.4, color=OURS, label="p99")
    for y, (_, p50, p99) in zip(ys, bars, strict=True):
        ax.text(p99, y + 0.2, f" {p99:,.1f}", va="center", fontsize=7)
        ax.text(p50, y - 0.2, f" {p50:,.1f}", va="center", fontsize=7)
    ax.set_yticks(ys, [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("ms in the stage")
    ax.set_xlim(0, max(b[2] for b in bars) * 1.25)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    worst = stages.get("worst_stage") or {}
    most = max(worst, key=worst.get) if worst else None
    tail = (
        f"\nthe slowest 1%: most in “{report.STAGE_NAMES.get(most, most)}” ({worst[most]:,} of {sum(worst.values()):,})"
        if most
        else ""
    )
    ax.set_title(f"Where the time goes, by stage (ms){tail}", loc="left", fontsize=8)


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


def _figure(width: float, height: float, rows: int, cols: int, **grid: Any) -> Figure:
    """A figure on the Agg canvas (no display, no pyplot state), laid out without overlaps."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    figure.subplots(rows, cols, squeeze=False, gridspec_kw=grid or None)
    return figure


def _line(ax: Any, sizes: list[int], values: list[float | None], label: str, colour: str, style: str) -> None:
    pairs = [(s, v) for s, v in zip(sizes, values, strict=True) if v is not None]
    if pairs:
        ax.plot(*zip(*pairs, strict=True), marker="o", markersize=3, linestyle=style, color=colour, label=label)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _size(n: int) -> str:
    for unit, scale_ in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale_ and n % scale_ == 0:
            return f"{n // scale_:,}{unit}"
    return f"{n:,}"

"""The scale curve (CPU and memory against the log's size) and the latency distribution charts."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from services.devtools.bench import chart_kit as kit
from services.devtools.bench import report


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
        label: [kit.number(p.get(key)) for p in points]
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
    figure = kit.figure(10.0, 4.0, 1, 2)
    left, right = figure.axes
    for name, values in cpu.items():
        kit.line(left, sizes, values, name, kit.SERIES.get(name, kit.LIMIT), "--" if name == "all processes" else "-")
    if not cpu:
        left.text(0.5, 0.5, "not measured in this run", transform=left.transAxes, ha="center", color="#666666")
    left.set_title("CPU per submission during ingest, by process (µs)", loc="left", fontsize=9)
    for name, values in rss.items():
        kit.line(right, sizes, values, name, kit.SERIES.get(name, kit.LIMIT), "-")
    right.axhline(report.LEDGER_RSS_TARGET_MIB, color=kit.TARGET, linewidth=1, linestyle=":")
    right.text(
        sizes[0],
        report.LEDGER_RSS_TARGET_MIB,
        f" ledger target ≤ {report.LEDGER_RSS_TARGET_MIB:.0f} MiB",
        color=kit.TARGET,
        va="bottom",
        fontsize=8,
    )
    right.set_title("Peak RSS (MiB)", loc="left", fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [kit.size_label(s) for s in sizes])
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
    figure = kit.figure(13.0, 4.0, 1, 2, width_ratios=[3, 2]) if stages else kit.figure(8.0, 4.0, 1, 1)
    ax = figure.axes[0]
    if stages:
        _stages(figure.axes[1], stages, lat["stages_ms"])
    # Three recorded percentiles are points, not a curve: a line between them would invent the rest.
    ax.plot(xs, ms, color=kit.OURS, marker="" if full else "o", linestyle="-" if full else "none", linewidth=1.5)
    for name, q in (("p50", 50), ("p99", 99), ("max", 100)):
        if q in qs:
            i = qs.index(q)
            ax.plot([xs[i]], [ms[i]], "o", color=kit.OURS, markersize=4)
            ax.annotate(
                f"{name} {ms[i]:,.1f} ms",
                (xs[i], ms[i]),
                textcoords="offset points",
                xytext=(-4, 6) if name == "max" else (4, -10),
                ha="right" if name == "max" else "left",
                fontsize=8,
            )
    ax.axhline(report.P99_TARGET_MS, color=kit.TARGET, linewidth=1, linestyle=":")
    ax.text(
        0.02,
        report.P99_TARGET_MS,
        f"target: p99 ≤ {report.P99_TARGET_MS:.0f} ms",
        color=kit.TARGET,
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
    ax.barh([y - 0.2 for y in ys], [b[1] for b in bars], height=0.4, color=kit.BEFORE, label="p50")
    ax.barh([y + 0.2 for y in ys], [b[2] for b in bars], height=0.4, color=kit.OURS, label="p99")
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

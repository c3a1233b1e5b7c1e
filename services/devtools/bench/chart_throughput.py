"""The throughput chart: ours next to the limits of its parts measured in the same run, and the peers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from services.devtools.bench import chart_kit as kit
from services.devtools.bench import report


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
    figure = kit.figure(9.0, 0.32 * sum(heights) + 0.6, len(panels), 1, height_ratios=heights)
    axes = figure.axes
    bars = [b for p in panels for b in p.bars]
    lowest = min(b.value for b in bars) / 2
    # Each bar's label starts right of the bar (and of its target's mark) and must end inside the axes,
    # which are about the figure's width less the longest y label (~0.075 in per 9 pt character).
    width = 9.0 - 0.075 * max(len(b.label) for b in bars) - 0.4
    highest = max(_label_end(lowest, max(b.value, b.target or 0) * 1.1, len(_label(b)), width) for b in bars)
    for ax, panel in zip(axes, panels, strict=True):
        ys = list(range(len(panel.bars)))
        ax.barh(ys, [b.value for b in panel.bars], color=[kit.COLOURS[b.kind] for b in panel.bars], height=0.7)
        for y, bar in zip(ys, panel.bars, strict=True):
            ax.text(max(bar.value, bar.target or 0) * 1.1, y, _label(bar), va="center", fontsize=8)
            if bar.target is not None:
                ax.plot([bar.target, bar.target], [y - 0.45, y + 0.45], color=kit.TARGET, linewidth=2)
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
        Patch(color=kit.OURS, label="ours"),
        *([Patch(color=kit.BEFORE, label="ours before, same run")] if "before" in kinds else []),
        Patch(color=kit.LIMIT, label="limit of a part, same run"),
        Patch(color=kit.PEER, label="peer, same submissions"),
        Line2D([], [], color=kit.TARGET, linewidth=2, label="issue 15 target"),
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

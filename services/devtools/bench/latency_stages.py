"""Where publish -> tally latency goes: each submission's delay split into the stages it passes through.

Stamps, all on this machine's clock: the publish (the benchmark), the broker's append (the log's
appended_at: LogAppendTime), the ledger's append under its lock (recorded_at: after the batch was fetched,
decoded and judged), the ledger's commit (its NOTIFY on ledger_appended, received here), the projector's
commit (its NOTIFY on tally_projected) and the poller's sighting of the checkpoint.
"""

from __future__ import annotations

import bisect
import time

import asyncpg

from services.adapters.postgres.log import bench as log_bench
from services.adapters.postgres.log.append import NOTIFY_CHANNEL
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL

STAGES = ("kafka", "ledger_fetch_decide", "ledger_commit", "projector", "poller")


class StageClock:
    """LISTENs to both channels during a latency run and splits each delay into STAGES."""

    def __init__(self) -> None:
        self.conn: asyncpg.Connection | None = None
        self.committed: list[tuple[int, float]] = []  # (log head, perf_counter) per ledger commit
        self.projected: list[tuple[int, float]] = []  # (checkpoint, perf_counter) per projector commit
        # perf_counter + offset = the epoch seconds PostgreSQL and Kafka stamp rows with
        self.offset = time.time() - time.perf_counter()

    async def listen(self, dsn: str) -> None:
        """Start receiving both channels' notifications on a connection of its own."""
        self.conn = await asyncpg.connect(dsn)
        await self.conn.add_listener(NOTIFY_CHANNEL, lambda *a: self.committed.append((int(a[3]), time.perf_counter())))
        await self.conn.add_listener(
            PROJECTED_CHANNEL, lambda *a: self.projected.append((int(a[3]), time.perf_counter()))
        )

    async def close(self) -> None:
        """Stop listening."""
        if self.conn is not None:
            await self.conn.close()

    async def breakdown(self, after: int, published: dict[str, float], visible: dict[str, float]) -> dict:
        """p50/p99/max ms of each stage over the submissions logged after ``after`` (by event id: publish, sighting)."""
        rows = await log_bench.stamps_after(self.conn, after)
        return split(rows, published, visible, self.committed, self.projected, self.offset)


def split(rows, published, visible, committed, projected, offset: float) -> dict:
    """Per stage {p50, p99, max} in ms, and the stage each of the slowest 1% spent most in (``worst_stage``)."""
    heads, checkpoints = [h for h, _ in committed], [c for c, _ in projected]
    parts: dict[str, list[float]] = {stage: [] for stage in STAGES}
    slowest: list[tuple[float, str]] = []
    for row in rows:
        event_id = row["event_id"]
        if event_id not in published or event_id not in visible or row["appended"] is None:
            continue  # not ours, not seen, or a CreateTime topic (no broker stamp)
        c, p = bisect.bisect_left(heads, row["position"]), bisect.bisect_left(checkpoints, row["position"])
        if c == len(heads) or p == len(checkpoints):
            continue  # its notification came before the listener or was lost: no stage stamps
        stamps = [
            published[event_id],
            row["appended"] - offset,
            row["recorded"] - offset,
            committed[c][1],
            projected[p][1],
            visible[event_id],
        ]
        durations = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        for stage, seconds in zip(STAGES, durations, strict=True):
            parts[stage].append(seconds)
        slowest.append((stamps[-1] - stamps[0], STAGES[durations.index(max(durations))]))
    slowest.sort(reverse=True)
    tail = [stage for _, stage in slowest[: max(1, len(slowest) // 100)]] if slowest else []
    return {
        **{stage: _summary(values) for stage, values in parts.items()},
        "measured": len(slowest),
        "worst_stage": {stage: tail.count(stage) for stage in STAGES if stage in tail},
    }


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1] * 1000, 1)}

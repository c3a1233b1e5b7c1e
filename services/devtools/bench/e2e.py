"""End to end through our running services: ingest throughput, and publish-to-tally latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from events import decode
from services.adapters.kafka.topics import producer
from services.adapters.postgres import tally_store
from services.adapters.postgres.log import bench as log_bench
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.tally_store import PROJECTION
from services.devtools.bench.latency_stages import StageClock
from services.devtools.bench.processes import Sampler, machine_processes, running
from services.devtools.bench.scratch import publish_workload
from services.devtools.bench.stream import StreamedWorkload, publish_stream
from services.devtools.bench.workload import Workload
from services.settings import Settings

_POLL = 0.02  # seconds between progress reads: a cheap index probe, but not a busy loop


async def _consumed(conn: asyncpg.Connection, settings: Settings) -> int:
    """Messages the ledger has committed, from its offsets (exact, and cheaper than counting rows)."""
    return await log_bench.consumed(conn, settings.consumer_group, [settings.admin_topic, settings.submissions_topic])


async def _checkpoint(conn: asyncpg.Connection) -> int:
    return await tally_store.checkpoint(conn, PROJECTION)


async def ingest(
    settings: Settings,
    workload: Workload | StreamedWorkload,
    log_dir: Path,
    ledgers: int = 1,
    watch: Callable[[asyncio.Event], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Publish the workload, then run the ledger(s) and the projector until both have all of it.

    The backlog is published first so the ledger runs flat out; the rate is taken between the
    first and the last committed batch (steady state). ``tally_wall_submissions_per_s`` counts
    from process start until the tally is up to date: the figure to set beside a peer's. The
    submissions are published as a stream (a chunk at a time), so a streamed workload of any size
    fits in memory. ``watch(stop)``, if given, runs while the ledgers ingest until ``stop`` is set; its
    result is under "watch".
    """
    published = await publish_stream(settings, workload.admin_payloads, workload.payloads())
    publish_seconds = published["seconds"]
    messages = len(workload.admin_payloads) + published["submissions"]
    names = ["ledger", *(f"ledger{n}" for n in range(2, ledgers + 1)), "projector"]
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        with running(settings, *names, log_dir=log_dir) as procs:
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(stop)) if watch is not None else None
            sampler = Sampler(machine_processes(procs))
            sampler.start()
            spawned = time.perf_counter()
            first = last = None
            steady_usage = None
            try:
                while (done := await _consumed(conn, settings)) < messages:
                    _alive(procs)
                    if first is None and done > 0:
                        first = (time.perf_counter(), done)
                        sampler.mark()  # CPU per submission counts the steady state, not interpreter start-up
                    await asyncio.sleep(_POLL)
                last = time.perf_counter()
                steady_usage = sampler.usage()  # mark (first commit) to the last: the steady window's CPU
                head = await log_reads.head(conn)
                while await _checkpoint(conn) < head:
                    _alive(procs)
                    await asyncio.sleep(_POLL)
                projected = time.perf_counter()
            finally:
                usage = await sampler.stop()
                stop.set()
                watched = (await asyncio.gather(watcher, return_exceptions=True))[0] if watcher is not None else None
        rows = await log_bench.row_count(conn)
        decisions = await log_bench.decisions(conn)
    finally:
        await conn.close()
    first_at, first_done = first or (spawned, 0)
    steady = max(last - first_at, 1e-9)
    submissions = published["submissions"]
    measured = max(1, messages - first_done)  # what was processed after the CPU count restarted
    extra = {} if watcher is None else {"watch": watched if isinstance(watched, dict) else {"error": repr(watched)}}
    return {
        "submissions": submissions,
        "log_rows": rows,
        "accepted": decisions.get("accepted", 0),
        "rejected": decisions.get("rejected", 0),
        "publish_seconds": round(publish_seconds, 2),
        "wall_seconds": round(last - spawned, 2),
        "steady_seconds": round(steady, 2),
        "submissions_per_s": round((messages - first_done) / steady),
        "wall_submissions_per_s": round(submissions / (last - spawned)),
        "tally_wall_submissions_per_s": round(submissions / (projected - spawned)),
        "projector_lag_seconds": round(projected - last, 2),
        "cpu_seconds": usage.cpu_seconds,
        "cpu_us_per_submission": {k: round(v / measured * 1e6, 1) for k, v in usage.cpu_seconds.items()},
        "peak_rss_mib": usage.peak_rss_mib,
        "measured_seconds": round(usage.wall_seconds, 2),
        # Each process's CPU over the steady window alone (the ledgers' ingest, not the projector's catch-up after).
        "steady_cpu_seconds": steady_usage.cpu_seconds if steady_usage else {},
        "steady_cpu_window_seconds": round(steady_usage.wall_seconds, 2) if steady_usage else 0.0,
        **extra,
    }


def _alive(procs) -> None:
    for name, proc in procs.items():
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} exited with {proc.returncode} during the benchmark (see its log)")


async def latency(
    settings: Settings, workload: Workload, log_dir: Path, rate: int = 5_000, seconds: float = 30.0
) -> dict[str, Any]:
    """Offer submissions at a fixed rate to running services; time each from publish to the tally.

    An event is visible once the projector's checkpoint passes its log position (the tally read
    by dashboards is committed with that checkpoint). The poller reads the checkpoint every 5 ms.
    """
    count = min(len(workload.submission_payloads), int(rate * seconds))
    submissions = workload.submission_payloads[:count]
    await publish_workload(settings, workload.admin_payloads, [])
    conn = await asyncpg.connect(settings.pg_dsn)
    published: dict[bytes, float] = {}
    visible: dict[str, float] = {}
    stages = StageClock()  # where the time goes: each delay split at the broker, the ledger's and projector's commits
    try:
        with running(settings, "ledger", "projector", log_dir=log_dir) as procs:
            while await _checkpoint(conn) < len(workload.admin_payloads):  # meeting loaded and projected
                _alive(procs)
                await asyncio.sleep(0.05)
            await stages.listen(settings.pg_dsn)
            poller = asyncio.create_task(_watch(conn, visible, count))
            try:
                offered_seconds = await _offer(settings, submissions, rate, published, procs)
                await asyncio.wait_for(poller, timeout=120)
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        ids = _event_ids(submissions)
        by_id = {ids[value]: t for value, t in published.items()}
        split = await stages.breakdown(len(workload.admin_payloads), by_id, visible)
    finally:
        await stages.close()
        await conn.close()
    delays = sorted(visible[ids[value]] - t for value, t in published.items() if ids[value] in visible)
    return {
        "offered_per_s": rate,
        "submissions": count,
        "achieved_offer_per_s": round(count / offered_seconds),
        "p50_ms": _ms(delays, 0.50),
        "p99_ms": _ms(delays, 0.99),
        "max_ms": round(delays[-1] * 1000, 1),
        "observed": len(delays),
        # The distribution for the latency chart: [percentile, ms] at p1..p99, p99.9 and the max (100).
        "delays_ms": [[q, _ms(delays, q / 100)] for q in (*range(1, 100), 99.9)] + [[100, round(delays[-1] * 1000, 1)]],
        # Per stage (latency_stages.STAGES) p50/p99/max ms, and in which stage the slowest 1% spent most.
        "stages_ms": split,
    }


async def _offer(
    settings: Settings, submissions: list[tuple[bytes, bytes]], rate: int, published: dict[bytes, float], procs
) -> float:
    """Send at a fixed rate in 10 ms ticks, stamping each just before its send; return the seconds taken."""
    # A low linger: batching for throughput would add its wait to every submission's latency.
    async with producer(settings, linger_ms=2) as client:
        tick, pending, sent = 0.01, [], 0
        per_tick = rate * tick
        start = time.perf_counter()
        while sent < len(submissions):
            due = min(len(submissions), int((time.perf_counter() - start) / tick * per_tick) + int(per_tick))
            for key, value in submissions[sent:due]:
                published[value] = time.perf_counter()
                pending.append(await client.send(settings.submissions_topic, value, key=key))
            sent = due
            _alive(procs)
            await asyncio.sleep(max(0.0, start + (sent / per_tick) * tick - time.perf_counter()))
        offered = time.perf_counter() - start
        await asyncio.gather(*pending)
    return offered


async def _watch(conn: asyncpg.Connection, visible: dict[str, float], expected: int) -> None:
    """Stamp each event when the projector's checkpoint first covers it."""
    seen = await _checkpoint(conn)
    while len(visible) < expected:
        now_checkpoint = await _checkpoint(conn)
        if now_checkpoint > seen:
            stamp = time.perf_counter()
            for event_id in await log_bench.event_ids_between(conn, seen, now_checkpoint):
                visible.setdefault(event_id, stamp)
            seen = now_checkpoint
        await asyncio.sleep(0.005)


def _event_ids(payloads: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    return {value: decode(value).event_id for _, value in payloads}


def _ms(sorted_delays: list[float], q: float) -> float:
    index = min(len(sorted_delays) - 1, int(q * len(sorted_delays)))
    return round(sorted_delays[index] * 1000, 1)

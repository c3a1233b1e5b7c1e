"""Many meetings at once: ingest of 50 meetings' submissions interleaved vs one meeting's, with 1 and 2 ledgers.

Every append, whatever its meeting, takes the one row of ledger_append_lock until commit
(services/adapters/postgres/log/append.py). Whether that lock is what limits ingest is measured, not
argued: while the ledgers ingest, their PostgreSQL backends are sampled in pg_stat_activity, and the
share of samples waiting for a lock is set beside the CPU our processes (ledgers, projector, PostgreSQL,
Kafka) used over the steady window, against every core of the machine. The whole machine's CPU use is
kept beside it, but does not decide: other work on the shared machine counts in it, and its window
began before the services' interpreters had started.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from services.devtools.bench import e2e
from services.devtools.bench.scratch import scratch_namespace
from services.devtools.bench.stream import StreamedWorkload, interleaved, stream
from services.settings import Settings

MEETINGS = 50
# Channels sign their share of this many consecutive submissions per meeting as one batch (the demo's
# window): each of the 50 interleaved generators holds one window, so 4,096 would keep ~290 MB of payloads.
WINDOW = 512
_SAMPLE = 0.02  # seconds between pg_stat_activity samples: ~50 cheap queries a second
# The processes whose CPU decides whether there was a core to spare (processes.machine_processes' groups,
# "ledger2" being a second ledger); the benchmark's own poller and sampler are not the workload.
_MEASURED = ("ledger", "projector", "postgresql", "kafka")

_STATS = """
SELECT state, wait_event_type, wait_event FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND usename = current_user
"""


async def measure(
    settings: Settings,
    submissions: int,
    log_dir: Path,
    *,
    meeting_file: Path,
    positions: int,
    seed: int = 5,
    meetings: int = MEETINGS,
    ledgers: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    """Ingest ``submissions`` for one meeting, then the same number over ``meetings`` meetings, per ledger count.

    Each meeting gets a register of ``positions`` control numbers (the one meeting too: only the
    number of meetings differs). The pairs alternate in one run, so the machine's load is alike.
    """
    runs = []
    for count in ledgers:
        run: dict[str, Any] = {"ledgers": count}
        for label, workloads in (
            ("one_meeting", _workloads(1, submissions, meeting_file, positions, seed)),
            ("many_meetings", _workloads(meetings, submissions, meeting_file, positions, seed)),
        ):
            async with scratch_namespace(settings, f"meet{count}{label[:4]}") as cfg:
                result = await e2e.ingest(
                    cfg, _together(workloads), log_dir, ledgers=count, watch=lambda stop, c=cfg: _watch(c, stop)
                )
            run[label] = _summary(result)
        run["many_vs_one"] = round(
            run["many_meetings"]["submissions_per_s"] / run["one_meeting"]["submissions_per_s"], 2
        )
        runs.append(run)
    return {
        "meetings": meetings,
        "positions_per_meeting": positions,
        "submissions": submissions,
        "window": WINDOW,
        "cores": psutil.cpu_count(),  # what processes_cpu_busy is a share of
        "runs": runs,
        "lock_limits": _verdict(runs),
    }


def _workloads(count: int, submissions: int, meeting_file: Path, positions: int, seed: int) -> list[StreamedWorkload]:
    """``count`` distinct meetings (ids and seeds) sharing ``submissions`` between them."""
    share, extra = divmod(submissions, count)
    return [
        stream(
            share + (1 if i < extra else 0),
            meeting_file=meeting_file,
            positions=positions,
            seed=seed + i,  # distinct event ids per meeting, as distinct campaigns would have
            window=WINDOW,
            meeting_id=None if count == 1 else f"bench-meeting-{i:02d}",
        )
        for i in range(count)
    ]


def _together(workloads: list[StreamedWorkload]) -> StreamedWorkload:
    """One workload publishing every meeting's admin events, then their submissions interleaved."""
    return StreamedWorkload(
        meeting=workloads[0].meeting,
        admin_payloads=[p for w in workloads for p in w.admin_payloads],
        size=sum(w.size for w in workloads),
        positions=sum(w.positions for w in workloads),
        make=lambda: interleaved(workloads),
    )


async def _watch(settings: Settings, stop: asyncio.Event) -> dict[str, Any]:
    """Sample the ledgers' backends until ``stop``: how often each state, and the whole machine's CPU use meanwhile
    (other work included, from before the services started: kept for reference, the verdict does not use it)."""
    states: collections.Counter[str] = collections.Counter()
    samples = 0
    cpu_before, started = psutil.cpu_times(), time.perf_counter()
    # The ledger's own login: without pg_read_all_stats a login sees only its own sessions' wait_event
    # (the owner saw "<insufficient privilege>" for the ledger's backends).
    conn = await asyncpg.connect(settings.pg_ledger_dsn or settings.pg_dsn)
    try:
        while not stop.is_set():
            rows = await conn.fetch(_STATS)
            active = [r for r in rows if r["state"] != "idle"]
            if active:
                samples += 1
                states.update(_state(r) for r in active)
            await asyncio.sleep(_SAMPLE)
    finally:
        await conn.close()
    cpu_after = psutil.cpu_times()
    busy = _busy(cpu_after) - _busy(cpu_before)
    total = sum(cpu_after) - sum(cpu_before)
    backend_samples = sum(states.values())
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "samples_with_a_ledger_transaction": samples,
        # Per backend sample: where the ledgers' open transactions were.
        "backend_states": {k: round(v / max(1, backend_samples), 3) for k, v in states.most_common()},
        "lock_wait_share": round(
            sum(v for k, v in states.items() if k.startswith("Lock")) / max(1, backend_samples), 3
        ),
        "machine_cpu_busy": round(busy / max(total, 1e-9), 3),
    }


def _state(row: asyncpg.Record) -> str:
    """A backend's state as one label: a wait ("Lock:transactionid"), running SQL, or its client's turn."""
    if row["wait_event_type"] and row["wait_event_type"] != "Client":
        return f"{row['wait_event_type']}:{row['wait_event']}"
    if row["state"] == "active":
        return "running SQL"
    return f"{row['state']} (the ledger's Python)"  # idle in transaction: holding the lock while the client works


def _busy(times: Any) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("submissions", "log_rows", "accepted", "rejected", "steady_seconds", "submissions_per_s")
    return {
        **{k: result[k] for k in keep},
        "cpu_us_per_submission": result["cpu_us_per_submission"],
        "processes_cpu_busy": processes_busy(
            result.get("steady_cpu_seconds", {}), result.get("steady_cpu_window_seconds", 0.0)
        ),
        "watch": result.get("watch", {}),
    }


def processes_busy(cpu_seconds: dict[str, float], window: float, cores: int | None = None) -> float:
    """The share of the machine's cores our measured processes (_MEASURED) used over ``window`` seconds."""
    cores = cores or psutil.cpu_count() or 1
    used = sum(v for name, v in cpu_seconds.items() if name.rstrip("0123456789") in _MEASURED)
    return round(used / max(cores * window, 1e-9), 3)


def _verdict(runs: list[dict[str, Any]]) -> str:
    """What the measurements say about the append lock, in one sentence.

    The lock limits only if ledgers wait for it while our processes leave CPU to spare: with the cores
    saturated, a second ledger has no core to gain, and waiting for the lock only moves work. Our
    processes' CPU over the steady window decides (processes_cpu_busy), not the whole machine's.
    """
    parts = [(r["ledgers"], r[m]["watch"]) for r in runs for m in ("one_meeting", "many_meetings")]
    one = max((w.get("lock_wait_share", 0.0) for n, w in parts if n == 1), default=0.0)
    more = max((w.get("lock_wait_share", 0.0) for n, w in parts if n > 1), default=0.0)
    cpu = min(r[m].get("processes_cpu_busy", 0.0) for r in runs for m in ("one_meeting", "many_meetings"))
    many = {r["ledgers"]: r["many_meetings"]["submissions_per_s"] for r in runs}
    scaling = f"; 2 ledgers vs 1 on 50 meetings: {many[2] / many[1]:.2f}x" if {1, 2} <= many.keys() else ""
    waits = f"one ledger waits for a lock in {one:.0%} of its samples, two in {more:.0%}"
    if cpu >= 0.9:
        cores = f"our processes used at least {cpu:.0%} of the machine's cores in every run"
        return f"no, the CPU is: {cores}; {waits}{scaling}"
    if more >= 0.3:
        return f"yes: {waits}, while our processes used as little as {cpu:.0%} of the machine's cores{scaling}"
    return f"no: {waits}, our processes using at least {cpu:.0%} of the machine's cores{scaling}"


def markdown(m: dict[str, Any]) -> list[str]:
    """The many-meetings table for results.md: ingest/s, the lock's share of the ledgers' samples, CPU busy."""
    lines = [
        f"Many meetings ({m['submissions']:,} submissions over {m['meetings']} meetings of"
        f" {m['positions_per_meeting']:,} positions, interleaved, vs the same number for one meeting; the ledgers'"
        " open transactions sampled in pg_stat_activity every 20 ms; CPU busy: our processes' CPU time (ledgers,"
        " projector, PostgreSQL, Kafka) over the steady window against all the machine's cores, and the whole"
        " machine's, other work and the services' start-up included):",
        "",
        "| Ledger processes | Meetings | Ingest/s (steady) | Many / one | Samples waiting for a lock |"
        " Holding a transaction while the ledger's Python works | Running SQL | CPU busy: our processes |"
        " CPU busy: whole machine |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in m["runs"]:
        for label, count in (("one_meeting", 1), ("many_meetings", m["meetings"])):
            part, watch = run[label], run[label]["watch"]
            states = watch.get("backend_states", {})
            idle = sum(v for k, v in states.items() if k.startswith("idle in transaction"))
            ratio = f"{run['many_vs_one']:.2f}" if label == "many_meetings" else ""
            ours = part.get("processes_cpu_busy")  # absent from results measured before it was
            lines.append(
                f"| {run['ledgers']} | {count} | {part['submissions_per_s']:,} | {ratio} |"
                f" {watch.get('lock_wait_share', 0):.0%} | {idle:.0%} | {states.get('running SQL', 0):.0%} |"
                f" {'—' if ours is None else f'{ours:.0%}'} | {watch.get('machine_cpu_busy', 0):.0%} |"
            )
    return [*lines, "", f"Is the global append lock the limit? {m['lock_limits']}."]

"""One benchmark run: every measurement of issue 5 on one workload, on one machine, side by side."""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from services.devtools.bench import api, e2e, limits, meetings, peer_eventsourcing, peer_naive, replay, verify_cost
from services.devtools.bench.scale import point_of, scale_point, vacuum_log
from services.devtools.bench.scratch import publish_workload, scratch_namespace
from services.devtools.bench.workload import DEFAULT_MEETING, DEFAULT_POSITIONS, Workload, build
from services.settings import Settings


@dataclass
class Plan:
    """What to measure and at which sizes."""

    events: int = 1_000_000
    positions: int = DEFAULT_POSITIONS
    scale: list[int] = field(default_factory=lambda: [10_000, 100_000])
    latency_rate: int = 5_000
    latency_seconds: float = 30.0
    peers: bool = True
    # The eventsourcing peer commits once per event in its projection (~550/s here): a million
    # would take half an hour, so it gets the first N submissions of the same workload.
    peer_events: int = 50_000
    meeting_file: Path = DEFAULT_MEETING
    seed: int = 5
    # Ingest the same submissions unsigned too, right after the signed run: the ratio is what
    # signatures cost end to end (two runs minutes apart on a shared machine differ more than that).
    unsigned: bool = True
    # The HTTP API: an event stream open during ingest at latency_rate, then the tally route under load.
    api: bool = True
    log_dir: Path = Path("bench-results/logs")
    # Submissions for the many-meetings measurement (50 meetings interleaved vs one, with 1 and 2 ledgers); 0 skips it.
    meetings_events: int = 200_000


async def run(
    settings: Settings,
    plan: Plan,
    say: Callable[[str], None],
    on_progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Measure ours, the limits and the peers on the plan's workload; return everything as plain data.

    ``say`` announces each phase; ``on_progress(phases done, phases)`` follows them for a progress bar.
    """
    started = time.perf_counter()
    phases = (
        6
        + (3 if plan.peers else 0)
        + (1 if plan.unsigned else 0)
        + (1 if plan.api else 0)
        + (1 if plan.meetings_events else 0)
        + len(set(plan.scale) - {plan.events})
    )
    announce = say
    done = 0

    def say(line: str) -> None:  # every announcement but the first closes a phase
        nonlocal done
        if on_progress is not None:
            on_progress(done, phases)
        done += 1
        announce(line)

    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": await machine(settings),
        "plan": _plain(asdict(plan)),
    }
    say(f"building the workload: {plan.events:,} submissions over {plan.positions:,} positions")
    workload = build(plan.events, meeting_file=plan.meeting_file, positions=plan.positions, seed=plan.seed)
    results["workload"] = describe(workload)
    # The workload is millions of immutable objects in this process, which also runs the latency
    # publisher and poller, the replay and both peers: without this, each full collection walks
    # them all and its pauses showed up as hundreds of milliseconds of "latency".
    gc.freeze()
    say("verification: what checking signatures costs per submission, part by part")
    results["verification"] = verify_cost.measure(workload)

    async with scratch_namespace(settings, "ours") as cfg:
        say("ingest (signed): publishing, then the ledger and the projector as processes")
        results["ingest"] = await e2e.ingest(cfg, workload, plan.log_dir)
        say(f"  {results['ingest']['submissions_per_s']:,} submissions/s; replaying the log")
        results["vacuum"] = await vacuum_log(cfg.pg_dsn)
        if plan.unsigned:
            # Next to the signed run, after its log's VACUUM (so no autovacuum of it burdens this one).
            say("ingest (unsigned): the same submissions without signatures, on a meeting not requiring them")
            async with scratch_namespace(settings, "unsigned") as unsigned_cfg:
                results["ingest_unsigned"] = await e2e.ingest(unsigned_cfg, workload.unsigned(), plan.log_dir)
        results["replay"] = {
            "pure_fold": replay.pure_fold(workload),
            "from_log": await replay.from_log_process(cfg, workload.meeting_id, plan.log_dir),
            "rebuild": await replay.rebuild(cfg, workload.meeting_id, plan.log_dir),
        }
        say("limits: raw aiokafka produce/consume, raw COPY")
        results["limits"] = {
            "kafka": await limits.kafka_limit(cfg, workload),
            "copy": await limits.copy_limit(cfg, workload),
        }
        if plan.peers:
            say("peer: naive upsert + GROUP BY")
            results.setdefault("peers", {})["naive"] = await peer_naive.measure(cfg, workload)
    if plan.peers:
        subset = workload.prefix(min(plan.peer_events, len(workload.submissions)))
        say(f"peer: the eventsourcing library, on the first {len(subset.submissions):,} submissions")
        async with scratch_namespace(settings, "espeer") as cfg:
            await publish_workload(cfg, subset.admin_payloads, subset.submission_payloads)
            results["peers"]["eventsourcing"] = await peer_eventsourcing.measure(cfg, subset)
        say(f"ours on the same {len(subset.submissions):,} submissions, for the comparison")
        async with scratch_namespace(settings, "oursprefix") as cfg:
            results["peers"]["eventsourcing"]["ours"] = await e2e.ingest(cfg, subset, plan.log_dir)

    say(f"latency: {plan.latency_rate:,}/s offered for {plan.latency_seconds:.0f} s")
    async with scratch_namespace(settings, "latency") as cfg:
        results["latency"] = await e2e.latency(cfg, workload, plan.log_dir, plan.latency_rate, plan.latency_seconds)
    if plan.api:
        # Request load as long as the ingest, up to 10 s: requests/s settle within a few seconds.
        say(f"API: an event stream open while {plan.latency_rate:,}/s are offered, then the tally route under load")
        async with scratch_namespace(settings, "api") as cfg:
            try:
                seconds = plan.latency_seconds
                results["api"] = await api.measure(
                    cfg, workload, plan.log_dir, plan.latency_rate, seconds, min(10.0, seconds)
                )
            except RuntimeError as exc:
                # The API's part failing (a poll refused, a stream cut) is that part's result, not the run's
                # end: a dropped connection there once threw away 20 minutes of measurements before it.
                results["api"] = {"error": str(exc)}

    if plan.meetings_events:
        say(f"meetings: {plan.meetings_events:,} submissions over {meetings.MEETINGS} meetings vs one, 1 and 2 ledgers")
        results["meetings"] = await many_meetings(settings, plan)

    curve = [point_of(plan.events, results["ingest"], results["replay"]["from_log"], results["replay"]["rebuild"])]
    for size in sorted(set(plan.scale) - {plan.events}):
        say(f"scale: {size:,} submissions")
        curve.append(await scale_point(settings, plan, size))
    results["scale"] = sorted(curve, key=lambda p: p["submissions"])
    results["seconds"] = round(time.perf_counter() - started)
    if on_progress is not None:
        on_progress(phases, phases)
    return results


async def many_meetings(settings: Settings, plan: Plan) -> dict[str, Any]:
    """The many-meetings measurement of the plan (meetings.measure)."""
    return await meetings.measure(
        settings,
        plan.meetings_events,
        plan.log_dir,
        meeting_file=plan.meeting_file,
        # Small registers, as most meetings of a proxy season have: the main run's register shared out.
        positions=max(200, plan.positions // meetings.MEETINGS),
        seed=plan.seed,
    )


async def meetings_only(
    settings: Settings, plan: Plan, say: Callable[[str], None], on_progress: Callable[[int, int | None], None] | None
) -> dict[str, Any]:
    """Only the many-meetings measurement: meetings.json."""
    started = time.perf_counter()
    say(f"meetings: {plan.meetings_events:,} submissions over {meetings.MEETINGS} meetings vs one, 1 and 2 ledgers")
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": await machine(settings),
        "plan": _plain(asdict(plan)),
        "meetings": await many_meetings(settings, plan),
    }
    results["seconds"] = round(time.perf_counter() - started)
    if on_progress is not None:
        on_progress(1, 1)
    return results


async def scale_only(
    settings: Settings, plan: Plan, say: Callable[[str], None], on_progress: Callable[[int, int | None], None] | None
) -> dict[str, Any]:
    """Only the scale curve, at every size of ``plan.scale`` (the main run's measurements skipped): scale.json."""
    started = time.perf_counter()
    sizes = sorted(set(plan.scale))
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": await machine(settings),
        "plan": _plain(asdict(plan)),
        "scale": [],
    }
    for done, size in enumerate(sizes):
        if on_progress is not None:
            on_progress(done, len(sizes))
        say(f"scale: {size:,} submissions, generated and published as a stream")
        results["scale"].append(await scale_point(settings, plan, size))
        say(f"  {size:,}: {results['scale'][-1]['ingest_per_s']:,}/s, {results['scale'][-1]['seconds']:,} s in all")
    results["seconds"] = round(time.perf_counter() - started)
    if on_progress is not None:
        on_progress(len(sizes), len(sizes))
    return results


def describe(workload: Workload) -> dict[str, Any]:
    """What the workload is: register size, submissions by kind, bytes."""
    sizes = [len(v) for _, v in workload.submission_payloads]
    return {
        "meeting_id": workload.meeting_id,
        "positions": workload.positions,
        "admin_events": len(workload.admin),
        "submissions": len(workload.submissions),
        "signed": workload.signed,
        "mix": workload.mix(),
        "mean_payload_bytes": round(sum(sizes) / max(1, len(sizes))),
    }


async def machine(settings: Settings) -> dict[str, Any]:
    """The machine and the versions measured: ratios are comparable across machines, times are not."""
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        postgres = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "postgresql": postgres,
        "kafka_bootstrap": settings.kafka_bootstrap,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value

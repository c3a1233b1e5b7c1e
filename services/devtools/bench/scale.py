"""The scale curve's points: ingest, replay and rebuild of a streamed workload at one size, and merging runs."""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from services.adapters.postgres.log import bench as log_bench
from services.devtools.bench import e2e, replay
from services.devtools.bench.scratch import scratch_namespace
from services.devtools.bench.stream import stream
from services.settings import Settings

if TYPE_CHECKING:
    from services.devtools.bench.run import Plan


async def scale_point(settings: Settings, plan: Plan, size: int) -> dict[str, Any]:
    """Ingest (with the projector), replay and rebuild at one size: wall time, CPU per submission, peak memory.

    The workload is streamed (generated and signed while it is published, a chunk at a time), so this
    process stays small whatever the size; the scratch topics and database are dropped after the point
    (10M submissions are ~14 GB in Kafka and more in PostgreSQL).
    """
    started = time.perf_counter()
    workload = stream(size, meeting_file=plan.meeting_file, positions=plan.positions, seed=plan.seed)
    async with scratch_namespace(settings, f"scale{size}") as cfg:
        ingested = await e2e.ingest(cfg, workload, plan.log_dir)
        await vacuum_log(cfg.pg_dsn)
        replayed = await replay.from_log_process(cfg, workload.meeting_id, plan.log_dir)
        rebuilt = await replay.rebuild(cfg, workload.meeting_id, plan.log_dir)
    point = point_of(size, ingested, replayed, rebuilt)
    # This process's peak RSS so far (it only grows): bounded by the chunk, not by the size, if streaming works.
    point["bench_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    point["seconds"] = round(time.perf_counter() - started)
    return point


def point_of(size: int, ingested: dict[str, Any], replayed: dict[str, Any], rebuilt: dict[str, Any]) -> dict[str, Any]:
    """One point of the curve from its ingest, replay and rebuild measurements."""
    return {
        "submissions": size,
        "publish_seconds": ingested["publish_seconds"],
        "ingest_wall_seconds": ingested["wall_seconds"],
        "ingest_per_s": ingested["submissions_per_s"],
        "cpu_us_per_submission": ingested["cpu_us_per_submission"],
        "ledger_peak_rss_mib": ingested["peak_rss_mib"].get("ledger"),
        "projector_peak_rss_mib": ingested["peak_rss_mib"].get("projector"),
        "replay_seconds": replayed["seconds"],
        "replay_events_per_s": replayed["events_per_s"],
        "replay_peak_rss_mib": replayed["peak_rss_mib"],
        "rebuild_seconds": rebuilt["seconds"],
        "rebuild_events_per_s": rebuilt["events_per_s"],
        "rebuild_peak_rss_mib": rebuilt["peak_rss_mib"],
    }


def merge_scale(results: dict[str, Any], scale_run: dict[str, Any], *, replace: bool = True) -> dict[str, Any]:
    """A main run's results with a scale-only run's points added, each marked with its run's date.

    A size measured by both: the scale-only one if ``replace`` (it was just run), else the main run's.
    """
    ours = {p["submissions"]: p for p in results.get("scale", [])}
    theirs = {p["submissions"]: {**p, "run": scale_run["date"]} for p in scale_run["scale"]}
    points = {**ours, **theirs} if replace else {**theirs, **ours}
    return {**results, "scale": sorted(points.values(), key=lambda p: p["submissions"])}


async def vacuum_log(dsn: str) -> dict[str, Any]:
    """VACUUM (ANALYZE) the freshly written log, timed, so replays measure a log at rest.

    Right after a million appends, autovacuum starts on its own schedule; a replay that met it ran
    at a third of its speed in one run and not in others. Its counters before are kept as evidence.
    """
    conn = await asyncpg.connect(dsn)
    try:
        before = await log_bench.autovacuum_counts(conn)
        started = time.perf_counter()
        await log_bench.vacuum_analyze(conn)
        return {"seconds": round(time.perf_counter() - started, 2), **before}
    finally:
        await conn.close()

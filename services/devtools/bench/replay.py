"""Replay: the pure fold in memory, and the log in PostgreSQL back to a complete tally."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from events import decode, decode_logged, logged_event
from projections.judge import Judge, Received
from projections.replay import Projection
from services.adapters.postgres.connect import PROJECTOR_ROLE, connect_as
from services.adapters.postgres.log import reads as log_reads
from services.devtools.bench import limits
from services.devtools.bench.processes import Sampler, Usage, cli, machine_processes, service_env
from services.devtools.bench.workload import Workload
from services.runtime.rebuild import replay_meeting
from services.settings import Settings
from services.settings import settings as settings_from_env


def pure_fold(workload: Workload) -> dict[str, Any]:
    """The fold alone over the accepted events in memory: the ceiling of any replay."""
    judge = Judge()
    log = [e for e in workload.admin if judge.judge(e) is None]
    # Judged on the payloads as published (their signatures, S2); the fold gets the events without auth.
    for event, (_, payload) in zip(workload.submissions, workload.submission_payloads, strict=True):
        if judge.judge(decode(payload), Received(payload)) is None:
            log.append(event)
    gc.collect()
    started = time.perf_counter()
    projection = Projection()
    projection.apply_many(log)
    seconds = time.perf_counter() - started
    tally = projection.tallies[workload.meeting_id]
    return {
        "events": len(log),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(log) / seconds),
        "present_shares": tally.present,
    }


async def from_log(meeting_id: str) -> dict[str, Any]:
    """The log's rows, read from PostgreSQL, decoded and folded into the meeting's tally.

    Then, on the same connection and with the GC paused as in the replay, the read alone (the replay's
    columns: the read limit; and whole rows) and the read plus decoding, so the replay's time splits into
    read, decode and fold; and the replay as it was before migration 019 (the payload read and parsed
    again), side by side in the same process.
    """
    conn = await connect_as(settings_from_env(), PROJECTOR_ROLE)  # service_env gives the login
    try:
        head = await log_reads.head(conn)
        gc.collect()
        started = time.perf_counter()
        tally, rows = await replay_meeting(conn, meeting_id, head)
        seconds = time.perf_counter() - started
        limit = await limits.read_limit(conn, meeting_id)  # the replay's columns, and whole rows
        read_seconds = limit["seconds"]
        decode_seconds = await limits.read_pass(limits.replay_reader(conn, meeting_id), _compact_decoded) - read_seconds
        before = await _payload_replay(conn, meeting_id, rows)
    finally:
        await conn.close()
    fold_seconds = max(seconds - read_seconds - decode_seconds, 1e-9)
    return {
        "log_rows": rows,
        "seconds": round(seconds, 2),
        "events_per_s": round(rows / seconds),
        "read_rows_per_s": round(rows / read_seconds),
        "read_full_rows_per_s": limit["full_rows_per_s"],
        "decode_events_per_s": round(rows / decode_seconds),
        "fold_events_per_s": round(rows / fold_seconds),
        "present_shares": tally.present,
        "voters": len(tally.voters),
        "payload_replay": before,
    }


def _compact_decoded(rows: list) -> list:
    return [logged_event(r["compact"], r["payload"]) for r in rows if r["decision"] == "accepted"]


def _payload_decoded(rows: list) -> list:
    return [decode_logged(r["payload"]) for r in rows if r["decision"] == "accepted"]


async def _payload_replay(conn: asyncpg.Connection, meeting_id: str, rows: int) -> dict[str, Any]:
    """The replay before migration 019: the payload read and parsed (no compact form), folded as the replay folds."""
    projection = Projection()
    read_seconds = await limits.read_pass(limits.payload_reader(conn, meeting_id))
    decode_seconds = await limits.read_pass(limits.payload_reader(conn, meeting_id), _payload_decoded) - read_seconds
    started = time.perf_counter()
    await limits.read_pass(
        limits.payload_reader(conn, meeting_id),
        lambda batch: projection.apply_many(_payload_decoded(batch), settle=False),
    )
    gc.disable()
    try:
        projection.settle()  # as replay_meeting does once at the end: counted in the fold
    finally:
        gc.enable()
    seconds = time.perf_counter() - started
    return {
        "events_per_s": round(rows / seconds),
        "read_rows_per_s": round(rows / read_seconds),
        "decode_events_per_s": round(rows / decode_seconds),
        "fold_events_per_s": round(rows / max(seconds - read_seconds - decode_seconds, 1e-9)),
        "present_shares": projection.tallies[meeting_id].present,
    }


async def rebuild(settings: Settings, meeting_id: str, log_dir: Path) -> dict[str, Any]:
    """`vote-ledger projections rebuild` as its own process: replay, shadow write, check, swap; peak RSS."""
    stdout, seconds, usage = await _measured(
        cli("projections", "rebuild", "--meeting", meeting_id), settings, log_dir / "rebuild.log"
    )
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await log_reads.meeting_row_count(conn, meeting_id)
    finally:
        await conn.close()
    output = stdout.decode().strip()
    # The command times its own work (replay, shadow writes, check, swap); the wall time adds the
    # interpreter's start-up and imports, about a second here.
    own = re.search(r"in ([0-9.]+) s", output)
    own_seconds = float(own.group(1)) if own else seconds
    return {
        "log_rows": rows,
        "seconds": round(own_seconds, 2),
        "events_per_s": round(rows / own_seconds),
        "process_seconds": round(seconds, 2),
        "peak_rss_mib": usage.peak_rss_mib.get("measured"),
        "cpu_seconds": usage.cpu_seconds,
        "output": output,
    }


async def from_log_process(settings: Settings, meeting_id: str, log_dir: Path) -> dict[str, Any]:
    """from_log in a process of its own, as an operator's replay would run: its own heap, its peak RSS."""
    code = (
        "import asyncio, json, sys; from services.devtools.bench.replay import from_log;"
        " print(json.dumps(asyncio.run(from_log(sys.argv[1]))))"
    )
    stdout, _, usage = await _measured([sys.executable, "-c", code, meeting_id], settings, log_dir / "replay.log")
    return {**json.loads(stdout), "peak_rss_mib": usage.peak_rss_mib.get("measured")}


async def _measured(argv: list[str], settings: Settings, log: Path) -> tuple[bytes, float, Usage]:
    """Run a command to completion, sampling its (and PostgreSQL's) CPU and memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=service_env(settings), stdout=asyncio.subprocess.PIPE, stderr=out
        )
        groups = {k: v for k, v in machine_processes({}).items() if k == "postgresql"}
        groups["measured"] = lambda: _proc(proc.pid)
        sampler = Sampler(groups, interval=0.1)
        sampler.start()
        started = time.perf_counter()
        try:
            stdout, _ = await proc.communicate()
        finally:
            seconds = time.perf_counter() - started
            usage = await sampler.stop()
            if proc.returncode is None:  # cancelled or failed while waiting: leave nothing running
                proc.kill()
                await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-4:])} failed ({proc.returncode}); see {log}")
    return stdout, seconds, usage


def _proc(pid: int) -> list:
    try:
        return [psutil.Process(pid)]
    except psutil.Error:
        return []

"""Operational status: log head, projector lag, rejects, parked messages and Kafka ingest lag."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from services.adapters.kafka.topic_clock import topic_clock
from services.adapters.kafka.topics import TOPIC_ROLES, partition_offsets
from services.adapters.postgres import standby, tally_store
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log import status as log_status
from services.adapters.postgres.tally_store import PROJECTION
from services.read.register import all_registers
from services.settings import Settings


async def database_status(conn: asyncpg.Connection, consumer_group: str | None = None) -> dict[str, Any]:
    """What the log and projections hold right now (offsets of one consumer group, or of all)."""
    head = await log_reads.head(conn)
    checkpoint = await tally_store.checkpoint(conn, PROJECTION)
    decisions = await log_status.decision_counts(conn)
    parked = await log_status.parked_reasons(conn)
    offsets = await log_status.stored_offsets(conn, consumer_group)
    return {
        "as_of_position": head,  # the position every answer of the API carries (X-Log-Position)
        "log_head": head,
        "projector_checkpoint": checkpoint,
        "projector_lag": head - checkpoint,
        "accepted": sum(r["n"] for r in decisions if r["decision"] == "accepted"),
        "rejected": {r["reason"]: r["n"] for r in decisions if r["decision"] == "rejected"},
        "parked": sum(r["n"] for r in parked),
        "parked_reasons": {r["reason"]: r["n"] for r in parked},
        "stored_offsets": {(r["topic"], r["partition"]): r["next_offset"] for r in offsets},
        "offsets_idle_s": {(r["topic"], r["partition"]): float(r["idle_s"]) for r in offsets},
        # Meetings the projector skips since their rows could not be projected (011_projector.sql).
        "failed_meetings": await tally_store.failure_report(conn, PROJECTION),
        # "primary", or "standby" with its replay lag: a standby's answers are as of what it replayed.
        **await standby.database_role(conn),
    }


async def kafka_partitions(
    settings: Settings, stored: dict[tuple[str, int], int], idle_s: dict[tuple[str, int], float] | None = None
) -> dict[str, Any]:
    """Per topic, messages published but not yet committed to the log; and the alarms on partitions.

    ``stalled``: records wait but the committed offset has not moved for the stall watch's limit
    (see services/runtime/stall_watch.py). ``behind_log_start``: the committed offset is below the first
    offset Kafka still has, so records were deleted or expired before the ledger logged them.
    """
    topics = [settings.submissions_topic, settings.admin_topic]
    lag = dict.fromkeys(topics, 0)
    stalled, behind, ahead = [], [], []
    for key, (start, end) in sorted((await partition_offsets(settings, topics)).items()):
        topic, partition = key
        committed = stored.get(key, 0)
        lag[topic] += end - committed
        if committed < start:
            behind.append({"partition": f"{topic}/{partition}", "committed": committed, "log_start": start})
        if committed > end:  # the topic was recreated, or the offsets changed by hand: the ledger pauses it
            ahead.append({"partition": f"{topic}/{partition}", "committed": committed, "end": end})
        idle = (idle_s or {}).get(key)
        if end > committed and idle is not None and idle >= settings.stall_after_s * 3:
            stalled.append(
                {"partition": f"{topic}/{partition}", "committed": committed, "end": end, "idle_s": round(idle)}
            )
    return {"ingest_lag": lag, "stalled_partitions": stalled, "behind_log_start": behind, "beyond_end": ahead}


async def status(conn: asyncpg.Connection, settings: Settings, with_registers: bool = True) -> dict[str, Any]:
    """Database status plus Kafka ingest lag and partition alarms, and (by default) every meeting's register."""
    db = await database_status(conn, settings.consumer_group)
    db.update(await kafka_partitions(settings, db["stored_offsets"], db.pop("offsets_idle_s")))
    db["stored_offsets"] = {f"{t}/{p}": o for (t, p), o in sorted(db["stored_offsets"].items())}
    db["submissions_clock"] = await submissions_clock(settings)
    # "" or the line naming the synchronous standby the primary's commits wait for: the cause behind a
    # STALLED partition when the standby is down (before this, nothing named it and operators chased Kafka).
    db["commits_wait"] = await standby.sync_standby_wait(conn)
    if with_registers:
        db["registers"] = await registers(conn)
    return db


async def registers(conn: asyncpg.Connection) -> dict[str, Any]:
    """Per meeting, its register against what a complete one holds (docs/rules.md, "Register completeness").

    It reads every register chunk's payload: 1 to 3 s for 10^6 positions (services/adapters/postgres/log/
    register.py), so `status --wait` reads it once, when it returns, not at every poll.
    """
    return {meeting_id: state.as_dict() for meeting_id, state in (await all_registers(conn)).items()}


async def submissions_clock(settings: Settings) -> dict[str, Any]:
    """Which clock stamps votes.submissions (review M4): the broker's (LogAppendTime), or the warning why not."""
    clock = await topic_clock(settings, settings.submissions_topic, TOPIC_ROLES)
    return {
        "topic": clock.topic,
        "timestamp_type": clock.timestamp_type,
        "broker_clock": clock.broker_clock,
        "warning": clock.warning(settings.kafka_bootstrap),
    }


async def wait_caught_up(conn: asyncpg.Connection, settings: Settings, timeout: float) -> dict[str, Any]:
    """Wait until Kafka lag and projector lag are both zero (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        current = await status(conn, settings, with_registers=False)
        if (not any(current["ingest_lag"].values()) and current["projector_lag"] == 0) or time.monotonic() > deadline:
            current["registers"] = await registers(conn)
            return current
        await asyncio.sleep(0.5)

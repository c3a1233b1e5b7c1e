"""The log's admin rows, and the one way to rebuild a judge from them (load_judge)."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from events import ADMIN_TAGS, JUDGE_TAGS
from projections.judge import Judge
from projections.judge_rebuild import Rebuilt, rebuild_judge

# Literal types so the planner can use the partial index ledger_log_admin_rows (016_amendments.sql).
_JUDGE_TYPES_SQL = ", ".join(f"'{t}'" for t in JUDGE_TAGS)
_ADMIN_ROWS = (
    f"SELECT position, meeting_id, payload FROM ledger_log WHERE type IN ({_JUDGE_TYPES_SQL}) AND decision = 'accepted'"
    " AND position > $1 AND ($2::bigint IS NULL OR position <= $2)"
)


async def admin_rows(
    conn: asyncpg.Connection, *, meeting_id: str | None = None, after: int = 0, up_to: int | None = None
) -> list[asyncpg.Record]:
    """(position, meeting_id, payload) of the accepted rows a judge is rebuilt from, in a range, in log order."""
    if meeting_id is None:
        return await conn.fetch(_ADMIN_ROWS + " ORDER BY position", after, up_to)
    return await conn.fetch(_ADMIN_ROWS + " AND meeting_id = $3 ORDER BY position", after, up_to, meeting_id)


# Event ids are unique per meeting (R18, migration 015): the same id may be another meeting's admin event.
_ADMIN_TYPES_SQL = ", ".join(f"'{t}'" for t in ADMIN_TAGS)
_DECISION = (
    f"SELECT position, decision, reason FROM ledger_log WHERE event_id = $1 AND meeting_id = $2"
    f" AND type IN ({_ADMIN_TYPES_SQL}) ORDER BY position LIMIT 1"
)


async def admin_decision(conn: asyncpg.Connection, meeting_id: str, event_id: str) -> asyncpg.Record | None:
    """(position, decision, reason) of the meeting's admin event logged under this event id, if any."""
    return await conn.fetchrow(_DECISION, event_id, meeting_id)


async def load_judge(
    conn: asyncpg.Connection,
    judge: Judge | None = None,
    *,
    meeting_id: str | None = None,
    after: int = 0,
    up_to: int | None = None,
    isolate: bool = False,
    skip: Collection[str] = (),
) -> Rebuilt:
    """The judge (``judge`` advanced, or a new one) with the accepted admin rows in (after, up_to] applied.

    ``meeting_id`` limits it to one meeting; ``isolate`` and ``skip`` are rebuild_judge's (the
    projector isolates a meeting whose row fails, everyone else lets it raise).
    """
    rows = await admin_rows(conn, meeting_id=meeting_id, after=after, up_to=up_to)
    return rebuild_judge(
        ((r["position"], r["meeting_id"], r["payload"]) for r in rows), judge, isolate=isolate, skip=skip
    )

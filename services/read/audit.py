"""Read side for auditors: one control number's vote lineage, and filtered views of the log."""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any

import asyncpg

from events import MalformedMessage, PollsClosed, VoteCast, VoteRevoked, decode
from events.schema import Channel
from projections.diff import replay_to
from projections.judge import Judge
from projections.lineage import LogEntry, Ref, Status, counting_refs, lineage
from services.adapters.postgres.log_store import ADMIN_TYPES
from services.read.tallies import UnknownMeeting, require_logged
from services.read.time_travel import accepted_entries

DECISIONS = ("accepted", "rejected")
CHANNELS = typing.get_args(Channel)
_ADMIN_TYPES_SQL = ", ".join(f"'{t}'" for t in ADMIN_TYPES)


async def read_history(conn: asyncpg.Connection, meeting_id: str, control_number: str) -> dict[str, Any]:
    """Every log row of a control number, in log order, with what became of it (R5-R7, R10, R12, R17)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        judge, closures = Judge(), []
        # Literal types so the planner can use the partial index ledger_log_admin_rows.
        for row in await conn.fetch(
            f"SELECT position, payload FROM ledger_log WHERE type IN ({_ADMIN_TYPES_SQL})"
            " AND decision = 'accepted' AND meeting_id = $1 ORDER BY position",
            meeting_id,
        ):
            event = decode(row["payload"])
            judge.apply_accepted(event)
            if isinstance(event, PollsClosed):
                closures.append((row["position"], event))
        meeting = judge.meetings.get(meeting_id)
        if meeting is None:
            raise UnknownMeeting(meeting_id)
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")
        rows = await conn.fetch(
            "SELECT position, event_id, type, channel, executed_at, received_at, recorded_at, decision, reason,"
            " payload FROM ledger_log WHERE meeting_id = $1 AND control_number = $2 AND position <= $3"
            " ORDER BY position",
            meeting_id,
            control_number,
            head,
        )
        entries = [LogEntry(r["position"], r["decision"], r["reason"], _decoded(r["payload"])) for r in rows]
        state = None
        position = meeting.positions.get(control_number)
        if meeting.spec.overvote_policy == "reject" and position is not None and position.kind == "beneficial":
            # R17 `reject` turns on the nominee's other voters: fold the whole meeting to the same
            # head, so the refusals come from exactly the rows shown.
            tally = replay_to(await accepted_entries(conn, meeting_id, head), head).tallies[meeting_id]
            state = tally.voters.get(control_number)
    statuses = lineage(meeting, entries, state, closures)
    counts, fills = counting_refs(statuses)
    return {
        "meeting_id": meeting_id,
        "control_number": control_number,
        "register": (
            {
                "kind": position.kind,
                "shares": position.shares,
                "holders": list(position.holders),
                "nominee": position.nominee,
            }
            if position is not None
            else None
        ),
        "log_position": head,
        "counts": _ref(counts),
        "fills": _ref(fills),
        "rows": [_history_row(r, e, s) for r, e, s in zip(rows, entries, statuses, strict=False)],
    }


async def read_events(
    conn: asyncpg.Connection,
    meeting_id: str,
    *,
    channel: str | None = None,
    submitted_by: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    decision: str | None = None,
    reason: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """A meeting's log rows matching every given filter, in log order, at most ``limit`` of them.

    The received_at window is half-open, [received_from, received_to), so consecutive windows
    never count a row twice.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_logged(conn, meeting_id)
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")
        rows = await conn.fetch(
            "SELECT position, event_id, type, control_number, channel, payload->>'submitted_by' AS submitted_by,"
            " executed_at, received_at, recorded_at, decision, reason FROM ledger_log WHERE meeting_id = $1"
            " AND ($2::text IS NULL OR channel = $2) AND ($3::text IS NULL OR payload->>'submitted_by' = $3)"
            " AND ($4::timestamptz IS NULL OR received_at >= $4) AND ($5::timestamptz IS NULL OR received_at < $5)"
            " AND ($6::text IS NULL OR decision = $6) AND ($7::text IS NULL OR reason = $7)"
            " AND position <= $8 ORDER BY position LIMIT $9",
            meeting_id,
            channel,
            submitted_by,
            received_from,
            received_to,
            decision,
            reason,
            head,
            limit + 1,
        )
    return {
        "meeting_id": meeting_id,
        "log_position": head,
        "filters": {
            "channel": channel,
            "submitted_by": submitted_by,
            "from": _iso(received_from),
            "to": _iso(received_to),
            "decision": decision,
            "reason": reason,
            "limit": limit,
        },
        "events": [
            {
                "position": r["position"],
                "event_id": r["event_id"],
                "type": r["type"],
                "control_number": r["control_number"],
                "channel": r["channel"],
                "submitted_by": r["submitted_by"],
                "executed_at": _iso(r["executed_at"]),
                "received_at": _iso(r["received_at"]),
                "recorded_at": _iso(r["recorded_at"]),
                "decision": r["decision"],
                "reason": r["reason"],
            }
            for r in rows[:limit]
        ],
        "truncated": len(rows) > limit,
    }


def _decoded(payload: str) -> Any:
    """The row's event; None if its stored payload no longer decodes (it is still shown)."""
    try:
        return decode(payload)
    except MalformedMessage:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ref(ref: Ref | None) -> dict[str, Any] | None:
    return {"position": ref.position, "event_id": ref.event_id} if ref is not None else None


def _history_row(row: asyncpg.Record, entry: LogEntry, status: Status) -> dict[str, Any]:
    """One row of the history: what was submitted, the ledger's decision, and what became of it."""
    event = entry.event
    submitted = isinstance(event, (VoteCast, VoteRevoked))
    result = {
        "position": row["position"],
        "event_id": row["event_id"],
        "type": row["type"],
        "channel": row["channel"],
        "submitted_by": event.submitted_by if submitted else None,
        # As submitted, with the channel's own offset; the columns hold the same instants in UTC.
        "executed_at": _iso(event.executed_at if submitted else row["executed_at"]),
        "received_at": _iso(event.received_at if submitted else row["received_at"]),
        "recorded_at": _iso(row["recorded_at"]),
        "decision": row["decision"],
        "reason": row["reason"],
        "status": status.status,
        "rule": status.rule,
        "by": _ref(status.by),
        "items": list(status.items),
        "voids": [_ref(v) for v in status.voids],
    }
    if isinstance(event, VoteCast):
        result.update(shares=event.shares, choices=event.choices, discretionary=event.discretionary)
    return result

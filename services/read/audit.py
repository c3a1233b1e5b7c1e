"""Read side for auditors: one control number's vote lineage, and filtered views of the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from events import MalformedMessage, PollsClosed, VoteCast, VoteRevoked, decode
from projections.amendments import as_amended
from projections.diff import replay_to
from projections.lineage import LogEntry, Ref, Status, lineage
from projections.lineage_status import presence
from services.adapters.postgres.log import admin as log_admin
from services.adapters.postgres.log import history as log_history
from services.adapters.postgres.log import reads as log_reads
from services.read.errors import UnknownMeeting
from services.read.meeting import require_logged
from services.read.time_travel import accepted_entries


async def read_history(conn: asyncpg.Connection, meeting_id: str, control_number: str) -> dict[str, Any]:
    """Every log row of a control number, in log order, with what became of it (R5-R7, R10, R12, R17)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rebuilt = await log_admin.load_judge(conn, meeting_id=meeting_id)
        closures = [(at, event) for at, event in rebuilt.applied if isinstance(event, PollsClosed)]
        meeting = rebuilt.judge.meetings.get(meeting_id)
        if meeting is None:
            raise UnknownMeeting(meeting_id)
        head = await log_reads.head(conn)
        rows = await log_history.control_number_rows(conn, meeting_id, control_number, head)
        entries = [LogEntry(r["position"], r["decision"], r["reason"], _decoded(r["payload"])) for r in rows]
        state = None
        position = meeting.positions.get(control_number)
        if meeting.spec.overvote_policy == "reject" and position is not None and position.kind == "beneficial":
            # R17 `reject` turns on the nominee's other voters: fold the whole meeting to the same
            # head, so the refusals come from exactly the rows shown.
            tally = replay_to(await accepted_entries(conn, meeting_id, head), head).tallies[meeting_id]
            state = tally.voters.get(control_number)
    statuses = lineage(meeting, entries, state, closures)
    present = presence(statuses)
    return {
        "meeting_id": meeting_id,
        "control_number": control_number,
        "as_of_position": head,  # the position every API answer carries; the same as log_position here
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
        **({"meeting": as_amended(meeting, rebuilt.applied)} if meeting.amendments else {}),  # as amended by then
        "counts": _ref(present.counts),  # on the items still open (or closed last)
        "fills": _ref(present.fills),
        # As the tally counts it (R14): an attendance (R6), or an instruction counting on an item closed
        # before the others (R12 per item), makes the holder present though "counts" is null.
        "present": present.present,
        "attends": _ref(present.attends),
        "counts_on_items": [{"item": item, **(_ref(ref) or {})} for item, ref in present.on_items],
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
        head = await log_reads.head(conn)
        rows = await log_history.filtered_rows(
            conn,
            meeting_id,
            channel=channel,
            submitted_by=submitted_by,
            received_from=received_from,
            received_to=received_to,
            decision=decision,
            reason=reason,
            up_to=head,
            limit=limit + 1,
        )
    return {
        "meeting_id": meeting_id,
        "as_of_position": head,  # the position every API answer carries; the same as log_position here
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
                "appended_at": _iso(r["appended_at"]),  # the broker's clock (null: not recorded)
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
        "appended_at": _iso(row["appended_at"]),  # the broker's clock, which R12 and S3 may judge on
        "recorded_at": _iso(row["recorded_at"]),
        "decision": row["decision"],
        "reason": row["reason"],
        "status": status.status,
        "rule": status.rule,
        "by": _ref(status.by),
        "items": list(status.items),
        "voids": [_ref(v) for v in status.voids],
        # R12 per item: what the row is on each item closed before the others (empty: the same on every item).
        "per_item": [{"item": s.item, "status": s.status, "rule": s.rule, "by": _ref(s.by)} for s in status.per_item],
    }
    if isinstance(event, VoteCast):
        result.update(shares=event.shares, choices=event.choices, discretionary=event.discretionary)
    return result

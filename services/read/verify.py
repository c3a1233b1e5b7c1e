"""`audit verify` against the database: the hash chains, global positions, published heads, the tally."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from events import decode
from projections.chain import Anchor, Break, ChainCheck, ChainRow, ParkedCheck, ParkedRow
from projections.heads import Head, HeadCheck
from projections.rejudge import Misjudged, Rejudge, scheduled_problem
from projections.replay import Projection
from services.adapters.postgres import tally_store
from services.read.tallies import UnknownMeeting
from services.runtime.projector import PROJECTION, refold_late

_ROWS = (
    "SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload, hash,"
    " chain_version, recorded_at, source_topic, source_partition, source_offset,"
    " control_number, channel, executed_at, received_at"
    " FROM ledger_log WHERE meeting_id = $1 ORDER BY position"
)
PARKED_ROWS = (
    "SELECT id, prev_id, source_topic, source_partition, source_offset, key, value, reason, detail,"
    " parked_at, hash FROM ledger_parked ORDER BY id"
)


@dataclass
class Verification:
    """What `audit verify` found; ``ok`` only if every check that ran holds."""

    meeting_id: str
    rows: int = 0
    v1_rows: int = 0  # logged before migration 010: recorded_at and the source not covered
    final_hash: str | None = None
    chain_break: Break | None = None
    position_gap: int | None = None  # first global position missing from the log
    checkpoint: int = 0
    tally_compared: bool = False
    tally_mismatches: list[str] = field(default_factory=list)
    misjudged: Misjudged | None = None  # a row the rules would have decided otherwise (forged?)
    # The final hash differs from one published earlier (report footer, export manifest): rows
    # were removed from the end, or the chain was re-hashed after an edit.
    anchor_mismatch: bool = False
    problems: list[str] = field(default_factory=list)
    parked: ParkedCheck = field(default_factory=ParkedCheck)
    # Heads published on ledger.heads; None when they were not checked (say so, plainly).
    heads: HeadCheck | None = None
    parked_heads: HeadCheck | None = None
    heads_skipped: str | None = None
    heads_topic: str | None = None

    @property
    def ok(self) -> bool:
        """Whether everything verified."""
        return (
            self.chain_break is None
            and self.position_gap is None
            and not self.tally_mismatches
            and not self.anchor_mismatch
            and self.misjudged is None
            and not self.problems
            and self.parked.first_break is None
            and not (self.heads and self.heads.failures)
            and not (self.parked_heads and self.parked_heads.failures)
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "meeting_id": self.meeting_id,
            "ok": self.ok,
            "rows": self.rows,
            "chain_v1_rows": self.v1_rows,
            "final_hash": self.final_hash,
            "chain_break": None if self.chain_break is None else vars(self.chain_break),
            "first_missing_position": self.position_gap,
            "checkpoint": self.checkpoint,
            "tally_compared": self.tally_compared,
            "tally_mismatches": self.tally_mismatches,
            "anchor_mismatch": self.anchor_mismatch,
            "misjudged": None if self.misjudged is None else vars(self.misjudged),
            "problems": self.problems,
            "parked": self.parked.as_dict(),
            "heads": None
            if self.heads is None
            else {"meeting": self.heads.as_dict(), "parked": self.parked_heads.as_dict()},
            "heads_skipped": self.heads_skipped,
            "heads_topic": self.heads_topic,
        }


# Columns the ledger copies out of the payload for indexing; the hash covers only the payload.
_COPIED = ("control_number", "channel", "executed_at", "received_at")


def chain_row(record: asyncpg.Record) -> ChainRow:
    """A log row as the chain sees it."""
    return ChainRow(
        record["position"],
        record["prev_position"],
        record["meeting_id"],
        record["event_id"],
        record["type"],
        record["decision"],
        record["reason"],
        record["payload"],
        bytes(record["hash"]) if record["hash"] is not None else None,
        record["chain_version"],
        record["recorded_at"],
        record["source_topic"],
        record["source_partition"],
        record["source_offset"],
    )


def parked_row(record: asyncpg.Record) -> ParkedRow:
    """A parked message as its chain sees it."""
    return ParkedRow(
        record["id"],
        record["prev_id"],
        record["source_topic"],
        record["source_partition"],
        record["source_offset"],
        _bytes(record["key"]),
        _bytes(record["value"]),
        record["reason"],
        record["detail"],
        record["parked_at"],
        _bytes(record["hash"]),
    )


def _bytes(value) -> bytes | None:
    return None if value is None else bytes(value)


async def verify_meeting(
    conn: asyncpg.Connection,
    meeting_id: str,
    expect_hash: str | None = None,
    heads: list[Head] | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Verification:
    """Recompute the meeting's chain, the parked chain and its tally from scratch; compare with the
    projection and, if given, with every head published for them.

    ``expect_hash``: ``HEX`` (the chain must end on it) or ``POSITION:HEX`` (the meeting's chain hash
    at that position, e.g. from a final report's footer). ``heads``: everything read from
    ``ledger.heads`` *before* this call (a head published later may name rows this snapshot lacks);
    None to skip that check. Raises UnknownMeeting if the log has no row of the meeting and no head
    was ever published for it: there is nothing to verify. ``on_progress(position, of)``: called now
    and then with the log position reached and the projector's checkpoint (or beyond), for a progress bar.
    """
    result = Verification(meeting_id)
    check, rejudge, anchor = ChainCheck(), Rejudge(), Anchor.parse(expect_hash)
    if heads is not None:
        result.heads = HeadCheck([h for h in heads if h.chain == "meeting" and h.meeting_id == meeting_id])
        result.parked_heads = HeadCheck([h for h in heads if h.chain == "parked"])
    projection, scheduled = Projection(), False
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        result.checkpoint = await tally_store.checkpoint(conn, PROJECTION)
        # A deleted row leaves a hole in the global positions even when it was a meeting's last.
        result.position_gap = await conn.fetchval(
            "SELECT min(position) + 1 FROM (SELECT position, lead(position) OVER (ORDER BY position) AS next"
            " FROM ledger_log) AS p WHERE next IS NOT NULL AND next <> position + 1"
        )
        if result.position_gap is None and await conn.fetchval("SELECT min(position) FROM ledger_log") not in (None, 1):
            result.position_gap = 1
        batch: list = []
        async for record in conn.cursor(_ROWS, meeting_id, prefetch=5000):
            row = chain_row(record)
            check.feed([row])
            event = decode(row.payload)
            rejudge.feed(
                row.position,
                row.type,
                row.decision,
                row.reason,
                event,
                {name: record[name] for name in _COPIED if record[name] is not None},
            )
            anchor.feed(row.position, row.hash)
            if on_progress is not None and check.rows % 10_000 == 0:
                on_progress(row.position, max(row.position, result.checkpoint))
            if result.heads is not None:
                result.heads.feed([(row.position, row.hash)])
            scheduled = scheduled or (row.type == "meeting.scheduled" and row.decision == "accepted")
            # Accepted rows of a meeting never scheduled cannot be folded; that is reported instead.
            if scheduled and row.position <= result.checkpoint and row.decision == "accepted":
                batch.append(event)
                if len(batch) >= 20_000:
                    projection.apply_many(batch)
                    batch = []
        async for record in conn.cursor(PARKED_ROWS, prefetch=1000):
            row = parked_row(record)
            result.parked.feed([row])
            if result.parked_heads is not None and row.hash is not None:
                result.parked_heads.feed([(row.position, row.hash)])
        # R18: a duplicate_event_id rejection stands for a message that came after its id was
        # applied; one without such a row would hide a vote behind a made-up rejection.
        orphan = await conn.fetchval(
            "SELECT min(d.position) FROM ledger_log d WHERE d.meeting_id = $1 AND d.reason = 'duplicate_event_id'"
            " AND NOT EXISTS (SELECT FROM ledger_log o WHERE o.event_id = d.event_id AND o.position < d.position"
            " AND o.decision = 'accepted')",
            meeting_id,
        )
        if orphan is not None:
            result.problems.append(
                f"row {orphan} is rejected as duplicate_event_id, but no earlier row applied its event_id"
            )
        projection.apply_many(batch)
        await refold_late(conn, projection, result.checkpoint)
        projected = (
            await tally_store.load_tally(conn, projection.tallies[meeting_id].meeting)
            if meeting_id in projection.tallies
            else None
        )
    if heads is not None:
        result.heads.finish()
        result.parked_heads.finish()
    if check.rows == 0 and not (result.heads and result.heads.heads):
        raise UnknownMeeting(meeting_id)
    result.rows, result.v1_rows, result.chain_break = check.rows, check.v1_rows, check.first_break
    result.final_hash = check.last_hash.hex() if check.rows else None
    result.anchor_mismatch = not anchor.holds(result.final_hash)
    result.misjudged = rejudge.first
    result.problems += scheduled_problem(meeting_id, check.rows, scheduled)
    if projected is not None:
        result.tally_compared = True
        result.tally_mismatches = compare(projection.tallies[meeting_id], projected)
    return result


def compare(recomputed, projected) -> list[str]:
    """Differences between a from-scratch fold and the projection tables (present, buckets)."""
    problems = []
    if recomputed.present != projected.present:
        problems.append(f"present: projected {projected.present:,}, recomputed {recomputed.present:,}")
    for key in sorted(set(recomputed.buckets) | set(projected.buckets)):
        a, b = projected.buckets.get(key, 0), recomputed.buckets.get(key, 0)
        if a != b:
            item, option, nominee = key
            problems.append(f"item {item} {option} {nominee or 'registered'}: projected {a:,}, recomputed {b:,}")
    return problems

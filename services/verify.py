"""`audit verify` against the database: the hash chain, global positions, and the tally itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from projections.chain import Anchor, Break, ChainCheck, ChainRow
from projections.rejudge import Misjudged, Rejudge
from projections.replay import Projection
from events import decode
from services.postgres import tally_store
from services.projector import PROJECTION, refold_late

_ROWS = ("SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload, hash,"
         " control_number, channel, executed_at, received_at"
         " FROM ledger_log WHERE meeting_id = $1 ORDER BY position")


@dataclass
class Verification:
    """What `audit verify` found; ``ok`` only if the chain, positions and tally all hold."""

    meeting_id: str
    rows: int = 0
    final_hash: str | None = None
    chain_break: Break | None = None
    position_gap: int | None = None  # first global position missing from the log
    checkpoint: int = 0
    tally_mismatches: list[str] = field(default_factory=list)
    misjudged: Misjudged | None = None  # a row the rules would have decided otherwise (forged?)
    # The final hash differs from one published earlier (report footer, export manifest): rows
    # were removed from the end, or the chain was re-hashed after an edit.
    anchor_mismatch: bool = False

    @property
    def ok(self) -> bool:
        """Whether everything verified."""
        return (self.chain_break is None and self.position_gap is None and not self.tally_mismatches
                and not self.anchor_mismatch and self.misjudged is None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "meeting_id": self.meeting_id, "ok": self.ok, "rows": self.rows, "final_hash": self.final_hash,
            "chain_break": None if self.chain_break is None else vars(self.chain_break),
            "first_missing_position": self.position_gap, "checkpoint": self.checkpoint,
            "tally_mismatches": self.tally_mismatches, "anchor_mismatch": self.anchor_mismatch,
            "misjudged": None if self.misjudged is None else vars(self.misjudged),
        }


# Columns the ledger copies out of the payload for indexing; the hash covers only the payload.
_COPIED = ("control_number", "channel", "executed_at", "received_at")


def chain_row(record: asyncpg.Record) -> ChainRow:
    """A log row as the chain sees it."""
    return ChainRow(record["position"], record["prev_position"], record["meeting_id"], record["event_id"],
                    record["type"], record["decision"], record["reason"], record["payload"],
                    bytes(record["hash"]) if record["hash"] is not None else None)


async def verify_meeting(conn: asyncpg.Connection, meeting_id: str, expect_hash: str | None = None) -> Verification:
    """Recompute the meeting's chain and its tally from scratch; compare with the projection.

    ``expect_hash``: ``HEX`` (the chain must end on it) or ``POSITION:HEX`` (the meeting's chain hash
    at that position, e.g. from a final report's footer).
    """
    result = Verification(meeting_id)
    check, rejudge, anchor = ChainCheck(), Rejudge(), Anchor.parse(expect_hash)
    projection = Projection()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        result.checkpoint = await tally_store.checkpoint(conn, PROJECTION)
        # A deleted row leaves a hole in the global positions even when it was a meeting's last.
        result.position_gap = await conn.fetchval(
            "SELECT min(position) + 1 FROM (SELECT position, lead(position) OVER (ORDER BY position) AS next"
            " FROM ledger_log) AS p WHERE next IS NOT NULL AND next <> position + 1")
        if result.position_gap is None and await conn.fetchval("SELECT min(position) FROM ledger_log") not in (None, 1):
            result.position_gap = 1
        batch: list = []
        async for record in conn.cursor(_ROWS, meeting_id, prefetch=5000):
            row = chain_row(record)
            check.feed([row])
            event = decode(row.payload)
            rejudge.feed(row.position, row.type, row.decision, row.reason, event,
                         {name: record[name] for name in _COPIED if record[name] is not None})
            anchor.feed(row.position, row.hash)
            if row.position <= result.checkpoint and row.decision == "accepted":
                batch.append(event)
                if len(batch) >= 20_000:
                    projection.apply_many(batch)
                    batch = []
        projection.apply_many(batch)
        await refold_late(conn, projection, result.checkpoint)
        projected = await tally_store.load_tally(conn, projection.tallies[meeting_id].meeting) \
            if meeting_id in projection.tallies else None
    result.rows, result.chain_break = check.rows, check.first_break
    result.final_hash = check.last_hash.hex() if check.rows else None
    result.anchor_mismatch = not anchor.holds(result.final_hash)
    result.misjudged = rejudge.first
    if projected is not None:
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

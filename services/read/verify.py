"""`audit verify` against the database: the hash chains, global positions, published heads, the tally."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from events import compact_state, decode
from events.compact import ABSENT, MISMATCH, OTHER_FORMAT
from projections.chain import Break, ParkedCheck
from projections.chain_walk import ChainWalk
from projections.heads import Head, HeadCheck
from projections.refusals import RefusalCheck
from projections.rejudge import Misjudged
from projections.replay import Projection
from projections.tally_compare import compare
from services.adapters.postgres import standby, tally_store
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log import verify as log_verify
from services.adapters.postgres.log.refold import refold_late
from services.adapters.postgres.tally_store import PROJECTION
from services.read.errors import UnknownMeeting


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
    # compact_mismatch: rows whose compact form (migration 019, which the folds read) is not their payload's
    # decoding, or cannot be decoded: {"position": the first, "rows": how many}; None when every one holds.
    # Rows logged before 019 have none (rows_without_compact), and rows whose compact form has another format
    # byte (rows_other_compact_format: written by another version) are not read: the folds decode their payload.
    compact_mismatch: dict[str, int] | None = None
    rows_without_compact: int = 0
    rows_other_compact_format: int = 0
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
    # The register's completeness as the meeting's accepted rows hold it (None: never scheduled). Not
    # part of ``ok``, which is about the log holding together: the CLI exits 3 for an incomplete one.
    register: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether everything verified."""
        return (
            self.chain_break is None
            and self.position_gap is None
            and not self.tally_mismatches
            and not self.anchor_mismatch
            and self.misjudged is None
            and self.compact_mismatch is None
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
            "compact_mismatch": self.compact_mismatch,
            "rows_without_compact": self.rows_without_compact,
            "rows_other_compact_format": self.rows_other_compact_format,
            "problems": self.problems,
            "parked": self.parked.as_dict(),
            "heads": None
            if self.heads is None
            else {"meeting": self.heads.as_dict(), "parked": self.parked_heads.as_dict()},
            "heads_skipped": self.heads_skipped,
            "heads_topic": self.heads_topic,
            "register": self.register,
        }


# On a hot standby the published heads (read from Kafka first) may name rows it has not replayed yet:
# the ledger publishes a head once its commit returned on the primary, and a synchronous standby has
# then received the commit but may not have applied it. verify_meeting waits this long for them, so a
# standby a moment behind does not read as a log cut short; a log really cut short never catches up
# and is reported after the wait.
REPLAY_WAIT_S = 30.0
REPLAY_POLL_S = 0.2

# Columns the ledger copies out of the payload for indexing; the hash covers only the payload.
_COPIED = ("control_number", "channel", "executed_at", "received_at")


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
    walk = ChainWalk.expecting(expect_hash)
    if heads is not None:
        result.heads = HeadCheck([h for h in heads if h.chain == "meeting" and h.meeting_id == meeting_id])
        result.parked_heads = HeadCheck([h for h in heads if h.chain == "parked"])
    if heads is not None and await standby.in_recovery(conn):
        behind = await replay_reaches(conn, heads, meeting_id)
        if behind:
            result.problems.append(behind)
    projection = Projection()
    refusals = RefusalCheck()  # R19: the vote.refused rows against a fold of every accepted row (reject meetings)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        result.checkpoint = await tally_store.checkpoint(conn, PROJECTION)
        result.position_gap = await log_verify.first_missing_position(conn)
        batch: list = []
        async for record in log_verify.chain_rows(conn, meeting_id):
            row = log_verify.chain_row(record)
            event = decode(row.payload)
            # The folds read the compact form, not the payload: it must be the payload's decoding (compact_mismatch).
            state = compact_state(record["compact"], event)
            if state == ABSENT:
                result.rows_without_compact += 1
            elif state == OTHER_FORMAT:
                result.rows_other_compact_format += 1
            elif state == MISMATCH:
                first = result.compact_mismatch or {"position": row.position, "rows": 0}
                result.compact_mismatch = {**first, "rows": first["rows"] + 1}
            walk.feed(row, event, {name: record[name] for name in _COPIED if record[name] is not None})
            refusals.feed(row.position, row.type, row.decision, row.reason, event, row.source_topic is not None)
            if on_progress is not None and walk.rows % 10_000 == 0:
                on_progress(row.position, max(row.position, result.checkpoint))
            if result.heads is not None:
                result.heads.feed([(row.position, row.hash)])
            # Accepted rows of a meeting never scheduled cannot be folded; that is reported instead.
            if walk.scheduled and row.position <= result.checkpoint and row.decision == "accepted":
                batch.append(event)
                if len(batch) >= 20_000:
                    projection.apply_many(batch)
                    batch = []
        if on_progress is not None and walk.check.last_position is not None:  # every row of it read: a full bar
            on_progress(walk.check.last_position, walk.check.last_position)
        async for record in log_verify.parked_rows(conn):
            row = log_verify.parked_row(record)
            result.parked.feed([row])
            if result.parked_heads is not None and row.hash is not None:
                result.parked_heads.feed([(row.position, row.hash)])
        # R18: a duplicate_event_id rejection stands for a message that came after its id was
        # applied in its meeting; one without such a row would hide a vote behind a made-up rejection.
        orphan = await log_verify.orphan_duplicate(conn, meeting_id)
        if orphan is not None:
            result.problems.append(
                f"row {orphan} is rejected as duplicate_event_id, but no earlier row of its meeting applied its id"
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
    if walk.rows == 0 and not (result.heads and result.heads.heads):
        raise UnknownMeeting(meeting_id)
    result.rows, result.v1_rows, result.chain_break = walk.rows, walk.v1_rows, walk.chain_break
    result.final_hash = walk.final_hash
    result.anchor_mismatch = not walk.anchor_holds()
    result.misjudged = walk.misjudged
    result.problems += walk.problems(meeting_id)
    meeting = walk.rejudge.judge.meetings.get(meeting_id)  # every row re-judged: the whole register
    result.register = None if meeting is None else meeting.register_state.as_dict()
    result.problems += [f"refusals: {problem}" for problem in refusals.finish()]
    if projected is not None:
        result.tally_compared = True
        result.tally_mismatches = compare(projection.tallies[meeting_id], projected)
    return result


async def replay_reaches(
    conn: asyncpg.Connection, heads: list[Head], meeting_id: str, timeout: float = REPLAY_WAIT_S
) -> str | None:
    """On a standby: wait until it holds the rows the meeting's and the parked chain's heads name; None once it
    does, else (after ``timeout`` s) why the heads' checks that follow may fail for its lag alone."""
    position = max((h.position for h in heads if h.chain == "meeting" and h.meeting_id == meeting_id), default=0)
    parked_rows = max((h.rows for h in heads if h.chain == "parked"), default=0)
    deadline = time.monotonic() + timeout
    while True:
        head, parked = await log_reads.head_and_parked(conn)
        if head >= position and parked >= parked_rows:
            return None
        if time.monotonic() >= deadline:
            return (
                f"the standby had replayed the log to position {head} and {parked} parked message(s), short of"
                f" the published heads (position {position}, {parked_rows} parked) after {timeout:g} s;"
                " verify on the primary, or again once the standby caught up"
            )
        await asyncio.sleep(REPLAY_POLL_S)

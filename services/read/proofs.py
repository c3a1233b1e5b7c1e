"""Receipts and consistency proofs (projections/receipts.py) from the live log or from an export file.

Online, everything is read in one repeatable-read snapshot as the reader role; the heads come from
``ledger.heads``, read by the caller first (the read side runs no Kafka client). Offline, the export
is read twice (the first pass finds the event's control number, the second its rows) and needs no
service. The proof is against a published head when one reaches the row, else against the tree at
the log's end: the result says which (``head_source``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from events import AnyEvent, Position, PositionsRecorded, VoteCast, VoteRevoked
from projections.chain import ChainRow
from projections.diff import replay_to
from projections.fold import VoterState
from projections.heads import Head
from projections.receipt_check import check_consistency
from projections.receipts import Consistency, Receipt, Tree, build_receipt
from services.read.export_file import LOG_MEMBER, log_line, read_lines, read_manifest

if TYPE_CHECKING:
    import asyncpg

_chunk_decoder = msgspec.json.Decoder(PositionsRecorded)
RULES_TYPES = ("meeting.scheduled", "polls.closed")  # the meeting's rows lineage needs (R10 items, R12)


class ProofError(LookupError):
    """Nothing to prove as asked: no such event, a head the log does not reach, a log that no longer matches."""


@dataclass
class Proven:
    """A bundle and where its head came from."""

    bundle: Receipt | Consistency
    head_source: str  # "published", "computed" (the tree at the log's or export's end, or at --head-size)
    notes: list[str] = field(default_factory=list)
    old_root_now: str | None = None  # consistency: what the log's first old_size rows hash to today

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the bundle itself is written apart)."""
        head = self.bundle.head if isinstance(self.bundle, Receipt) else self.bundle.new
        out = {
            "meeting_id": self.bundle.meeting_id,
            "head": msgspec.to_builtins(head),
            "head_source": self.head_source,
            "notes": self.notes,
        }
        if isinstance(self.bundle, Receipt):
            sub = self.bundle.submission
            out.update(event_id=sub.event_id, position=sub.position, leaf_index=sub.leaf_index, decision=sub.decision)
            out.update(reason=sub.reason, rows_proven=1 + len(self.bundle.others) + len(self.bundle.meeting))
        else:
            out.update(old=msgspec.to_builtins(self.bundle.old), old_root_now=self.old_root_now)
            out.update(problems=check_consistency(self.bundle))
        return out


def latest_head(heads: Iterable[Head] | None, meeting_id: str) -> Head | None:
    """The published head of the meeting's chain with the largest tree (heads without a tree are older)."""
    found = [h for h in heads or () if h.chain == "meeting" and h.meeting_id == meeting_id and h.tree_size]
    return max(found, key=lambda h: h.tree_size or 0, default=None)


@dataclass
class _Target:
    """The tree a proof is against: its size, and the published head behind it (None: computed)."""

    size: int | None  # None: every row there is
    head: Head | None
    notes: list[str]


def _target(heads: list[Head] | None, meeting_id: str, head_size: int | None, at_least: int) -> _Target:
    """Which head to prove against: --head-size, else the latest published head reaching leaf ``at_least``."""
    if head_size is not None:
        return _Target(head_size, None, [f"against the tree of the meeting's first {head_size:,} rows (--head-size)"])
    if heads is None:
        return _Target(None, None, ["the published heads were not read: against the tree at the log's end"])
    latest = latest_head(heads, meeting_id)
    if latest is None:
        return _Target(None, None, ["no head with a Merkle root published for the meeting yet: against the log's end"])
    if (latest.tree_size or 0) < at_least:
        return _Target(
            None,
            None,
            [
                f"the latest published head ({latest.tree_size:,} rows) does not reach the row yet:"
                " against the tree at the log's end; ask again after the next head"
            ],
        )
    return _Target(latest.tree_size, latest, [f"against the head published at {latest.published_at}"])


def _tree(positions: list[int], hashes: list[bytes | None], meeting_id: str, target: _Target) -> Tree:
    """The tree of the target's size; ProofError if the log is shorter or no longer hashes to the published root."""
    size = len(positions) if target.size is None else target.size
    if size > len(positions) or size < 1:
        raise ProofError(f"the log holds {len(positions):,} rows of meeting {meeting_id}, not {size:,}")
    tree = Tree(hashes[:size])
    if target.head is not None and tree.head().merkle_root != target.head.merkle_root:
        raise ProofError(
            f"the log's first {size:,} rows of meeting {meeting_id} no longer hash to the root published at"
            f" {target.head.published_at} ({target.head.merkle_root}): the log was changed after that head;"
            " run `vote-ledger audit verify`"
        )
    return tree


def _register(payloads: Iterable[str], control_number: str) -> Position | None:
    found = None
    for payload in payloads:
        for position in _chunk_decoder.decode(payload).positions:
            if position.control_number == control_number:
                found = position  # a later chunk's line for it replaces the earlier (Meeting.record_positions)
    return found


def _state(entries: Iterable[tuple[int, AnyEvent]], meeting_id: str, up_to: int, control_number: str) -> VoterState:
    tally = replay_to(entries, up_to).tallies.get(meeting_id)
    return (tally.voters.get(control_number) if tally is not None else None) or VoterState()


def _needs_state(spec_payload: str | None, register: Position | None) -> bool:
    """R17 `reject` turns on the nominee's other voters: only then is the fold's state stated (as audit history)."""
    if spec_payload is None or register is None or register.kind != "beneficial":
        return False
    from events import MeetingScheduled, decode_logged

    spec = decode_logged(spec_payload)
    return isinstance(spec, MeetingScheduled) and spec.overvote_policy == "reject"


def _assemble(
    tree: Tree,
    positions: list[int],
    submission: ChainRow,
    control_number: str | None,
    others: Sequence[ChainRow],
    rules: Sequence[ChainRow],
    register: Position | None,
    state: VoterState | None,
    target: _Target,
) -> Proven:
    def indexed(row: ChainRow) -> tuple[int, ChainRow]:
        return bisect.bisect_left(positions, row.position), row

    limit = positions[tree.size - 1]
    try:
        bundle = build_receipt(
            tree,
            indexed(submission),
            control_number,
            [indexed(r) for r in others if r.position != submission.position and r.position <= limit],
            [indexed(r) for r in rules if r.position <= limit],
            register,
            state,
            published_at=target.head.published_at if target.head is not None else None,
        )
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    return Proven(bundle, "published" if target.head is not None else "computed", target.notes)


def _vote_control_number(row: ChainRow) -> str | None:
    from events import MalformedMessage, decode_logged

    try:
        event = decode_logged(row.payload)
    except MalformedMessage:
        return None
    return event.control_number if isinstance(event, (VoteCast, VoteRevoked)) else None


# Online ------------------------------------------------------------------------------------------


async def _hashes(conn: asyncpg.Connection, meeting_id: str, rows: int | None) -> tuple[list[int], list[bytes | None]]:
    from services.adapters.postgres.log import proofs as log_proofs

    positions: list[int] = []
    hashes: list[bytes | None] = []
    async for r in log_proofs.meeting_hashes(conn, meeting_id, rows):
        positions.append(r["position"])
        hashes.append(bytes(r["hash"]) if r["hash"] is not None else None)
    return positions, hashes


async def prove_event(
    conn: asyncpg.Connection,
    event_id: str,
    meeting_id: str | None = None,
    head_size: int | None = None,
    heads: list[Head] | None = None,
) -> Proven:
    """A receipt for the first row logged under ``event_id`` (later copies are duplicate_event_id rejections)."""
    from services.adapters.postgres.log import proofs as log_proofs
    from services.adapters.postgres.log import reads as log_reads
    from services.read.time_travel import accepted_entries

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        found = await log_proofs.rows_of_event(conn, event_id, meeting_id)
        meetings = sorted({r["meeting_id"] for r in found})
        if not found:
            where = f" of meeting {meeting_id}" if meeting_id else ""
            raise ProofError(f"no row{where} in the log has event id {event_id!r}")
        if len(meetings) > 1:
            raise ProofError(f"event id {event_id!r} is logged in meetings {', '.join(meetings)}: pass --meeting")
        row = log_proofs.chain_row(found[0])
        control_number = _vote_control_number(row)  # as from an export: the same bundle either way
        positions, hashes = await _hashes(conn, row.meeting_id, None)
        index = bisect.bisect_left(positions, row.position)
        target = _target(heads, row.meeting_id, head_size, index + 1)
        tree = _tree(positions, hashes, row.meeting_id, target)
        if index >= tree.size:
            raise ProofError(f"the row (position {row.position}) is leaf {index}, past a tree of {tree.size:,} rows")
        limit = positions[tree.size - 1]
        others, register, state = [], None, None
        if control_number is not None:
            others = [
                log_proofs.chain_row(r)
                for r in await log_proofs.control_number_rows(conn, row.meeting_id, control_number, limit)
            ]
            register = _register(await log_reads.register_payloads(conn, row.meeting_id), control_number)
            if _needs_state(await log_reads.scheduled_payload(conn, row.meeting_id), register):
                entries = await accepted_entries(conn, row.meeting_id, limit)
                state = _state(entries, row.meeting_id, limit, control_number)
        rules = [log_proofs.chain_row(r) for r in await log_proofs.meeting_rules_rows(conn, row.meeting_id, limit)]
    return _assemble(tree, positions, row, control_number, others, rules, register, state, target)


async def prove_consistency(
    conn: asyncpg.Connection,
    meeting_id: str,
    old_size: int,
    old_root: str,
    new_size: int | None = None,
    heads: list[Head] | None = None,
) -> Proven:
    """A proof that the meeting's tree now (the latest published head, or ``new_size``) extends (old_size, old_root)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        positions, hashes = await _hashes(conn, meeting_id, None)
    if not positions:
        raise ProofError(f"no row of meeting {meeting_id!r} in the log")
    return _consistency(
        meeting_id, positions, hashes, old_size, old_root, _target(heads, meeting_id, new_size, old_size)
    )


def _consistency(
    meeting_id: str,
    positions: list[int],
    hashes: list[bytes | None],
    old_size: int,
    old_root: str,
    target: _Target,
) -> Proven:
    tree = _tree(positions, hashes, meeting_id, target)
    try:
        bundle = tree.consistency(meeting_id, old_size, old_root, target.head.published_at if target.head else None)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    source = "published" if target.head is not None else "computed"
    return Proven(bundle, source, target.notes, old_root_now=tree.root_at(old_size))


# Offline (an export file) ------------------------------------------------------------------------


def _file_rows(path: Path) -> Iterable[tuple[ChainRow, AnyEvent]]:
    for number, line in read_lines(path, LOG_MEMBER):
        _row, chain_row, event = log_line(number, line)
        yield chain_row, event


def prove_event_file(path: Path, event_id: str, head_size: int | None = None) -> Proven:
    """A receipt from an export: against the tree at its end, or of its first ``head_size`` rows."""
    meeting_id = read_manifest(path).meeting_id
    positions: list[int] = []
    hashes: list[bytes | None] = []
    submission: ChainRow | None = None
    for row, _event in _file_rows(path):
        positions.append(row.position)
        hashes.append(row.hash)
        if submission is None and row.event_id == event_id:
            submission = row
    if submission is None:
        raise ProofError(f"no row of the export ({meeting_id}) has event id {event_id!r}")
    index = bisect.bisect_left(positions, submission.position)
    target = _target(None, meeting_id, head_size, index + 1)
    if head_size is None:
        target.notes = ["against the tree at the export's end"]
    tree = _tree(positions, hashes, meeting_id, target)
    if index >= tree.size:
        raise ProofError(f"the row (position {submission.position}) is leaf {index}, past a tree of {tree.size:,} rows")
    limit = positions[tree.size - 1]
    control_number = _vote_control_number(submission)
    others: list[ChainRow] = []
    rules: list[ChainRow] = []
    chunks: list[str] = []
    accepted: list[tuple[int, AnyEvent]] = []
    spec_payload = None
    for row, event in _file_rows(path):
        if row.position > limit:
            break
        if row.decision == "accepted":
            accepted.append((row.position, event))
            if row.type in RULES_TYPES:
                rules.append(row)
                spec_payload = spec_payload or (row.payload if row.type == "meeting.scheduled" else None)
            elif row.type == "positions.recorded":
                chunks.append(row.payload)
        if control_number is not None and getattr(event, "control_number", None) == control_number:
            others.append(row)
    register = _register(chunks, control_number) if control_number is not None else None
    state = None
    if control_number is not None and _needs_state(spec_payload, register):
        state = _state(accepted, meeting_id, limit, control_number)
    return _assemble(tree, positions, submission, control_number, others, rules, register, state, target)


def prove_consistency_file(path: Path, old_size: int, old_root: str, new_size: int | None = None) -> Proven:
    """A consistency proof from an export: its tree (or that of its first ``new_size`` rows) extends the old one."""
    meeting_id = read_manifest(path).meeting_id
    positions: list[int] = []
    hashes: list[bytes | None] = []
    for row, _event in _file_rows(path):
        positions.append(row.position)
        hashes.append(row.hash)
    target = _target(None, meeting_id, new_size, old_size)
    if new_size is None:
        target.notes = ["against the tree at the export's end"]
    return _consistency(meeting_id, positions, hashes, old_size, old_root, target)

"""Receipts (projections/receipts.py) from the live log or from an export file.

A receipt proves the submission's row; when that row was accepted it also proves the control number's
other rows and the meeting's own rows, and states the holder's register position, so `audit receipt`
can say whether it counts. A rejected row counts nothing and is proven alone: anyone able to publish
can get a submission naming another's control number rejected, and its receipt must not show that
holder's votes or shares (docs/receipts.md). Consistency proofs are in services/read/consistency.py.

Online, everything is read in one repeatable-read snapshot as the reader role; the heads come from
``ledger.heads``, read by the caller first (the read side runs no Kafka client). Offline, the export
is read twice (the first pass finds the event's control number, the second its rows) and needs no
service. The proof is against a published head when one reaches the row, else against the tree at
the log's end: the result says which (``head_source``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from events import AnyEvent, Position, PositionsRecorded, VoteCast, VoteRevoked
from projections.chain import ChainRow
from projections.diff import replay_to
from projections.fold import VoterState
from projections.heads import Head
from projections.receipts import MEETING_RULES_TYPES, Tree, build_receipt, proves_holder
from services.read.export_file import LOG_MEMBER, log_line, read_lines, read_manifest
from services.read.proof_trees import ProofError, Proven, Target, choose_row, latest_head, target, tree_of

__all__ = ["ProofError", "Proven", "latest_head", "prove_event", "prove_event_file"]

if TYPE_CHECKING:
    import asyncpg

_chunk_decoder = msgspec.json.Decoder(PositionsRecorded)
RULES_TYPES = MEETING_RULES_TYPES  # the meeting's rows lineage needs (R10 items, R12, amendments)


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
    against: Target,
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
            published_at=against.head.published_at if against.head is not None else None,
        )
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    return Proven(bundle, "published" if against.head is not None else "computed", against.notes)


def _vote_control_number(row: ChainRow) -> str | None:
    from events import MalformedMessage, decode_logged

    try:
        event = decode_logged(row.payload)
    except MalformedMessage:
        return None
    return event.control_number if isinstance(event, (VoteCast, VoteRevoked)) else None


# Online ------------------------------------------------------------------------------------------


async def meeting_hashes(
    conn: asyncpg.Connection, meeting_id: str, rows: int | None
) -> tuple[list[int], list[bytes | None]]:
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
    row_hash: str | None = None,
    position: int | None = None,
) -> Proven:
    """A receipt for the row logged under ``event_id`` that ``choose_row`` picks (the accepted one by default)."""
    from services.adapters.postgres.log import proofs as log_proofs
    from services.adapters.postgres.log import reads as log_reads
    from services.read.time_travel import accepted_entries

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        found = await log_proofs.rows_of_event(conn, event_id, meeting_id)
        if not found:
            where = f" of meeting {meeting_id}" if meeting_id else ""
            raise ProofError(f"no row{where} in the log has event id {event_id!r}")
        row = choose_row([log_proofs.chain_row(r) for r in found], event_id, row_hash, position)
        control_number = _vote_control_number(row)  # as from an export: the same bundle either way
        positions, hashes = await meeting_hashes(conn, row.meeting_id, None)
        index = bisect.bisect_left(positions, row.position)
        against = target(heads, row.meeting_id, head_size, index + 1)
        tree = tree_of(positions, hashes, row.meeting_id, against)
        if index >= tree.size:
            raise ProofError(f"the row (position {row.position}) is leaf {index}, past a tree of {tree.size:,} rows")
        limit = positions[tree.size - 1]
        others, rules, register, state = [], [], None, None
        if not proves_holder(row):  # a rejected row is proven alone: nothing of the holder is read
            return _assemble(tree, positions, row, control_number, others, rules, register, state, against)
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
    return _assemble(tree, positions, row, control_number, others, rules, register, state, against)


# Offline (an export file) ------------------------------------------------------------------------


def file_rows(path: Path) -> Iterable[tuple[ChainRow, AnyEvent]]:
    for number, line in read_lines(path, LOG_MEMBER):
        _row, chain_row, event = log_line(number, line)
        yield chain_row, event


def prove_event_file(
    path: Path, event_id: str, head_size: int | None = None, row_hash: str | None = None, position: int | None = None
) -> Proven:
    """A receipt from an export: against the tree at its end, or of its first ``head_size`` rows."""
    meeting_id = read_manifest(path).meeting_id
    positions: list[int] = []
    hashes: list[bytes | None] = []
    candidates: list[ChainRow] = []
    for row, _event in file_rows(path):
        positions.append(row.position)
        hashes.append(row.hash)
        if row.event_id == event_id:
            candidates.append(row)
    if not candidates:
        raise ProofError(f"no row of the export ({meeting_id}) has event id {event_id!r}")
    submission = choose_row(candidates, event_id, row_hash, position)  # the same row the live log's proof picks
    index = bisect.bisect_left(positions, submission.position)
    against = target(None, meeting_id, head_size, index + 1)
    if head_size is None:
        against.notes = ["against the tree at the export's end"]
    tree = tree_of(positions, hashes, meeting_id, against)
    if index >= tree.size:
        raise ProofError(f"the row (position {submission.position}) is leaf {index}, past a tree of {tree.size:,} rows")
    limit = positions[tree.size - 1]
    control_number = _vote_control_number(submission)
    others: list[ChainRow] = []
    rules: list[ChainRow] = []
    if not proves_holder(submission):  # a rejected row is proven alone (docs/receipts.md)
        return _assemble(tree, positions, submission, control_number, others, rules, None, None, against)
    chunks: list[str] = []
    accepted: list[tuple[int, AnyEvent]] = []
    spec_payload = None
    for row, event in file_rows(path):
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
    return _assemble(tree, positions, submission, control_number, others, rules, register, state, against)

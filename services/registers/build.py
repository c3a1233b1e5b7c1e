"""From checked register files to the events a load publishes: meeting.scheduled and positions.recorded chunks."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec

from events import Entitlement, MeetingScheduled, Position, PositionsRecorded, encode
from services.registers.csv_table import Problem
from services.registers.meeting_file import NAMESPACE, declare_register, load_meeting_file
from services.registers.reading import FILES, RegisterFiles, read_register
from services.registers.reconcile import Reconciliation, reconcile
from services.registers.wire import MAX_EVENT_BYTES, judged_refusal, wire_problems

# Positions per positions.recorded chunk: 2,000 synthetic positions encode to about 285 kB and a
# 20,000-position register loads in ten chunks. Long names make a chunk larger (three 200-character
# joint holders a holding: 1.4 MB for 2,000), so a chunk also ends before it would exceed
# MAX_EVENT_BYTES (wire.py: what Kafka accepts); below that, chunks (and their ids) are as by count.
CHUNK_SIZE = 2000
_position_encoder = msgspec.json.Encoder()


class RegisterError(ValueError):
    """A register that cannot be published: every problem, each as FILE:LINE:COLUMN: what."""

    def __init__(self, problems: list[Problem]) -> None:
        # In reading order: the files as docs/register.md lists them, then line and column.
        self.problems = sorted(problems, key=lambda p: (_file_order(p.file), p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedRegister:
    """A real meeting ready to publish: the meeting declaring its register, the chunks, the reconciliation."""

    meeting: MeetingScheduled
    chunks: list[PositionsRecorded]
    reconciliation: Reconciliation

    @property
    def events(self) -> list[MeetingScheduled | PositionsRecorded]:
        """What a load publishes, in order: the meeting first, then its register."""
        return [self.meeting, *self.chunks]


def load_register(meeting_file: str | Path, directory: str | Path) -> LoadedRegister:
    """Read the meeting file and the register directory; RegisterError with every problem if any."""
    meeting = load_meeting_file(meeting_file)
    files = read_register(directory)
    reconciliation, problems = reconcile(files, meeting.outstanding)
    if files.problems or problems:
        raise RegisterError(files.problems + problems)
    positions, entitlements = register_of(files)
    chunks = chunk_events(meeting, positions, entitlements)
    declared = declare_register(meeting, chunks)
    # Every event as Kafka and the ledger will take it, before any is published: a chunk the ledger
    # cannot decode would be parked after meeting.scheduled was published, leaving a register that
    # can never complete.
    rows = [h.row for h in files.registered] + [b.row for b in files.beneficial]  # register_of's order
    participants = [p.row for p in files.participants.values()]
    problems = wire_problems(meeting_file, declared, chunks, rows, participants)
    if problems:
        raise RegisterError(problems)
    why = judged_refusal([declared, *chunks])  # the ledger's rules on what the files and the wire let through
    if why is not None:
        raise ValueError(f"{meeting_file}: {why}; nothing published")
    return LoadedRegister(declared, chunks, reconciliation)


def register_of(files: RegisterFiles) -> tuple[list[Position], list[Entitlement]]:
    """The positions (registered, then beneficial, in file order) and each participant's entitlement (R17)."""
    positions = [
        Position(control_number=h.control_number, kind="registered", shares=h.shares, holders=h.holders)
        for h in files.registered
    ]
    positions += [
        Position(
            control_number=b.control_number,
            kind="beneficial",
            shares=b.shares,
            holders=b.holders,
            nominee=files.participants[b.participant].nominee,
        )
        for b in files.beneficial
    ]
    entitlements = [Entitlement(nominee=p.nominee, shares=p.shares) for p in files.participants.values()]
    return positions, entitlements


def chunk_events(
    meeting: MeetingScheduled,
    positions: list[Position],
    entitlements: list[Entitlement],
    chunk_size: int = CHUNK_SIZE,
    max_bytes: int = MAX_EVENT_BYTES,
) -> list[PositionsRecorded]:
    """Split the register into positions.recorded chunks with deterministic, content-derived ids.

    A chunk holds at most ``chunk_size`` positions and, unless one position alone is too large, encodes
    to at most ``max_bytes``; the first carries the entitlements.
    """
    chunks = split(meeting, positions, entitlements, chunk_size, max_bytes)
    events = []
    for number, chunk in enumerate(chunks):
        event = PositionsRecorded(
            event_id="pending",
            meeting_id=meeting.meeting_id,
            chunk=number,
            chunks=len(chunks),
            positions=chunk,
            entitlements=entitlements if number == 0 else [],
        )
        # Same register, same ids: a second load is a no-op (R18); a different one is rejected (R19).
        digest = hashlib.sha256(encode(event)).hexdigest()[:16]
        name = f"{meeting.meeting_id}:positions:{number}:{digest}"
        events.append(
            PositionsRecorded(
                event_id=str(uuid.uuid5(NAMESPACE, name)),
                meeting_id=meeting.meeting_id,
                chunk=number,
                chunks=len(chunks),
                positions=chunk,
                entitlements=event.entitlements,
            )
        )
    return events


def split(
    meeting: MeetingScheduled,
    positions: list[Position],
    entitlements: list[Entitlement],
    chunk_size: int = CHUNK_SIZE,
    max_bytes: int = MAX_EVENT_BYTES,
) -> list[list[Position]]:
    """The positions of each chunk, in order: at most ``chunk_size``, and within ``max_bytes`` once encoded."""
    # A chunk without positions, with the longest numbers and id it can have: what a chunk costs besides
    # its positions (each of which adds its encoding and a comma).
    envelope = PositionsRecorded(
        event_id=str(uuid.UUID(int=0)), meeting_id=meeting.meeting_id, chunk=999_999, chunks=1_000_000
    )
    first = len(encode(msgspec.structs.replace(envelope, entitlements=entitlements)))
    later = len(encode(envelope))
    chunks: list[list[Position]] = []
    current: list[Position] = []
    used = first
    for position in positions:
        size = len(_position_encoder.encode(position)) + 1
        if current and (len(current) == chunk_size or used + size > max_bytes):
            chunks.append(current)
            current, used = [], later
        current.append(position)  # a chunk takes at least one position: one too large is reported by the load
        used += size
    chunks.append(current)
    return chunks


def _file_order(file: str) -> int:
    name = Path(file).name
    return FILES.index(name) if name in FILES else -1

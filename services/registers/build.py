"""From checked register files to the events a load publishes: meeting.scheduled and positions.recorded chunks."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from events import Entitlement, MeetingScheduled, Position, PositionsRecorded, encode
from services.registers.csv_table import Problem
from services.registers.meeting_file import NAMESPACE, declare_register, load_meeting_file
from services.registers.reading import FILES, RegisterFiles, read_register
from services.registers.reconcile import Reconciliation, reconcile

# Positions per positions.recorded chunk: 2,000 positions encode to about 250 kB, well under Kafka's
# default 1 MB message size, and a 20,000-position register loads in ten chunks.
CHUNK_SIZE = 2000


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
    return LoadedRegister(declare_register(meeting, chunks), chunks, reconciliation)


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
    meeting: MeetingScheduled, positions: list[Position], entitlements: list[Entitlement], chunk_size: int = CHUNK_SIZE
) -> list[PositionsRecorded]:
    """Split the register into positions.recorded chunks with deterministic, content-derived ids."""
    chunks = [positions[i : i + chunk_size] for i in range(0, len(positions), chunk_size)] or [[]]
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


def _file_order(file: str) -> int:
    name = Path(file).name
    return FILES.index(name) if name in FILES else -1

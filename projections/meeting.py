"""A meeting as the log describes it: spec, record-date register, poll closures. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events import Item, MeetingScheduled, PollsClosed, Position, PositionsRecorded
from projections.channels import KeyBook


@dataclass
class Meeting:
    """Everything needed to judge a submission: built only from the meeting's admin events."""

    spec: MeetingScheduled
    items: dict[str, Item]
    # Allowed options per item as sets: validation checks every choice of every vote against them.
    options: dict[str, frozenset[str]] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    entitlements: dict[str, int] = field(default_factory=dict)
    chunks: set[int] = field(default_factory=set)
    chunks_expected: int | None = None
    # Running sum of the recorded positions' shares: judging a chunk against the outstanding
    # shares must not re-add the whole register (O(chunks x positions)).
    recorded_shares: int = 0
    # Earliest closing time of all items (None: open) and per item, from polls.closed (R12).
    closed_all_at: datetime | None = None
    closed_item_at: dict[str, datetime] = field(default_factory=dict)
    # The channels' keys over time, from channel.key_registered / channel.key_revoked (S1, S3, S4).
    keys: KeyBook = field(default_factory=KeyBook)

    @classmethod
    def scheduled(cls, spec: MeetingScheduled) -> Meeting:
        """Start a meeting from its meeting.scheduled event."""
        return cls(
            spec=spec,
            items={item.id: item for item in spec.items},
            options={item.id: frozenset(item.options) for item in spec.items},
        )

    @property
    def meeting_id(self) -> str:
        """The meeting's identifier."""
        return self.spec.meeting_id

    def record_positions(self, event: PositionsRecorded) -> None:
        """Add a chunk of the record-date register."""
        self.chunks.add(event.chunk)
        self.chunks_expected = event.chunks
        for position in event.positions:
            previous = self.positions.get(position.control_number)
            self.recorded_shares += position.shares - (previous.shares if previous else 0)
            self.positions[position.control_number] = position
        for entitlement in event.entitlements:
            self.entitlements[entitlement.nominee] = entitlement.shares

    def close_polls(self, event: PollsClosed) -> None:
        """Record a poll closure; the earliest closing time of an item is the one that holds."""
        if event.items is None:
            if self.closed_all_at is None or event.closed_at < self.closed_all_at:
                self.closed_all_at = event.closed_at
            return
        for item_id in event.items:
            current = self.closed_item_at.get(item_id)
            if current is None or event.closed_at < current:
                self.closed_item_at[item_id] = event.closed_at

    @property
    def first_closure(self) -> datetime | None:
        """The earliest poll closure of any kind: no submission received after it counts (R12)."""
        times = [t for t in (self.closed_all_at, *self.closed_item_at.values()) if t is not None]
        return min(times) if times else None

    @property
    def registered_shares(self) -> int:
        """Sum of the shares of all recorded positions (must equal the outstanding shares)."""
        return sum(p.shares for p in self.positions.values())

    @property
    def register_complete(self) -> bool:
        """Whether every announced chunk of the register has been recorded."""
        return self.chunks_expected is not None and len(self.chunks) == self.chunks_expected

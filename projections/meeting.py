"""A meeting as the log describes it: spec, record-date register, poll closures, amendments. Pure, no I/O."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

import msgspec.structs

from events import (
    CutoffChanged,
    Item,
    MeetingAdjourned,
    MeetingCorrected,
    MeetingScheduled,
    PollsClosed,
    Position,
    PositionsRecorded,
)
from projections.channels import KeyBook
from projections.completeness import RegisterState, state_of

Amendment = MeetingAdjourned | CutoffChanged | MeetingCorrected


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
    chunks_expected: int | None = None  # as the chunks announce it; spec.register, if declared, decides
    # Running sum of the recorded positions' shares: judging a chunk against the outstanding
    # shares must not re-add the whole register (O(chunks x positions)).
    recorded_shares: int = 0
    # Earliest closing time of all items (None: open) and per item, from polls.closed (R12).
    closed_all_at: datetime | None = None
    closed_item_at: dict[str, datetime] = field(default_factory=dict)
    # The channels' keys over time, from channel.key_registered / channel.key_revoked (S1, S3, S4).
    keys: KeyBook = field(default_factory=KeyBook)
    # Amendments, appended in log order (never edits): reports list them, as_amended() applies them.
    amendments: list[Amendment] = field(default_factory=list)
    # Per cut-off channel, its changes sorted by (effective_at, event_id): the cut-off in force at a
    # time is a bisection (R12). Empty for an unamended meeting, which keeps fold_drops one test.
    cutoff_changes: dict[str, list[tuple[datetime, str, datetime | None]]] = field(default_factory=dict)
    # Per item, corrected recommendations sorted by (effective_at, event_id) (R9 as amended).
    recommendations: dict[str, list[tuple[datetime, str, str]]] = field(default_factory=dict)

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

    def adjourn(self, event: MeetingAdjourned) -> None:
        """Record an adjournment or postponement: the meeting's date changes, votes already cast stand."""
        self.amendments.append(event)

    def change_cutoff(self, event: CutoffChanged) -> None:
        """Record a channel's new cut-off (None: lifted) for submissions received from its effective_at on."""
        self.amendments.append(event)
        bisect.insort(
            self.cutoff_changes.setdefault(event.channel, []), (event.effective_at, event.event_id, event.cutoff)
        )

    def correct(self, event: MeetingCorrected) -> None:
        """Record corrected descriptive fields; a corrected recommendation applies from its effective_at (R9)."""
        self.amendments.append(event)
        for item in event.items:
            if item.recommendation is not None:
                entry = (event.effective_at, event.event_id, item.recommendation)
                bisect.insort(self.recommendations.setdefault(item.id, []), entry)

    def cutoff_in_force(self, channel: str, at: datetime) -> datetime | None:
        """R12 as amended: the cut-off of the latest change for the channel effective at or before ``at``, else the
        meeting's own (ties: the greater event id)."""
        changes = self.cutoff_changes.get(channel)
        if changes:
            # Sorted by (effective_at, event_id): the last entry with effective_at <= at, whatever its id.
            i = bisect.bisect_right(changes, at, key=lambda change: change[0])
            if i:
                return changes[i - 1][2]
        return getattr(self.spec.cutoffs, channel, None)

    def recommendation(self, item_id: str, executed_at: datetime) -> str | None:
        """R9 as amended: the recommendation in force when an instruction was executed (the card it signed)."""
        corrected = self.recommendations.get(item_id)
        if corrected:
            i = bisect.bisect_right(corrected, executed_at, key=lambda entry: entry[0])
            if i:
                return corrected[i - 1][2]
        return self.items[item_id].recommendation

    @property
    def meeting_at(self) -> datetime:
        """When the meeting is held, as adjourned or postponed: the latest adjournment by (effective_at, event_id)."""
        adjournments = [a for a in self.amendments if isinstance(a, MeetingAdjourned)]
        if not adjournments:
            return self.spec.meeting_at
        return max(adjournments, key=lambda a: (a.effective_at, a.event_id)).meeting_at

    def as_amended(self) -> MeetingScheduled:
        """The meeting.scheduled as amended so far: date, cut-offs (the latest of each channel), names, items.

        Reports show this; the rules ask cutoff_in_force and recommendation, which keep each change's time.
        """
        if not self.amendments:
            return self.spec
        spec = self.spec
        company, title = spec.company, spec.title
        titles: dict[str, str] = {}
        for event in sorted(
            (a for a in self.amendments if isinstance(a, MeetingCorrected)), key=lambda a: (a.effective_at, a.event_id)
        ):
            company, title = event.company or company, event.title or title
            titles.update({item.id: item.title for item in event.items if item.title is not None})
        latest = {channel: changes[-1][2] for channel, changes in self.cutoff_changes.items()}
        items = [
            msgspec.structs.replace(
                item,
                title=titles.get(item.id, item.title),
                recommendation=self.recommendations[item.id][-1][2]
                if item.id in self.recommendations
                else item.recommendation,
            )
            for item in spec.items
        ]
        return msgspec.structs.replace(
            spec,
            company=company,
            title=title,
            meeting_at=self.meeting_at,
            cutoffs=msgspec.structs.replace(spec.cutoffs, **latest),
            items=items,
        )

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
    def register_state(self) -> RegisterState:
        """What is recorded of the register against what a complete one holds (declared, else announced)."""
        return state_of(
            self.spec.register, self.chunks, self.chunks_expected, len(self.positions), self.recorded_shares
        )

    @property
    def register_complete(self) -> bool:
        """Whether the register is complete: every chunk recorded and, if declared, its totals met."""
        return self.register_state.complete

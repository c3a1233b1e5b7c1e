"""A meeting as the log describes it: spec, record-date register, poll closures, amendments. Pure, no I/O."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

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
from projections.completeness import RegisterState, register_digest, state_of

Amendment = MeetingAdjourned | CutoffChanged | MeetingCorrected
T = TypeVar("T")


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
    # When the polls were closed on every item (by a closure of all items, or per-item closures that
    # together close them all); None while one is open. After it the meeting as voted no longer changes:
    # an amendment effective later, or a substitution received later, has no effect (R12, R13, Amendments).
    polls_closed_at: datetime | None = None
    # The channels' keys over time, from channel.key_registered / channel.key_revoked (S1, S3, S4).
    keys: KeyBook = field(default_factory=KeyBook)
    # Amendments accepted, in log order (never edits); ``amendments`` keeps those in force (see in_force).
    logged_amendments: list[Amendment] = field(default_factory=list)
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
        else:
            for item_id in event.items:
                current = self.closed_item_at.get(item_id)
                if current is None or event.closed_at < current:
                    self.closed_item_at[item_id] = event.closed_at
        self.polls_closed_at = self._closed_on_every_item()

    def _closed_on_every_item(self) -> datetime | None:
        """The latest of the items' closing times (each the earliest closure closing it); None if one is open."""
        if not self.closed_item_at:
            return self.closed_all_at  # the common case: one closure of all items, or none
        times = []
        for item_id in self.items:
            closes = [t for t in (self.closed_item_at.get(item_id), self.closed_all_at) if t is not None]
            if not closes:
                return None
            times.append(min(closes))
        return max(times, default=self.closed_all_at)

    def in_force(self, amendment: Amendment) -> bool:
        """Whether an accepted amendment applies: it took effect before the polls closed on every item.

        One effective after that has no effect at all, whatever the log order: the judge refuses it
        ``poll_closed`` once that closure is logged, and one logged (accepted) before it is ignored when
        it arrives, so the meeting as amended is a function of the set of events (R5).
        """
        return self.polls_closed_at is None or amendment.effective_at <= self.polls_closed_at

    @property
    def amendments(self) -> list[Amendment]:
        """The accepted amendments in force (in_force), in log order: reports list them, as_amended() applies them."""
        if self.polls_closed_at is None:
            return self.logged_amendments
        return [a for a in self.logged_amendments if self.in_force(a)]

    def _bound(self, at: datetime) -> datetime:
        """A time capped at the closure of every item: amendments effective after it are never in force."""
        closed = self.polls_closed_at
        return at if closed is None or at <= closed else closed

    def adjourn(self, event: MeetingAdjourned) -> None:
        """Record an adjournment or postponement: the meeting's date changes, votes already cast stand."""
        self.logged_amendments.append(event)

    def change_cutoff(self, event: CutoffChanged) -> None:
        """Record a channel's new cut-off (None: lifted) for submissions received from its effective_at on."""
        self.logged_amendments.append(event)
        bisect.insort(
            self.cutoff_changes.setdefault(event.channel, []), (event.effective_at, event.event_id, event.cutoff)
        )

    def correct(self, event: MeetingCorrected) -> None:
        """Record corrected descriptive fields; a corrected recommendation applies from its effective_at (R9)."""
        self.logged_amendments.append(event)
        for item in event.items:
            if item.recommendation is not None:
                entry = (event.effective_at, event.event_id, item.recommendation)
                bisect.insort(self.recommendations.setdefault(item.id, []), entry)

    def cutoff_in_force(self, channel: str, at: datetime) -> datetime | None:
        """R12 as amended: the cut-off of the latest change for the channel effective at or before ``at``, else the
        meeting's own (ties: the greater event id)."""
        changes = self.cutoff_changes.get(channel)
        if changes:
            # Sorted by (effective_at, event_id): the last entry with effective_at <= at, whatever its id; none
            # effective after the polls closed on every item (in_force).
            i = bisect.bisect_right(changes, self._bound(at), key=lambda change: change[0])
            if i:
                return changes[i - 1][2]
        return getattr(self.spec.cutoffs, channel, None)

    def recommendation(self, item_id: str, executed_at: datetime) -> str | None:
        """R9 as amended: the recommendation in force when an instruction was executed (the card it signed)."""
        corrected = self.recommendations.get(item_id)
        if corrected:
            i = bisect.bisect_right(corrected, self._bound(executed_at), key=lambda entry: entry[0])  # in_force
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
        latest = {
            channel: self._last_in_force(changes, spec.cutoffs, channel)
            for channel, changes in self.cutoff_changes.items()
        }
        items = [
            msgspec.structs.replace(
                item,
                title=titles.get(item.id, item.title),
                recommendation=self._last_in_force(self.recommendations.get(item.id, []), item, "recommendation"),
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

    def _last_in_force(self, entries: list[tuple[datetime, str, T]], original: object, name: str) -> T | None:
        """The value of the latest change in force of sorted (effective_at, event_id, value), else the original's."""
        i = (
            len(entries)
            if self.polls_closed_at is None
            else bisect.bisect_right(entries, self.polls_closed_at, key=lambda entry: entry[0])
        )
        return entries[i - 1][2] if i else getattr(original, name)

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
            self.spec.register,
            self.chunks,
            self.chunks_expected,
            len(self.positions),
            self.recorded_shares,
            digest=lambda: register_digest(self.positions.values(), self.entitlements),
        )

    @property
    def register_complete(self) -> bool:
        """Whether the register is complete: every chunk recorded and, if declared, its totals met."""
        return self.register_state.complete

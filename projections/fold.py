"""Fold accepted submissions into quorum and per-item tallies. Pure, no I/O.

Each control number's state (``projections.voter_state``) keeps only the maxima that decide what it
counts, so any permutation or duplication of the accepted events yields the same tally (R5, R18). The
Tally keeps quorum and buckets incrementally: a change of what a control number counts subtracts its
old contribution and adds the new one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec.structs

from events import VoteCast, VoteRevoked
from projections import timing
from projections.contribution import BROKER_NON_VOTE, REGISTERED, Contribution
from projections.meeting import Meeting
from projections.voter_state import (
    Cut,
    Key,
    VoterState,
    counted_votes,
    counting,
    cut_times,
    differs,
    discretion_fill,
    effective,
    instruction_key,
    key_of,
    part,
    record,
    voter_contribution,
)

__all__ = [
    "BROKER_NON_VOTE",
    "REGISTERED",
    "Cut",
    "Tally",
    "VoterState",
    "counted_votes",
    "counting",
    "cut_times",
    "effective",
    "discretion_fill",
    "instruction_key",
    "record",
    "voter_contribution",
]


@dataclass
class Tally:
    """Running quorum and tally of one meeting, maintained incrementally event by event."""

    meeting: Meeting
    voters: dict[str, VoterState] = field(default_factory=dict)
    present: int = 0
    present_count: int = 0
    buckets: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    events_applied: int = 0
    # Keys changed since the owner last cleared them: lets a store write only what changed.
    dirty_voters: set[str] = field(default_factory=set)
    dirty_buckets: set[tuple[str, str, str]] = field(default_factory=set)
    # Control numbers recorded by apply_many(settle=False) whose contribution is not yet counted,
    # with what they counted before (their Key).
    unsettled: dict[str, Key] = field(default_factory=dict)
    # timing.item_horizons for the closures it was computed under: a refold asks it for every event.
    _horizons_cache: tuple[tuple[object, ...], dict[str, datetime]] | None = field(default=None, repr=False)

    def apply(self, event: VoteCast | VoteRevoked) -> bool:
        """Fold one accepted submission; return True if the tally changed."""
        self.settle()
        self.events_applied += 1
        position = self.meeting.positions.get(event.control_number)
        if position is None:
            return False  # R1 (cannot happen for accepted events)
        if self._after_closure(event):
            self._remember_dropped(event)
            return False  # R12 whatever the log order
        state = self.voters.get(event.control_number) or VoterState()
        trial = msgspec.structs.replace(state)  # fields are replaced, never mutated: a shallow copy
        horizons = self._horizons()
        record(trial, event, cut_times(horizons))
        before, after = key_of(state), key_of(trial)
        changed = differs(before, after)
        old = part(self.meeting, position, before, horizons) if changed else None
        new = part(self.meeting, position, after, horizons) if changed else None
        if new is not None and self.meeting.spec.overvote_policy == "reject" and isinstance(event, VoteRevoked):
            # A revocation voiding the owner's instruction revives the nominee's discretionary vote:
            # that vote, not the revocation, is what would take the nominee over (R17).
            item_id = self._exceeds_entitlement(position.nominee, old, new)
            if item_id is not None and trial.discretionary is after[0] and trial.discretionary is not None:
                trial.overvote_rejected = [*trial.overvote_rejected, (trial.discretionary.event_id, item_id)]
                trial.discretionary = None
                after = key_of(trial)
                changed = differs(before, after)
                new = part(self.meeting, position, after, horizons) if changed else None
        if new is not None and self.meeting.spec.overvote_policy == "reject" and isinstance(event, VoteCast):
            item_id = self._exceeds_entitlement(position.nominee, old, new)
            if item_id is not None:
                # R17 `reject`: the instruction that first takes its nominee over the entitlement
                # on an item is refused by the rules engine; the state keeps why.
                state.overvote_rejected = [*state.overvote_rejected, (event.event_id, item_id)]
                self.voters[event.control_number] = state
                self.dirty_voters.add(event.control_number)
                return False
        self.voters[event.control_number] = trial
        self.dirty_voters.add(event.control_number)
        if not changed:
            return False
        if old is not None:
            self._add(old, -1)
        if new is not None:
            self._add(new, +1)
        return True

    def apply_many(self, events: list[VoteCast | VoteRevoked], settle: bool = True) -> None:
        """Fold a batch: each touched control number's contribution is recomputed once.

        Same result as applying the events one by one (the state is a set of maxima, R5), but a
        control number that re-votes many times costs one contribution, not one per event. The
        reject over-vote policy depends on log order (R17), so it goes event by event.
        With ``settle=False`` the contributions wait for ``settle()``: a replay from scratch then
        pays one contribution per control number in all, whatever its batch size.
        """
        if self.meeting.spec.overvote_policy == "reject":
            for event in events:
                self.apply(event)
            return
        before = self.unsettled
        positions, voters = self.meeting.positions, self.voters
        meeting = self.meeting  # no event of a run of votes changes its closures or cut-offs
        times = cut_times(self._horizons())  # empty unless an item closed before others
        for event in events:
            self.events_applied += 1
            number = event.control_number
            if number not in positions:
                continue  # R1 (cannot happen for accepted events)
            if timing.fold_drops(meeting, event):
                self._remember_dropped(event)
                continue  # R12 whatever the log order
            state = voters.get(number)
            if state is None:
                state = voters[number] = VoterState()
            if number not in before:
                before[number] = key_of(state)
            record(state, event, times)  # replaces fields, so `before` still holds the old instructions
        if settle:
            self.settle()

    def settle(self) -> None:
        """Count the contributions that apply_many(settle=False) left pending."""
        if not self.unsettled:
            return
        before, self.unsettled = self.unsettled, {}
        positions, voters = self.meeting.positions, self.voters
        horizons = self._horizons()
        self.dirty_voters.update(before)
        for number, old_key in before.items():
            new_key = key_of(voters[number])
            if not differs(old_key, new_key):
                continue
            position = positions[number]
            if (old := part(self.meeting, position, old_key, horizons)) is not None:
                self._add(old, -1)
            if (new := part(self.meeting, position, new_key, horizons)) is not None:
                self._add(new, +1)

    def _after_closure(self, event: VoteCast | VoteRevoked) -> bool:
        """R12: late by the meeting's closures and cut-offs, whatever the log order (as at ingest)."""
        return timing.fold_drops(self.meeting, event)

    def _horizons(self) -> dict[str, datetime]:
        """timing.item_horizons of the meeting, recomputed only when its closures changed."""
        meeting = self.meeting
        if not meeting.closed_item_at:
            return {}  # the common case: one test
        key = (meeting.closed_all_at, *meeting.closed_item_at.items())
        if self._horizons_cache is None or self._horizons_cache[0] != key:
            self._horizons_cache = (key, timing.item_horizons(meeting))
        return self._horizons_cache[1]

    def _remember_dropped(self, event: VoteCast | VoteRevoked) -> None:
        """Keep the latest receipt of a submission R12 dropped, as a refold does: a reopening must refold it.

        The projector folds it incrementally, a replay may refold it: both must end in the same state.
        """
        state = self.voters.get(event.control_number)
        if state is None:
            state = self.voters[event.control_number] = VoterState()
        if state.latest_received is None or event.received_at > state.latest_received:
            state.latest_received = event.received_at  # replaced, never mutated: a Key holds no datetime of it
            self.dirty_voters.add(event.control_number)

    def refold(self, control_number: str, events: list[VoteCast | VoteRevoked]) -> None:
        """Recompute one control number from all its accepted submissions in log order.

        Used when a poll closure is logged after submissions received later than it (R12): the
        maxima kept per control number cannot forget those, so its log rows are folded again.
        """
        self.detach([control_number])  # after a poll closure, Projection has already: its state is then empty
        self.voters.pop(control_number, None)
        applied = self.events_applied
        # One contribution for the control number, not one per event (event by event under `reject`, R17).
        self.apply_many(events)
        self.events_applied = applied
        state = self.voters.setdefault(control_number, VoterState())
        if events:
            # Even when R12 dropped them all: a later cut-off change (a reopening) must know whom to refold.
            latest = max(event.received_at for event in events)
            if state.latest_received is None or latest > state.latest_received:
                state.latest_received = latest
        self.dirty_voters.add(control_number)

    def recount(self, control_numbers: Iterable[str], change: Callable[[], None]) -> None:
        """Subtract these control numbers' contributions, apply a change of the meeting, add them back.

        For a meeting change that alters what an instruction contributes without changing which one
        counts (a corrected recommendation, R9): the maxima stay, only the contributions move.
        """
        self.settle()
        numbers = [n for n in control_numbers if n in self.voters]
        before = {n: key_of(self.voters[n]) for n in numbers}
        horizons = self._horizons()
        for number, key in before.items():
            if (old := part(self.meeting, self.meeting.positions[number], key, horizons)) is not None:
                self._add(old, -1)
        change()
        horizons = self._horizons()
        for number, key in before.items():
            if (new := part(self.meeting, self.meeting.positions[number], key, horizons)) is not None:
                self._add(new, +1)
        self.dirty_voters.update(numbers)

    def detach(self, control_numbers: Iterable[str]) -> None:
        """Take these control numbers' contributions out and empty their states, to be refolded.

        A poll closure changes which items each Cut decides (R12 per item): the contributions of the
        control numbers it makes late are taken out with the closures they were counted under, before
        the meeting changes; their refold then counts them under the new ones. The latest receipt stays,
        so a later closure or cut-off change still knows to refold them.
        """
        self.settle()
        horizons = self._horizons()
        for number in control_numbers:
            state = self.voters.get(number)
            if state is None:
                continue
            if (old := part(self.meeting, self.meeting.positions[number], key_of(state), horizons)) is not None:
                self._add(old, -1)
            self.voters[number] = VoterState(latest_received=state.latest_received)
            self.dirty_voters.add(number)

    def received_after(self, at: datetime) -> set[str]:
        """Control numbers that hold a submission received after ``at``."""
        return {n for n, s in self.voters.items() if s.latest_received is not None and s.latest_received > at}

    def nominee_voted(self, item_id: str, nominee: str) -> int:
        """Shares a nominee has voted on an item (broker non-votes are not votes)."""
        return sum(self.buckets.get((item_id, option, nominee), 0) for option in self.meeting.options[item_id])

    def _exceeds_entitlement(self, nominee: str | None, old: Contribution | None, new: Contribution) -> str | None:
        """The first item on which this change would take the nominee over its entitlement."""
        limit = self.meeting.entitlements.get(nominee) if nominee else None
        if limit is None or nominee is None:  # a None nominee has no limit; said again for mypy
            return None  # registered holders, or a nominee with no DTC position reported
        for item in self.meeting.spec.items:
            added = sum(new.buckets.get((item.id, o, nominee), 0) for o in item.options)
            removed = sum(old.buckets.get((item.id, o, nominee), 0) for o in item.options) if old else 0
            if added > removed and self.nominee_voted(item.id, nominee) - removed + added > limit:
                return item.id
        return None

    def _add(self, part: Contribution, sign: int) -> None:
        self.present += sign * part.present
        self.present_count += sign
        self.dirty_buckets.update(part.buckets)
        for key, shares in part.buckets.items():
            value = self.buckets[key] + sign * shares
            if value:
                self.buckets[key] = value
            else:
                del self.buckets[key]

    def item_totals(self) -> dict[str, dict[str, int]]:
        """Shares per item and option (broker non-votes as their own key), summed over nominees."""
        totals: dict[str, dict[str, int]] = {item.id: {} for item in self.meeting.spec.items}
        for (item_id, option, _nominee), shares in self.buckets.items():
            per_item = totals.setdefault(item_id, {})
            per_item[option] = per_item.get(option, 0) + shares
        return totals

"""Fold accepted submissions into quorum and per-item tallies. Pure, no I/O.

The fold keeps, per control number, only the maxima that decide its effective instruction (R5, R6,
R7, R10). Maxima are commutative and idempotent, so any permutation or duplication of the accepted
events yields the same state and the same tally (R5, R18); applying one event costs O(1).

R12 per item: once an item closes before others (``timing.item_horizons``), a control number that
receives a submission after that closing time keeps, beside its state, a ``Cut``: the same maxima over
the submissions received by then, which decide that item. The common case (no per-item closure) keeps
none and pays one test per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import msgspec.structs

from events import Position, VoteCast, VoteRevoked
from projections import timing
from projections.contribution import BROKER_NON_VOTE, REGISTERED, Contribution, combined, contribution
from projections.meeting import Meeting

__all__ = [
    "BROKER_NON_VOTE",
    "REGISTERED",
    "Cut",
    "Tally",
    "VoterState",
    "counted_votes",
    "counting",
    "effective",
    "discretion_fill",
    "instruction_key",
    "record",
    "voter_contribution",
]


def instruction_key(vote: VoteCast | VoteRevoked) -> tuple[datetime, datetime, str]:
    """R5 order: latest executed_at, then later received_at, then greater event_id."""
    return (vote.executed_at, vote.received_at, vote.event_id)


class VoterState(msgspec.Struct, kw_only=True, gc=False):
    """What decides one control number's effective instruction: the latest of each kind."""

    owner: VoteCast | None = None  # latest instruction of the holder (or its nominee on its behalf)
    discretionary: VoteCast | None = None  # latest discretionary vote of the nominee (R10)
    ballot: VoteCast | None = None  # latest in-person ballot marking at least one item (R6)
    revoked_at: datetime | None = None  # latest revocation (R7)
    # Latest receipt folded: tells, when a poll closure is logged late, who may need refolding.
    latest_received: datetime | None = None
    # Instructions the fold refused under the `reject` over-vote policy: (event_id, item) (R17).
    overvote_rejected: list[tuple[str, str]] = []
    # Latest attendance: an in-person vote.cast marking nothing. Present (R14), revokes nothing (R6).
    attended: VoteCast | None = None
    # R12 per item, sorted by closing time: for each item closing time earlier than this state's
    # (timing.item_horizons) once a submission received after it was folded, the maxima over the
    # submissions received by then. Until then this state is also that closing time's.
    cuts: list[Cut] = []


class Cut(msgspec.Struct, kw_only=True, gc=False):
    """A control number's maxima over the submissions received by an item's closing time (R12 per item)."""

    closed_at: datetime
    state: VoterState


def _later(current: VoteCast | None, candidate: VoteCast) -> VoteCast:
    if current is None or instruction_key(candidate) > instruction_key(current):
        return candidate
    return current


def record(state: VoterState, event: VoteCast | VoteRevoked, cut_times: Sequence[datetime] = ()) -> None:
    """Fold one accepted submission into a control number's state (``cut_times``: see ``cut_times``)."""
    if cut_times:
        _record_cuts(state, event, cut_times)
    if state.latest_received is None or event.received_at > state.latest_received:
        state.latest_received = event.received_at
    if isinstance(event, VoteRevoked):
        if state.revoked_at is None or event.executed_at > state.revoked_at:
            state.revoked_at = event.executed_at
    elif event.channel == "in_person":
        if event.choices:
            state.ballot = _later(state.ballot, event)
        else:
            state.attended = _later(state.attended, event)  # R6: attending without voting revokes nothing
    elif event.discretionary:
        state.discretionary = _later(state.discretionary, event)
    else:
        state.owner = _later(state.owner, event)


def cut_times(horizons: dict[str, datetime]) -> tuple[datetime, ...]:
    """The distinct earlier item closing times a state keeps a Cut for, in order (R12 per item)."""
    return tuple(sorted(set(horizons.values()))) if horizons else ()


def _record_cuts(state: VoterState, event: VoteCast | VoteRevoked, times: Sequence[datetime]) -> None:
    """R12 per item: fold the event into the Cuts of the closing times it came by; start a Cut it came after."""
    current = {cut.closed_at: cut for cut in state.cuts}
    cuts: list[Cut] = []
    for closed_at in times:
        cut = current.get(closed_at)
        if event.received_at <= closed_at:
            if cut is not None:  # else this state is still that closing time's, and stays so
                inner = msgspec.structs.replace(cut.state)
                record(inner, event)
                cut = Cut(closed_at=closed_at, state=inner)
        elif cut is None:
            # The first submission after the closing time: what counts there stays as it was.
            cut = Cut(closed_at=closed_at, state=msgspec.structs.replace(state, cuts=[], overvote_rejected=[]))
        if cut is not None:
            cuts.append(cut)
    state.cuts = cuts  # replaced, never mutated (Tally.apply tries events on shallow copies)


def effective(state: VoterState) -> VoteCast | None:
    """The instruction that counts for a control number, or None if it is not present."""
    if state.ballot is not None:
        return state.ballot  # R6: a ballot at the meeting revokes every proxy, whatever its date
    for vote in (state.owner, state.discretionary):  # R10: the owner's word beats discretion
        # R7: a revocation at T voids instructions executed strictly before T. The latest of a kind
        # has the greatest executed_at, so if it is void, so is every earlier one of that kind.
        if vote is not None and (state.revoked_at is None or vote.executed_at >= state.revoked_at):
            return vote
    return None


# What decides a control number's contribution, compared by identity: (instruction, fill) in the
# common case; with an attendance or Cuts, also the attendance and each Cut's (closing time, instruction, fill).
Key = tuple[object, ...]


def _counting(state: VoterState) -> tuple[VoteCast | None, VoteCast | None]:
    """The effective instruction and the discretionary vote filling it, if any."""
    vote = effective(state)
    return vote, (discretion_fill(state) if vote is not None and vote is state.owner else None)


def _key(state: VoterState) -> Key:
    """What the control number's contribution depends on (see Key)."""
    vote = effective(state)
    fill = discretion_fill(state) if vote is not None and vote is state.owner else None
    if state.attended is None and not state.cuts:
        return (vote, fill)
    return (vote, fill, state.attended, *(x for cut in state.cuts for x in (cut.closed_at, *_counting(cut.state))))


def voter_contribution(meeting: Meeting, position: Position, state: VoterState) -> Contribution | None:
    """What one control number adds to the tally now: per item its instruction (R12), present (R14), or None."""
    return part(meeting, position, _key(state), timing.item_horizons(meeting))


def counted_votes(state: VoterState) -> list[VoteCast]:
    """Every submission the control number's contribution rests on: instructions, fills (any item), attendance."""
    return list({id(v): v for v in _key(state) if isinstance(v, VoteCast)}.values())


def _differs(before: Key, after: Key) -> bool:
    return len(before) != len(after) or any(a is not b for a, b in zip(before, after, strict=True))


def part(meeting: Meeting, position: Position, key: Key, horizons: dict[str, datetime]) -> Contribution | None:
    """A control number's contribution from its Key: each item counts its own closing time's instruction."""
    vote, fill = key[0], key[1]
    assert vote is None or isinstance(vote, VoteCast)  # Key is loosely typed: these hold what _key put there
    assert fill is None or isinstance(fill, VoteCast)
    if len(key) == 2:
        return contribution(meeting, position, vote, fill) if vote is not None else None
    attended = key[2]
    assert attended is None or isinstance(attended, VoteCast)
    at: dict[object, tuple[VoteCast | None, VoteCast | None]] = {}
    for i in range(3, len(key), 3):
        cut_vote, cut_fill = key[i + 1], key[i + 2]
        assert (cut_vote is None or isinstance(cut_vote, VoteCast)) and (
            cut_fill is None or isinstance(cut_fill, VoteCast)
        )
        at[key[i]] = (cut_vote, cut_fill)
    per_item = {item.id: at.get(horizons.get(item.id), (vote, fill)) for item in meeting.spec.items}
    return combined(meeting, position, per_item, attended)


def counting(state: VoterState) -> tuple[VoteCast | None, VoteCast | None]:
    """What the tally counts for a control number: (effective instruction, discretionary fill)."""
    return _counting(state)


def discretion_fill(state: VoterState) -> VoteCast | None:
    """The nominee's discretionary vote that fills an owner's unmarked routine items (R10)."""
    vote = state.discretionary
    if state.ballot is not None or state.owner is None or vote is None or effective(state) is not state.owner:
        return None
    if state.revoked_at is not None and vote.executed_at < state.revoked_at:
        return None  # R7
    return vote


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
        before, after = _key(state), _key(trial)
        changed = _differs(before, after)
        old = part(self.meeting, position, before, horizons) if changed else None
        new = part(self.meeting, position, after, horizons) if changed else None
        if new is not None and self.meeting.spec.overvote_policy == "reject" and isinstance(event, VoteRevoked):
            # A revocation voiding the owner's instruction revives the nominee's discretionary vote:
            # that vote, not the revocation, is what would take the nominee over (R17).
            item_id = self._exceeds_entitlement(position.nominee, old, new)
            if item_id is not None and trial.discretionary is after[0] and trial.discretionary is not None:
                trial.overvote_rejected = [*trial.overvote_rejected, (trial.discretionary.event_id, item_id)]
                trial.discretionary = None
                after = _key(trial)
                changed = _differs(before, after)
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
                before[number] = _key(state)
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
            new_key = _key(voters[number])
            if len(old_key) == 2 and len(new_key) == 2 and old_key[0] is new_key[0] and old_key[1] is new_key[1]:
                continue  # the common case, without building a generator
            if not _differs(old_key, new_key):
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

    def late_voters(self) -> set[str]:
        """Control numbers holding a submission received after the first closure: refold them."""
        closed = self.meeting.first_closure
        if closed is None:
            return set()
        return {n for n, s in self.voters.items() if s.latest_received is not None and s.latest_received > closed}

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
        before = {n: _key(self.voters[n]) for n in numbers}
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
            if (old := part(self.meeting, self.meeting.positions[number], _key(state), horizons)) is not None:
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

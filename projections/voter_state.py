"""One control number's fold state: the maxima that decide what it counts, and its contribution. Pure, no I/O.

The state keeps, per control number, only the latest of each kind of submission (R5, R6, R7, R10).
Maxima are commutative and idempotent, so any permutation or duplication of the accepted events yields
the same state (R5, R18); recording one event costs O(1).

R12 per item: once an item closes before others (``timing.item_horizons``), a control number that
receives a submission after that closing time keeps, beside its state, a ``Cut``: the same maxima over
the submissions received by then, which decide that item. The common case (no per-item closure) keeps
none and pays one test per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
import msgspec.structs

from events import Position, VoteCast, VoteRevoked
from projections import timing
from projections.contribution import Contribution, combined, contribution
from projections.meeting import Meeting


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


def key_of(state: VoterState) -> Key:
    """What the control number's contribution depends on (see Key)."""
    vote = effective(state)
    fill = discretion_fill(state) if vote is not None and vote is state.owner else None
    if state.attended is None and not state.cuts:
        return (vote, fill)
    return (vote, fill, state.attended, *(x for cut in state.cuts for x in (cut.closed_at, *_counting(cut.state))))


def voter_contribution(meeting: Meeting, position: Position, state: VoterState) -> Contribution | None:
    """What one control number adds to the tally now: per item its instruction (R12), present (R14), or None."""
    return part(meeting, position, key_of(state), timing.item_horizons(meeting))


def counted_votes(state: VoterState) -> list[VoteCast]:
    """Every submission the control number's contribution rests on: instructions, fills (any item), attendance."""
    return list({id(v): v for v in key_of(state) if isinstance(v, VoteCast)}.values())


def differs(before: Key, after: Key) -> bool:
    """Whether two Keys name other submissions (by identity: the same objects count the same)."""
    if len(before) == 2 == len(after):  # the common case, without a generator: (instruction, fill)
        return before[0] is not after[0] or before[1] is not after[1]
    return len(before) != len(after) or any(a is not b for a, b in zip(before, after, strict=True))


def part(meeting: Meeting, position: Position, key: Key, horizons: dict[str, datetime]) -> Contribution | None:
    """A control number's contribution from its Key: each item counts its own closing time's instruction."""
    vote, fill = key[0], key[1]
    assert vote is None or isinstance(vote, VoteCast)  # Key is loosely typed: these hold what key_of put there
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

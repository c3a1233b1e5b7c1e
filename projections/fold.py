"""Fold accepted submissions into quorum and per-item tallies. Pure, no I/O.

The fold keeps, per control number, only the maxima that decide its effective instruction (R5, R6,
R7, R10). Maxima are commutative and idempotent, so any permutation or duplication of the accepted
events yields the same state and the same tally (R5, R18); applying one event costs O(1).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from events import Position, VoteCast, VoteRevoked
from projections.meeting import Meeting

BROKER_NON_VOTE = "broker_non_vote"
REGISTERED = ""  # nominee key of registered holders' votes in the tally buckets

# Channels whose unmarked items vote with the board's recommendation for registered holders (R9).
_PROXY_CHANNELS = frozenset({"internet", "phone", "mail"})


def instruction_key(vote: VoteCast) -> tuple[datetime, datetime, str]:
    """R5 order: latest executed_at, then later received_at, then greater event_id."""
    return (vote.executed_at, vote.received_at, vote.event_id)


class VoterState(msgspec.Struct, kw_only=True):
    """What decides one control number's effective instruction: the latest of each kind."""

    owner: VoteCast | None = None  # latest instruction of the holder (or its nominee on its behalf)
    discretionary: VoteCast | None = None  # latest discretionary vote of the nominee (R10)
    ballot: VoteCast | None = None  # latest in-person ballot (R6)
    revoked_at: datetime | None = None  # latest revocation (R7)


def _later(current: VoteCast | None, candidate: VoteCast) -> VoteCast:
    if current is None or instruction_key(candidate) > instruction_key(current):
        return candidate
    return current


def record(state: VoterState, event: VoteCast | VoteRevoked) -> None:
    """Fold one accepted submission into a control number's state."""
    if isinstance(event, VoteRevoked):
        if state.revoked_at is None or event.executed_at > state.revoked_at:
            state.revoked_at = event.executed_at
    elif event.channel == "in_person":
        state.ballot = _later(state.ballot, event)
    elif event.discretionary:
        state.discretionary = _later(state.discretionary, event)
    else:
        state.owner = _later(state.owner, event)


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


@dataclass(frozen=True)
class Contribution:
    """What one effective instruction adds to the tally: shares present and shares per bucket."""

    present: int
    buckets: dict[tuple[str, str, str], int]


def contribution(meeting: Meeting, position: Position, vote: VoteCast) -> Contribution:
    """Shares present (R2, R14) and voted per (item, option, nominee) bucket (R3, R9, R10, R16)."""
    represented = vote.shares if vote.shares is not None else position.shares
    beneficial = position.kind == "beneficial"
    nominee = (position.nominee or REGISTERED) if beneficial else REGISTERED
    buckets: dict[tuple[str, str, str], int] = {}
    for item in meeting.spec.items:
        choice = vote.choices.get(item.id)
        if choice is None and not beneficial and vote.channel in _PROXY_CHANNELS:
            choice = item.recommendation  # R9: a signed card votes unmarked items as recommended
        voted = 0
        if isinstance(choice, str):
            buckets[(item.id, choice, nominee)] = represented
            voted = represented
        elif isinstance(choice, dict):
            for option, shares in choice.items():
                if shares:
                    buckets[(item.id, option, nominee)] = buckets.get((item.id, option, nominee), 0) + shares
                    voted += shares
        if beneficial and not item.routine and voted < represented:
            buckets[(item.id, BROKER_NON_VOTE, nominee)] = represented - voted  # R16
    return Contribution(present=represented, buckets=buckets)


@dataclass
class Tally:
    """Running quorum and tally of one meeting, maintained incrementally event by event."""

    meeting: Meeting
    voters: dict[str, VoterState] = field(default_factory=dict)
    present: int = 0
    present_count: int = 0
    buckets: Counter = field(default_factory=Counter)
    events_applied: int = 0
    # Keys changed since the owner last cleared them: lets a store write only what changed.
    dirty_voters: set[str] = field(default_factory=set)
    dirty_buckets: set[tuple[str, str, str]] = field(default_factory=set)

    def apply(self, event: VoteCast | VoteRevoked) -> bool:
        """Fold one accepted submission; return True if the tally changed."""
        self.events_applied += 1
        position = self.meeting.positions.get(event.control_number)
        if position is None:
            return False  # cannot happen for accepted events (R1); kept total for safety
        state = self.voters.get(event.control_number)
        if state is None:
            state = self.voters[event.control_number] = VoterState()
        before = effective(state)
        record(state, event)
        self.dirty_voters.add(event.control_number)
        after = effective(state)
        if before is after:
            return False
        if before is not None:
            self._add(contribution(self.meeting, position, before), -1)
        if after is not None:
            self._add(contribution(self.meeting, position, after), +1)
        return True

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

"""R17 `reject` independent of when a closure or cut-off change was logged: a meeting's votes counted again. Pure.

Under `reject` the instruction refused is the first, in log order, to take its nominee over the
entitlement: a decision that rests on every earlier vote of the nominee, of every control number. A
poll closure or cut-off change logged after votes it makes void (R12) must therefore not leave a vote
refused because of one that never counted: the whole meeting is folded again, in log order, under the
meeting as it now is, as if every closure and cut-off change had been logged first (R5).
"""

from __future__ import annotations

from collections.abc import Iterable

from events import VoteCast, VoteRevoked
from projections.fold import Tally, VoterState


def recount(tally: Tally, events: Iterable[VoteCast | VoteRevoked]) -> Tally:
    """A new tally of the meeting: ``events`` (all its accepted submissions, log order) folded under its state now."""
    tally.settle()
    fresh = Tally(meeting=tally.meeting)
    for event in events:
        fresh.apply(event)  # event by event: R17 `reject` depends on the order
    fresh.events_applied = tally.events_applied  # a refold applies no new event
    for number in tally.voters:  # the same submissions give the same control numbers: kept whatever happens
        fresh.voters.setdefault(number, VoterState())
    # Every row the old tally wrote may change: a store rewrites them (refusals included).
    fresh.dirty_voters = set(fresh.voters)
    fresh.dirty_buckets = set(tally.buckets) | set(fresh.buckets) | tally.dirty_buckets
    return fresh

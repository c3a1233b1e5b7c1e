"""An independent, deliberately naive count of a meeting's votes: the oracle for the fold.

It shares nothing with projections.fold: it keeps every instruction, sorts them per control number
and re-derives the effective one from the rules' text (R5, R6, R7, R9, R10, R16), then sums.
"""

from __future__ import annotations

from collections import defaultdict

from events import MeetingScheduled, Position, VoteCast, VoteRevoked


def effective_instruction(votes: list[VoteCast], revocations: list[VoteRevoked]) -> VoteCast | None:
    """R6 ballots first; else the owner's latest unrevoked instruction; else the nominee's discretion."""
    ballots = [v for v in votes if v.channel == "in_person"]
    if ballots:
        return sorted(ballots, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1]
    for discretionary in (False, True):
        candidates = [
            v for v in votes
            if v.channel != "in_person" and v.discretionary == discretionary
            and not any(v.executed_at < r.executed_at for r in revocations)
        ]
        if candidates:
            return sorted(candidates, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1]
    return None


def count(spec: MeetingScheduled, positions: dict[str, Position], events: list) -> dict:
    """Return {"present": int, "items": {item: {option|"broker_non_votes": shares}}}."""
    votes, revocations, seen = defaultdict(list), defaultdict(list), set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if isinstance(event, VoteCast):
            votes[event.control_number].append(event)
        elif isinstance(event, VoteRevoked):
            revocations[event.control_number].append(event)
    present = 0
    items = {item.id: defaultdict(int) for item in spec.items}
    for control_number in set(votes) | set(revocations):
        vote = effective_instruction(votes[control_number], revocations[control_number])
        if vote is None:
            continue
        position = positions[control_number]
        shares = vote.shares or position.shares
        present += shares
        for item in spec.items:
            choice = vote.choices.get(item.id)
            if choice is None and position.kind == "registered" and vote.channel in ("internet", "phone", "mail"):
                choice = item.recommendation
            split = {choice: shares} if isinstance(choice, str) else dict(choice or {})
            for option, n in split.items():
                items[item.id][option] += n
            if position.kind == "beneficial" and not item.routine:
                items[item.id]["broker_non_votes"] += shares - sum(split.values())
    return {"present": present, "items": {k: {o: n for o, n in v.items() if n} for k, v in items.items()}}

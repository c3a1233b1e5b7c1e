"""An independent, deliberately naive count of a meeting's votes: the oracle for the fold.

It shares nothing with projections.fold: it keeps every instruction, sorts them per control number
and re-derives the effective one from the rules' text (R5, R6, R7, R9, R10, R16), then sums. With
per-item closing times (R12 per item), it does so once per item over the submissions received by then.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

from events import MeetingScheduled, Position, VoteCast, VoteRevoked


def discretionary_fill(votes: list[VoteCast], revocations: list[VoteRevoked]) -> VoteCast | None:
    """The latest unrevoked discretionary vote (it fills an owner's unmarked routine items, R10)."""
    candidates = [v for v in votes if v.discretionary and not any(v.executed_at < r.executed_at for r in revocations)]
    return sorted(candidates, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1] if candidates else None


def effective_instruction(votes: list[VoteCast], revocations: list[VoteRevoked]) -> VoteCast | None:
    """R6 ballots (marking an item) first; else the owner's latest unrevoked instruction; else the nominee's."""
    ballots = [v for v in votes if v.channel == "in_person" and v.choices]
    if ballots:
        return sorted(ballots, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1]
    for discretionary in (False, True):
        candidates = [
            v
            for v in votes
            if v.channel != "in_person"
            and v.discretionary == discretionary
            and not any(v.executed_at < r.executed_at for r in revocations)
        ]
        if candidates:
            return sorted(candidates, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1]
    return None


def latest_attendance(votes: list[VoteCast]) -> VoteCast | None:
    """R6: an in-person vote marking nothing is attendance: present, and it revokes nothing."""
    attended = [v for v in votes if v.channel == "in_person" and not v.choices]
    return sorted(attended, key=lambda v: (v.executed_at, v.received_at, v.event_id))[-1] if attended else None


def kept(spec: MeetingScheduled, closes: dict, event) -> bool:
    """R12 per item: refused when every item it marks (every item, if none) had closed when it was received."""
    marks = list(event.choices) if isinstance(event, VoteCast) else []
    targets = marks or [item.id for item in spec.items]
    return not all(closes.get(i) is not None and event.received_at > closes[i] for i in targets)


def count(
    spec: MeetingScheduled,
    positions: dict[str, Position],
    events: list,
    entitlements: dict[str, int] | None = None,
    closes: dict | None = None,
) -> dict:
    """Return {"present": int, "items": {item: {option|"broker_non_votes": shares}}} (R17 prorated).

    ``closes``: each closed item's closing time (R12 per item); an item absent is open.
    """
    closes = closes or {}
    votes, revocations, seen = defaultdict(list), defaultdict(list), set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if not kept(spec, closes, event):
            continue
        if isinstance(event, VoteCast):
            votes[event.control_number].append(event)
        elif isinstance(event, VoteRevoked):
            revocations[event.control_number].append(event)
    present = 0
    items = {item.id: defaultdict(int) for item in spec.items}
    by_nominee = defaultdict(lambda: defaultdict(int))
    for control_number in set(votes) | set(revocations):
        position = positions[control_number]
        per_item = {}
        for item in spec.items:
            close = closes.get(item.id)
            mine = [v for v in votes[control_number] if close is None or v.received_at <= close]
            theirs = [r for r in revocations[control_number] if close is None or r.received_at <= close]
            vote = effective_instruction(mine, theirs)
            if vote is None:
                continue
            shares = vote.shares or position.shares
            fill = None
            if position.kind == "beneficial" and vote.channel != "in_person" and not vote.discretionary:
                fill = discretionary_fill(mine, theirs)
            per_item[item.id] = (shares, card_choices(spec, position, vote, fill, shares).get(item.id))
        attended = latest_attendance(votes[control_number])
        # R14: the greatest shares an instruction counting on some item, or the attendance, represents.
        counted = [shares for shares, _ in per_item.values()]
        if attended is not None:
            counted.append(attended.shares or position.shares)
        presence = max(counted, default=0)
        if not presence:
            continue
        present += presence
        for item in spec.items:
            shares, choice = per_item.get(item.id, (0, None))
            split = {choice: shares} if isinstance(choice, str) else dict(choice or {})
            for option, n in split.items():
                if position.kind == "beneficial":
                    by_nominee[(item.id, position.nominee)][option] += n
                else:
                    items[item.id][option] += n
            if position.kind == "beneficial" and not item.routine:
                items[item.id]["broker_non_votes"] += presence - sum(split.values())  # R16: present, not voted
    for (item_id, nominee), votes in by_nominee.items():
        limit = entitlements.get(nominee) if entitlements else None
        total = sum(votes.values())
        if limit is not None and total > limit and spec.overvote_policy == "prorate":
            votes = largest_remainder(votes, limit, [i for i in spec.items if i.id == item_id][0].options)
        for option, n in votes.items():
            items[item_id][option] += n
    return {"present": present, "items": {k: {o: n for o, n in v.items() if n} for k, v in items.items()}}


def largest_remainder(votes: dict[str, int], limit: int, options: list[str]) -> dict[str, int]:
    """R17 prorate, spelled out with exact fractions: quotas, floors, then largest remainders."""
    total = sum(votes.values())
    quotas = {o: Fraction(n * limit, total) for o, n in votes.items()}
    counted = {o: int(q) for o, q in quotas.items()}
    order = sorted(quotas, key=lambda o: (-(quotas[o] - int(quotas[o])), options.index(o)))
    for o in order[: limit - sum(counted.values())]:
        counted[o] += 1
    return counted


def card_choices(
    spec: MeetingScheduled, position: Position, vote: VoteCast, fill: VoteCast | None, shares: int
) -> dict:
    """What the instruction votes per item, per R9, R10 and universal proxy card rules."""
    proxy_card = position.kind == "registered" and vote.channel in ("internet", "phone", "mail")
    marked = dict(vote.choices)
    for item in spec.items:
        if item.id in marked or item.universal_proxy:
            continue
        if proxy_card:
            marked[item.id] = item.recommendation
        elif fill is not None and item.routine and item.id in fill.choices:
            choice = fill.choices[item.id]
            if isinstance(choice, str) or sum(choice.values()) <= shares:
                marked[item.id] = choice
    groups = defaultdict(list)
    for item in spec.items:
        if item.universal_proxy:
            groups[item.group].append(item)
    for members in groups.values():
        fors = sum(
            1
            for i in members
            if (marked.get(i.id) == "for") or (isinstance(marked.get(i.id), dict) and marked[i.id].get("for"))
        )
        if fors > members[0].seats:
            for i in members:
                marked.pop(i.id, None)
        elif proxy_card and not any(i.id in marked for i in members):
            for i in members:
                marked[i.id] = i.recommendation
    return marked

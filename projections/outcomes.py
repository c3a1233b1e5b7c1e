"""Quorum (R14) and vote standards (R15) over summed tallies: the tally report. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events import Item, MeetingScheduled
from projections.fold import BROKER_NON_VOTE


def quorum(spec: MeetingScheduled, present: int) -> dict[str, Any]:
    """R14: required shares and whether present × den ≥ outstanding × num, in exact integers."""
    num, den = spec.quorum.numerator, spec.quorum.denominator
    required = -(-spec.outstanding * num // den)  # ceiling division, no floats
    return {"required": required, "present": present, "met": present * den >= spec.outstanding * num}


def item_counts(item: Item, totals: Mapping[str, int], present: int) -> dict[str, int]:
    """The reported columns of one item: each option, broker non-votes, and present but not voted."""
    counts = {option: int(totals.get(option, 0)) for option in item.options}
    counts["broker_non_votes"] = int(totals.get(BROKER_NON_VOTE, 0))
    # The identity options + broker non-votes + not voted = present holds by construction.
    counts["not_voted"] = present - sum(counts.values())
    return counts


def outcomes(spec: MeetingScheduled, totals: Mapping[str, Mapping[str, int]], met: bool) -> dict[str, str]:
    """R15: the outcome of every item; `no_quorum` everywhere without quorum; ties reported."""
    if not met:
        return {item.id: "no_quorum" for item in spec.items}
    result: dict[str, str] = {}
    groups: dict[str, list[Item]] = {}
    for item in spec.items:
        counts = totals.get(item.id, {})
        if item.standard == "majority_of_votes_cast":
            yes, no = counts.get("for", 0), counts.get("against", 0)
            result[item.id] = "passed" if yes > no else "failed" if yes < no else "tie"
        elif item.standard == "frequency":
            result[item.id] = _most_votes(item, counts)
        else:
            groups.setdefault(item.group or item.id, []).append(item)
    for members in groups.values():
        result.update(_plurality(members, totals))
    return result


def _most_votes(item: Item, counts: Mapping[str, int]) -> str:
    """The option with most votes among the real choices (not abstain); `tie` if shared."""
    choices = [option for option in item.options if option != "abstain"]
    best = max((counts.get(option, 0) for option in choices), default=0)
    winners = [option for option in choices if counts.get(option, 0) == best]
    if best == 0:
        return "no_votes"
    return winners[0] if len(winners) == 1 else "tie"


def _plurality(members: list[Item], totals: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """The `seats` nominees with most For votes are elected; a tie at the last seat is reported."""
    seats = members[0].seats or len(members)
    votes = {item.id: totals.get(item.id, {}).get("for", 0) for item in members}
    ranked = sorted(votes.values(), reverse=True)
    if len(ranked) <= seats:
        return {item_id: "elected" if v > 0 else "not_elected" for item_id, v in votes.items()}
    cutoff, next_best = ranked[seats - 1], ranked[seats]
    result = {}
    for item_id, v in votes.items():
        if v == 0:
            result[item_id] = "not_elected"  # no For votes elects nobody, tie or not
        elif v > cutoff or (v == cutoff and cutoff > next_best):
            result[item_id] = "elected" if v > 0 else "not_elected"
        elif v == cutoff:
            result[item_id] = "tie"
        else:
            result[item_id] = "not_elected"
    return result


def margin(spec: MeetingScheduled, totals: Mapping[str, Mapping[str, int]], item_id: str) -> int:
    """Shares by which an item stands on its outcome's side of its standard's line (R15); negative: short of it.

    Majority of votes cast: For - Against (> 0 passes, 0 ties). Frequency: the leading choice's votes over
    the runner-up's (0: a tie, or no votes). Plurality: a nominee's For over the first nominee left out if
    it is elected, short of the last one elected if not (0: a tie at the last seat); For itself when the
    nominees do not exceed the seats (For > 0 elects). Quorum is not in it: without quorum every outcome
    is ``no_quorum`` whatever the margin (the quorum's own line is ``quorum.present`` vs ``required``).
    """
    item = next(i for i in spec.items if i.id == item_id)
    counts = totals.get(item_id, {})
    if item.standard == "majority_of_votes_cast":
        return counts.get("for", 0) - counts.get("against", 0)  # R15: passes if For > Against
    if item.standard == "frequency":
        ranked = [*sorted((counts.get(o, 0) for o in item.options if o != "abstain"), reverse=True), 0, 0]
        return ranked[0] - ranked[1]  # R15: the most votes among the real choices (as _most_votes)
    # R15 plurality: the group's `seats` nominees with most For votes (as _plurality groups them).
    members = [i for i in spec.items if i.standard == "plurality" and (i.group or i.id) == (item.group or item.id)]
    seats = members[0].seats or len(members)
    mine = counts.get("for", 0)
    if len(members) <= seats:
        return mine
    others = sorted((totals.get(m.id, {}).get("for", 0) for m in members if m.id != item_id), reverse=True)
    return mine - others[seats - 1]  # elected: over the first left out; left out: short of the last elected


def tally_report(
    spec: MeetingScheduled, present: int, totals: Mapping[str, Mapping[str, int]], as_of_position: int
) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md: quorum, per-item columns, outcome and margin."""
    q = quorum(spec, present)
    results = outcomes(spec, totals, q["met"])
    items = {}
    for item in spec.items:
        counts: dict[str, Any] = item_counts(item, totals.get(item.id, {}), present)
        counts["outcome"] = results[item.id]
        counts["margin"] = margin(spec, totals, item.id)
        items[item.id] = counts
    return {
        "meeting_id": spec.meeting_id,
        "as_of_position": as_of_position,
        "outstanding": spec.outstanding,
        "quorum": q,
        "items": items,
    }

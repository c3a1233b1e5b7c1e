"""What one effective instruction adds to the tally: shares present and shares per bucket. Pure.

Buckets are keyed (item, option, nominee): option ``broker_non_vote`` holds R16's broker
non-votes, and nominee ``""`` the registered holders, so over-votes can be judged per nominee (R17).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from events import Item, Position, VoteCast
from projections.meeting import Meeting

BROKER_NON_VOTE = "broker_non_vote"
REGISTERED = ""  # nominee key of registered holders' votes

# Channels whose unmarked items vote with the board's recommendation for registered holders (R9).
_PROXY_CHANNELS = frozenset({"internet", "phone", "mail"})

Choice = str | dict[str, int] | None


@dataclass(frozen=True)
class Contribution:
    """Shares present and shares per (item, option, nominee) bucket of one control number."""

    present: int
    buckets: dict[tuple[str, str, str], int]


def contribution(meeting: Meeting, position: Position, vote: VoteCast, fill: VoteCast | None = None) -> Contribution:
    """Shares present (R2, R14) and voted per bucket (R3, R9, R10, R16, universal proxy cards).

    ``fill`` is the nominee's discretionary vote, which votes the routine items a beneficial
    owner's instruction leaves unmarked (R9, R10).
    """
    represented = vote.shares if vote.shares is not None else position.shares
    beneficial = position.kind == "beneficial"
    nominee = (position.nominee or REGISTERED) if beneficial else REGISTERED
    choices = _marked_choices(meeting, position, vote, fill, represented)
    buckets: dict[tuple[str, str, str], int] = {}
    for item in meeting.spec.items:
        choice = choices.get(item.id)
        voted = 0
        if isinstance(choice, str):
            buckets[(item.id, choice, nominee)] = represented
            voted = represented
        elif choice:
            for option, shares in choice.items():
                if shares:
                    buckets[(item.id, option, nominee)] = shares
                    voted += shares
        if beneficial and not item.routine and voted < represented:
            buckets[(item.id, BROKER_NON_VOTE, nominee)] = represented - voted  # R16
    return Contribution(present=represented, buckets=buckets)


def _marked_choices(
    meeting: Meeting, position: Position, vote: VoteCast, fill: VoteCast | None, represented: int
) -> dict[str, Choice]:
    """The choice that counts on each item, after R9 and R10 filling and universal-proxy voiding."""
    choices: dict[str, Choice] = dict(vote.choices)
    recommended = position.kind == "registered" and vote.channel in _PROXY_CHANNELS
    groups: dict[str, list[Item]] = {}
    for item in meeting.spec.items:
        if item.universal_proxy:
            groups.setdefault(item.group or item.id, []).append(item)
            continue
        if item.id in choices:
            continue
        if recommended:
            # R9: a signed card votes unmarked items as recommended, as the card said when it was executed
            choices[item.id] = meeting.recommendation(item.id, vote.executed_at)
        elif fill is not None and item.routine and _fits(fill.choices.get(item.id), represented):
            choices[item.id] = fill.choices.get(item.id)  # R10: the nominee votes uninstructed routine items
    for members in groups.values():
        _universal_proxy(members, choices, recommended, lambda item: meeting.recommendation(item.id, vote.executed_at))
    return choices


def _universal_proxy(
    members: list[Item], choices: dict[str, Choice], recommended: bool, recommendation: Callable[[Item], str | None]
) -> None:
    """A contested group on a universal proxy card: over-marked voids, under-marked votes as marked."""
    seats = members[0].seats or len(members)
    marked = [item for item in members if item.id in choices]
    if sum(_marks_for(choices[item.id]) for item in marked) > seats:
        for item in members:
            choices.pop(item.id, None)  # more For marks than seats: the card's director votes are void
    elif not marked and recommended:
        for item in members:
            choices[item.id] = recommendation(item)  # an unmarked group votes as the board recommends (R9)
    # Otherwise the card votes exactly what it marks: no filling of the other nominees.


def _marks_for(choice: Choice) -> int:
    if isinstance(choice, str):
        return choice == "for"
    return bool(choice and choice.get("for"))


def _fits(choice: Choice, represented: int) -> bool:
    """A discretionary choice can fill an owner's item only within the shares the owner represents."""
    if choice is None or isinstance(choice, str):
        return choice is not None
    return sum(choice.values()) <= represented


def combined(
    meeting: Meeting,
    position: Position,
    per_item: dict[str, tuple[VoteCast | None, VoteCast | None]],
    attended: VoteCast | None = None,
) -> Contribution | None:
    """One control number's contribution when what counts differs per item, or it attended (R6, R12, R14, R16).

    ``per_item``: the (instruction, discretionary fill) counting on each item (R12 per item: the
    instruction received before an item's closing time). Each item takes its buckets from its own
    instruction's contribution. Present (R14): the greatest shares any counting instruction, or the
    latest attendance, represents; then R16 again on that presence: a beneficial position's present
    shares not voted on a non-routine item are broker non-votes there. None when nothing is present.
    """
    parts: dict[tuple[int, int], Contribution] = {}
    present = 0
    buckets: dict[tuple[str, str, str], int] = {}
    for item in meeting.spec.items:
        vote, fill = per_item.get(item.id, (None, None))
        if vote is None:
            continue
        part = parts.get((id(vote), id(fill)))
        if part is None:
            part = parts[(id(vote), id(fill))] = contribution(meeting, position, vote, fill)
        present = max(present, part.present)
        buckets.update((key, shares) for key, shares in part.buckets.items() if key[0] == item.id)
    if attended is not None:
        present = max(present, attended.shares if attended.shares is not None else position.shares)
    if not present:
        return None
    if position.kind == "beneficial":
        nominee = position.nominee or REGISTERED
        for item in meeting.spec.items:
            if item.routine:
                continue
            voted = sum(n for (i, option, _), n in buckets.items() if i == item.id and option != BROKER_NON_VOTE)
            if voted < present:
                buckets[(item.id, BROKER_NON_VOTE, nominee)] = present - voted  # R16 on the presence
            else:
                buckets.pop((item.id, BROKER_NON_VOTE, nominee), None)
    return Contribution(present=present, buckets=buckets)

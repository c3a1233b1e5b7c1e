"""Seeded marks on a simulated card or form: choices, universal proxy cards, signatures, typos. Pure.

A contested election on a universal proxy card lists every nominee of both sides in one group that
fills ``seats``. Holders mostly mark For on exactly ``seats`` nominees: the board's slate, the
dissident's slate, the board's with one targeted incumbent swapped for a dissident nominee (what proxy
advisers often recommend) or a mix of their own; some mark fewer (often only the dissident's
nominees); a few paper cards and ballots mark more than ``seats``, which voids the card's votes on the
group (the internet and phone platforms and the brokers' forms refuse that, so only paper over-marks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events import Item
from services.devtools.demo.spec import SimulationSpec

DAY = 86_400
HOUR = 3_600

# (item id, options, the board's recommendation) of one item, as the campaign keeps them.
CardItem = tuple[str, list[str], str | None]

# Of the cards that mark a group at all (the rest are governed by the spec's `unmarked`):
UNDER_MARK = 0.07  # For on fewer nominees than seats ...
SHORT_SLATE = 0.5  # ... and of those, For on the dissident's nominees only
OVER_MARK = 0.03  # paper cards and ballots with For on more nominees than seats ...
MARK_ALL = 0.6  # ... and of those, For on every nominee ("I support them all")
DISSIDENT_SLATE = 0.5  # of the full cards not voting the board's slate: the dissident's ...
ONE_SWAP = 0.75  # ... else mostly the board's with one swap, otherwise a holder's own mix
WITHHOLD = 0.3  # a nominee not marked For gets a mark anyway ...
AGAINST = 0.75  # ... Against (the card's WITHHOLD box), otherwise Abstain
PAPER = frozenset({"mail", "in_person"})  # channels on which a holder can physically over-mark
WRONG_OPTIONS = ("withhold", "yes", "4y", "none")  # what people write on the wrong card or form


@dataclass(frozen=True)
class Contest:
    """One universal-proxy group: seats, nominees in card order, the board's and the dissident's slates."""

    seats: int
    nominees: tuple[str, ...]
    options: dict[str, list[str]]
    board: tuple[str, ...]  # the nominees the board recommends For
    dissident: tuple[str, ...]  # the other side's nominees, then the board's nominees it does not target
    one_swap: tuple[str, ...]  # the board's slate with its last nominee replaced by the first dissident


def contests(items: list[Item]) -> list[Contest]:
    """The meeting's universal-proxy groups, in card order (none for an uncontested meeting)."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        if item.universal_proxy:
            groups.setdefault(item.group or item.id, []).append(item)
    out = []
    for members in groups.values():
        seats = members[0].seats or len(members)
        board = tuple(i.id for i in members if i.recommendation == "for")
        others = tuple(i.id for i in members if i.recommendation != "for")
        # The dissident runs a short slate and backs the board nominees listed first on the card to
        # fill the remaining seats: the spec lists the incumbents it targets last.
        dissident = (others + board)[:seats]
        one_swap = board[: seats - 1] + others[:1] if others else board[:seats]
        out.append(
            Contest(
                seats=seats,
                nominees=tuple(i.id for i in members),
                options={i.id: list(i.options) for i in members},
                board=board[:seats],
                dissident=dissident,
                one_swap=one_swap,
            )
        )
    return out


def item_marks(
    rng: random.Random,
    items: list[CardItem],
    sim: SimulationSpec,
    represented: int,
    beneficial: bool,
    marked: bool = False,
) -> dict[str, Any]:
    """Marks on the card or form: mostly the board's way; nominees sometimes split (R3)."""
    rnd = rng.random  # hot path: one draw decides unmarked / recommended / other
    unmarked = 0.0 if marked else sim.unmarked
    follow = unmarked + (1.0 - unmarked) * sim.follow_board
    out: dict[str, Any] = {}
    for item_id, options, recommendation in items:
        r = rnd()
        if r < unmarked:
            continue  # R9: registered → recommendation; beneficial → broker non-vote
        if recommendation is not None and r < follow:
            out[item_id] = recommendation
        else:
            out[item_id] = options[int(rnd() * len(options))]
    if beneficial and represented > 1 and rnd() < sim.split:
        item_id, options, _ = rng.choice(items)
        if len(options) > 1:
            first_option, second_option = rng.sample(options, 2)
            first = rng.randint(1, represented - 1)
            # Usually the split covers all represented shares; sometimes part is left unvoted.
            second = represented - first if rnd() < 0.8 else rng.randint(0, represented - first)
            out[item_id] = {first_option: first, second_option: second} if second else {first_option: first}
    return out


def contest_marks(
    rng: random.Random, contest: Contest, sim: SimulationSpec, channel: str, marked: bool = False
) -> dict[str, str]:
    """One card's marks on a universal-proxy group; empty if the holder leaves the group unmarked."""
    if not marked and rng.random() < sim.unmarked:
        return {}  # a registered card then votes the board's way; a broker form, broker non-votes
    seats, nominees = contest.seats, contest.nominees
    r = rng.random()
    # Electronic platforms refuse an over-mark: that holder goes on to mark a full slate instead.
    if channel in PAPER and len(nominees) > seats and r < OVER_MARK:
        if rng.random() < MARK_ALL:
            fors = list(nominees)
        else:
            fors = rng.sample(nominees, rng.randint(seats + 1, len(nominees)))
    elif seats > 1 and OVER_MARK <= r < OVER_MARK + UNDER_MARK:
        short = [n for n in nominees if n not in contest.board]
        if short and len(short) < seats and rng.random() < SHORT_SLATE:
            fors = short  # only the dissident's nominees: the classic short-slate vote
        else:
            fors = rng.sample(nominees, rng.randint(1, seats - 1))
    elif rng.random() < (sim.follow_board if sim.board_slate is None else sim.board_slate):
        fors = list(contest.board)
    elif rng.random() < DISSIDENT_SLATE:
        fors = list(contest.dissident)
    elif rng.random() < ONE_SWAP:
        fors = list(contest.one_swap)
    else:
        fors = rng.sample(nominees, min(seats, len(nominees)))  # a holder's own mix of both sides
    chosen = set(fors)
    out: dict[str, str] = {}
    for nominee in nominees:  # card order
        if nominee in chosen:
            out[nominee] = "for"
        elif rng.random() < WITHHOLD:
            options = contest.options[nominee]
            choice = "against" if rng.random() < AGAINST else "abstain"
            if choice in options:
                out[nominee] = choice
    return out


def card_signatures(rng: random.Random, sim: SimulationSpec, holders: list[str]) -> list[str] | None:
    """R11: usually every holder signs; some cards come back unsigned or missing a joint holder."""
    if rng.random() < sim.unsigned:
        return None
    if len(holders) > 1 and rng.random() < sim.missing_joint_signature:
        return list(holders[:-1])
    return list(holders)


def typo(rng: random.Random, control_number: str, known: set[str]) -> str:
    """A control number mistyped by one digit, guaranteed not on the register."""
    while True:
        digits = list(control_number.replace("-", ""))
        i = rng.randrange(len(digits))
        digits[i] = str((int(digits[i]) + rng.randint(1, 9)) % 10)
        mistyped = "-".join("".join(digits[j : j + 4]) for j in range(0, len(digits), 4))
        if mistyped not in known:
            return mistyped


def card_date(rng: random.Random, sim: SimulationSpec, t0: datetime, received: int) -> int:
    """The date written on a mail card: days before it arrives, read as noon of that day.

    Times are seconds after ``t0`` (the mailing, in the cards' fixed offset).
    """
    low, high = sim.mail_delay_days
    days = min(rng.randint(low, high), received // DAY)  # not dated before the mailing
    dated = received - days * DAY
    # Times carry a fixed offset, so local midnights are a constant shift on our axis.
    noon = dated - (t0.hour * HOUR + t0.minute * 60 + t0.second + dated) % DAY + 12 * HOUR
    return min(noon, received)

"""A deterministic synthetic record-date register: positions and nominee entitlements. Pure, no I/O.

Share sizes are long-tailed (log-normal weights: many small holders, a few large ones) and are
apportioned in exact integers (largest remainder), so the register sums to the outstanding shares.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from itertools import accumulate

from events import Entitlement, MeetingScheduled, Position, PositionsRecorded
from services.devtools.demo.spec import RegisterSpec
from services.registers.build import CHUNK_SIZE, chunk_events

_GIVEN = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Susan",
    "William",
    "Karen",
    "Richard",
    "Nancy",
    "Thomas",
    "Lisa",
    "Wei",
    "Fang",
    "Jun",
    "Li",
    "Hui",
    "Ming",
    "Xiaoling",
    "Hao",
    "Yan",
    "Priya",
    "Rahul",
    "Carlos",
    "Maria",
    "Kenji",
    "Yuki",
    "Anna",
)
_FAMILY = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Garcia",
    "Wilson",
    "Moore",
    "Taylor",
    "Anderson",
    "Chen",
    "Wang",
    "Zhang",
    "Liu",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Patel",
    "Kim",
    "Nguyen",
    "Tanaka",
    "Rossi",
    "Müller",
    "Cohen",
    "O'Brien",
    "Lopez",
    "Park",
)


def build_register(meeting: MeetingScheduled, spec: RegisterSpec) -> tuple[list[Position], list[Entitlement]]:
    """Build the register: known holders, registered (single and joint) and beneficial positions."""
    rng = random.Random(spec.seed)
    used: set[str] = set()
    positions = [
        Position(
            control_number=_control_number(rng, used), kind=h.kind, shares=h.shares, holders=[h.name], nominee=h.nominee
        )
        for h in spec.known_holders
    ]
    rest = meeting.outstanding - sum(p.shares for p in positions)
    count = spec.positions - len(positions)
    n_beneficial = _portion(count, spec.beneficial_positions) if spec.nominees else 0
    n_registered = count - n_beneficial
    beneficial_total = _portion(rest, spec.beneficial_shares) if n_beneficial else 0
    if n_registered == 0:
        beneficial_total = rest
    registered_total = rest - beneficial_total
    if n_beneficial > beneficial_total or n_registered > registered_total:
        raise ValueError(f"register: {count} synthetic positions cannot each hold a share of {rest}")
    cap = _portion(meeting.outstanding, spec.max_position)
    for shares in _sizes(rng, n_registered, registered_total, spec.size_sigma, cap):
        holders = _joint_names(rng) if rng.random() < spec.joint else [_name(rng)]
        positions.append(
            Position(control_number=_control_number(rng, used), kind="registered", shares=shares, holders=holders)
        )
    names = [n.name for n in spec.nominees]
    cum_weights = list(accumulate(n.weight for n in spec.nominees))
    for shares in _sizes(rng, n_beneficial, beneficial_total, spec.size_sigma, cap):
        nominee = rng.choices(names, cum_weights=cum_weights)[0]
        positions.append(
            Position(
                control_number=_control_number(rng, used),
                kind="beneficial",
                shares=shares,
                holders=[_name(rng)],
                nominee=nominee,
            )
        )
    total = sum(p.shares for p in positions)
    assert total == meeting.outstanding, f"register sums to {total}, not {meeting.outstanding}"
    return positions, entitlements_for(positions, spec)


def entitlements_for(positions: list[Position], spec: RegisterSpec) -> list[Entitlement]:
    """Each nominee's DTC entitlement: its books (beneficial shares) adjusted by its slack, floored."""
    books = nominee_books(positions)
    return [
        Entitlement(nominee=n.name, shares=max(0, math.floor(books.get(n.name, 0) * (1 + _exact(n.entitlement_slack)))))
        for n in spec.nominees
    ]


def nominee_books(positions: list[Position]) -> dict[str, int]:
    """Beneficial shares per nominee, as its own books show them."""
    books: dict[str, int] = {}
    for p in positions:
        if p.kind == "beneficial" and p.nominee is not None:
            books[p.nominee] = books.get(p.nominee, 0) + p.shares
    return books


def register_events(
    meeting: MeetingScheduled, positions: list[Position], entitlements: list[Entitlement], chunk_size: int = CHUNK_SIZE
) -> list[PositionsRecorded]:
    """Split the register into positions.recorded chunks with deterministic, content-derived ids (as a real one)."""
    return chunk_events(meeting, positions, entitlements, chunk_size)


def _exact(value: float) -> Fraction:
    """The decimal written in the simulation file as an exact fraction (no binary float error)."""
    return Fraction(str(value))


def _portion(total: int, fraction: float) -> int:
    """floor(total × fraction), exactly."""
    return math.floor(total * _exact(fraction))


def _sizes(rng: random.Random, n: int, total: int, sigma: float, cap: int) -> list[int]:
    """n long-tailed integer sizes, each >= 1 and (where possible) <= cap, summing to total."""
    if n == 0:
        return []
    # Integer weights: floats only shape the distribution; the apportionment below is exact.
    weights = [int(rng.lognormvariate(0.0, sigma) * 1_000_000) + 1 for _ in range(n)]
    spare = total - n
    for _ in range(8):  # clip the few giants; clipping lowers the sum, so repeat until stable
        limit = max(1, sum(weights) * (cap - 1) // max(spare, 1))
        if max(weights) <= limit or n * cap <= total:
            break
        weights = [min(w, limit) for w in weights]
    weight_sum = sum(weights)
    sizes = [1 + spare * w // weight_sum for w in weights]
    short = total - sum(sizes)
    # Largest remainder, ties by index: deterministic and exact.
    order = sorted(range(n), key=lambda i: (-(spare * weights[i] % weight_sum), i))
    for i in order[:short]:
        sizes[i] += 1
    return sizes


def _control_number(rng: random.Random, used: set[str]) -> str:
    """A fresh 16-digit control number printed in groups of four, e.g. 4417-2210-8093-1155."""
    while True:
        digits = f"{rng.randrange(1000, 10_000)}{rng.randrange(10**12):012d}"
        number = "-".join(digits[i : i + 4] for i in range(0, 16, 4))
        if number not in used:
            used.add(number)
            return number


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}"


def _joint_names(rng: random.Random) -> list[str]:
    """Two or three joint holders, usually of one family (JTWROS, tenants in common)."""
    family = rng.choice(_FAMILY)
    count = 3 if rng.random() < 0.15 else 2
    given = rng.sample(_GIVEN, count)
    return [f"{g} {family}" for g in given]

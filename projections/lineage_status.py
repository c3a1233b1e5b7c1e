"""What a vote lineage says: each row's status, the rows it names, and how it is told. Pure, no I/O.

The vocabulary of projections/lineage.py (which computes it) and of its readers (audit history, receipts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from events import AnyEvent, VoteCast, VoteRevoked

# Status of a row at the end of the log.
COUNTS = "counts"  # the effective instruction (R5, R6, R7, R10)
FILLS = "fills"  # a discretionary vote filling the owner's unmarked routine items (R10)
SUPERSEDED = "superseded"  # accepted, but does not count: `rule` says why, `by` names what
REVOKES = "revokes"  # an accepted revocation (R7): `voids` lists what it voided
REJECTED = "rejected"  # refused by the ledger at ingest: `reason` is the code
ATTENDS = "attends"  # the latest attendance (an in-person vote marking nothing): present (R14), revokes nothing (R6)


class LogEntry(NamedTuple):
    """One log row of a control number: position, decision, reason code and its decoded event."""

    position: int
    decision: str
    reason: str | None
    event: AnyEvent | None  # None if the stored payload no longer decodes


@dataclass(frozen=True)
class Ref:
    """A log row named by its position and event id."""

    position: int
    event_id: str | None  # None only for a row whose payload no longer decodes: never one that counts


@dataclass(frozen=True)
class Status:
    """What became of one log row, and by which rule and event."""

    position: int
    event_id: str | None
    decision: str
    reason: str | None
    status: str | None  # None for a row that is no vote or revocation
    rule: str | None = None
    by: Ref | None = None
    items: tuple[str, ...] = ()  # items filled (R10) or on which the nominee went over (R17)
    voids: tuple[Ref, ...] = ()  # instructions this revocation voided (R7)
    # R12 per item: when items closed at different times, what the row is on each item closed before
    # the others (the status above is the row's on the items still open, or closed last).
    per_item: tuple[ItemStatus, ...] = ()


@dataclass(frozen=True)
class ItemStatus:
    """What a row is on one item closed before others (R12 per item): counts there, or why not."""

    item: str
    status: str
    rule: str | None = None
    by: Ref | None = None


def counting_refs(statuses: Iterable[Status]) -> tuple[Ref | None, Ref | None]:
    """The rows that count at the end: (effective instruction, discretionary fill)."""
    effective = fill = None
    for s in statuses:
        if s.status == COUNTS:
            effective = Ref(s.position, s.event_id)
        elif s.status == FILLS:
            fill = Ref(s.position, s.event_id)
    return effective, fill


@dataclass(frozen=True)
class Presence:
    """What counts for a control number at the end, as the tally counts it (R6, R12 per item, R14)."""

    counts: Ref | None  # the instruction counting on the items still open (or closed last)
    fills: Ref | None  # the discretionary vote filling its routine items (R10)
    attends: Ref | None  # the latest attendance: present (R14), revokes nothing (R6)
    # R12 per item: (item, row) counting on an item closed before others, when it is not ``counts``.
    on_items: tuple[tuple[str, Ref], ...] = ()

    @property
    def present(self) -> bool:
        """Whether the tally counts the control number present (R14): something counts somewhere, or it attends."""
        return self.counts is not None or self.attends is not None or bool(self.on_items)


def presence(statuses: Iterable[Status]) -> Presence:
    """What counts at the end: the counting rows, the attendance, and what counts on items closed earlier."""
    statuses = list(statuses)
    counts, fills = counting_refs(statuses)
    attends = next((Ref(s.position, s.event_id) for s in statuses if s.status == ATTENDS), None)
    on_items = sorted(
        (
            (line.item, Ref(s.position, s.event_id))
            for s in statuses
            for line in s.per_item
            if line.status == COUNTS and Ref(s.position, s.event_id) != counts
        ),
        key=lambda entry: entry[0],
    )
    return Presence(counts, fills, attends, tuple(on_items))


def kind_of(event: VoteCast | VoteRevoked) -> str:
    """The fold's four kinds of submission (fold.record keeps the latest of each)."""
    if isinstance(event, VoteRevoked):
        return "revocation"
    if event.channel == "in_person":
        return "ballot" if event.choices else "attendance"  # R6: attending marks nothing
    return "discretionary" if event.discretionary else "owner"


def status_of(
    row: LogEntry,
    status: str | None,
    rule: str | None = None,
    by: Ref | None = None,
    items: tuple[str, ...] = (),
    voids: tuple[Ref, ...] = (),
) -> Status:
    """A row's Status from its log entry."""
    event_id = row.event.event_id if row.event is not None else None
    return Status(row.position, event_id, row.decision, row.reason, status, rule, by, items, voids)


def describe_per_item(per_item: Iterable[ItemStatus] | Iterable[dict[str, Any]]) -> str:
    """R12 per item in words, e.g. "on item 2: counts; on item 3: superseded R12 by #9 close-2" (empty: none)."""
    parts = []
    for line in per_item:
        entry = line if isinstance(line, dict) else {**vars(line), "by": vars(line.by) if line.by else None}
        by = f" by #{entry['by']['position']} {entry['by']['event_id']}" if entry["by"] else ""
        rule = f" {entry['rule']}" if entry["rule"] else ""
        parts.append(f"on item {entry['item']}: {entry['status']}{rule}{by}")
    return "; ".join(parts)

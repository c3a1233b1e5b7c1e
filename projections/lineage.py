"""Vote lineage: what became of every logged submission of one control number. Pure, no I/O.

The fold keeps only maxima; an auditor wants every row explained. Given all of a control number's
log rows, this recomputes from the whole set which instruction counts and why each other one does
not, with the same semantics as ``projections.fold`` (a property test holds them equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec.structs

from events import PollsClosed, VoteCast, VoteRevoked
from projections import timing
from projections.contribution import contribution
from projections.fold import VoterState, counting, instruction_key, record
from projections.lineage_status import (
    ATTENDS,
    COUNTS,
    FILLS,
    REJECTED,
    REVOKES,
    SUPERSEDED,
    ItemStatus,
    LogEntry,
    Ref,
    Status,
    counting_refs,
    describe_per_item,
    kind_of,
    status_of,
)
from projections.meeting import Meeting

# The vocabulary lives in projections/lineage_status.py; its readers keep importing it from here too.
__all__ = [
    "ATTENDS",
    "COUNTS",
    "FILLS",
    "REJECTED",
    "REVOKES",
    "SUPERSEDED",
    "ItemStatus",
    "LogEntry",
    "Ref",
    "Status",
    "counting_refs",
    "describe_per_item",
    "lineage",
]


def lineage(
    meeting: Meeting,
    rows: Sequence[LogEntry],
    state: VoterState | None = None,
    closures: Iterable[tuple[int, PollsClosed]] = (),
) -> list[Status]:
    """The status of every row of one control number (rows in log order).

    ``state`` is the fold's VoterState of this control number over the same rows: only its
    ``overvote_rejected`` is used, for R17 `reject` (which needs every other voter of the nominee,
    beyond these rows). ``closures`` are the meeting's logged polls.closed, to name the one of R12.
    """
    closures = sorted(closures, key=lambda c: c[0])
    votes: dict[int, VoteCast | VoteRevoked] = {
        i: row.event
        for i, row in enumerate(rows)
        if row.decision == "accepted" and isinstance(row.event, (VoteCast, VoteRevoked))
    }
    # R12: what a closure makes late never counts, even if the closure was logged later (timing.fold_drops).
    late = {i for i, vote in votes.items() if timing.fold_drops(meeting, vote)}
    refused, dropped = _overvote_refusals(rows, [i for i in votes if i not in late], state)
    pool = [i for i in votes if i not in late and i not in refused]
    # Keyed `int | None` for mypy only: the lookups in _decide (ballot, owner, latest) are never None there.
    ref: dict[int | None, Ref] = {i: Ref(rows[i].position, vote.event_id) for i, vote in votes.items()}
    result = _decide(meeting, rows, votes, pool, dropped, ref)
    for i in late:
        result[i] = status_of(rows[i], SUPERSEDED, "R12", _closure_of(meeting, closures, votes[i]))
    for i, item in refused.items():
        result[i] = status_of(rows[i], SUPERSEDED, "R17", items=(item,))
    horizons = timing.item_horizons(meeting)
    if horizons:
        _per_item(meeting, rows, votes, pool, dropped, ref, result, horizons, closures)
    return [
        result.get(i) or status_of(row, REJECTED if row.decision == "rejected" else None) for i, row in enumerate(rows)
    ]


def _decide(
    meeting: Meeting,
    rows: Sequence[LogEntry],
    votes: dict[int, VoteCast | VoteRevoked],
    pool: list[int],
    dropped: dict[int, int],
    ref: dict[int | None, Ref],
) -> dict[int, Status]:
    """The status of each row of ``pool`` (the submissions that decide), as the fold decides over them."""
    ballots = [i for i in pool if kind_of(votes[i]) == "ballot"]
    owners = [i for i in pool if kind_of(votes[i]) == "owner"]
    discretionary = [i for i in pool if kind_of(votes[i]) == "discretionary" and i not in dropped]
    attendances = [i for i in pool if kind_of(votes[i]) == "attendance"]
    revocations = sorted(
        (i for i in pool if kind_of(votes[i]) == "revocation"), key=lambda i: instruction_key(votes[i])
    )
    ballot, owner, nominee, attended = (
        max(group, key=lambda i: instruction_key(votes[i]), default=None)
        for group in (ballots, owners, discretionary, attendances)
    )

    def revoker(i: int) -> int | None:
        # R7: the first revocation executed after the instruction voids it (and so does the latest,
        # which is the one the fold keeps: anything before the first is before the latest).
        return next((r for r in revocations if votes[r].executed_at > votes[i].executed_at), None)

    owner_counts = ballot is None and owner is not None and revoker(owner) is None
    result: dict[int, Status] = {}
    for i in pool:
        kind = kind_of(votes[i])
        if kind == "revocation":
            continue
        if kind == "attendance":
            # R6: attending revokes nothing and no revocation voids it; the latest is the one counted present (R14).
            result[i] = (
                status_of(rows[i], ATTENDS) if i == attended else status_of(rows[i], SUPERSEDED, "R5", ref[attended])
            )
            continue
        # The first cause in the chain is named: revoked (R7), else replaced by a later-dated one of
        # its kind (R5), else beaten by a ballot (R6) or by the owner's word (R10).
        latest = {"ballot": ballot, "owner": owner, "discretionary": nominee}[kind]
        if kind == "ballot":
            result[i] = status_of(rows[i], COUNTS) if i == ballot else status_of(rows[i], SUPERSEDED, "R5", ref[ballot])
        elif (r := revoker(i)) is not None:
            result[i] = status_of(rows[i], SUPERSEDED, "R7", ref[r])
        elif i in dropped:
            # The fold dropped it with the later one refused under R17 when a revocation revived it.
            result[i] = status_of(rows[i], SUPERSEDED, "R5", ref[dropped[i]])
        elif i != latest:
            result[i] = status_of(rows[i], SUPERSEDED, "R5", ref[latest])
        elif ballot is not None:
            result[i] = status_of(rows[i], SUPERSEDED, "R6", ref[ballot])  # R6: whatever their dates
        elif kind == "owner" or not owner_counts:
            result[i] = status_of(rows[i], COUNTS)
        else:
            # A discretionary vote filling nothing (the owner marked every routine item) is simply
            # beaten by the owner's word, though the fold still holds it as the fill (R10).
            assert owner is not None  # owner_counts: there is an owner's instruction
            owner_vote, fill = votes[owner], votes[i]  # kinds "owner" and "discretionary": both votes cast
            assert isinstance(owner_vote, VoteCast) and isinstance(fill, VoteCast)
            filled = _filled_items(meeting, owner_vote, fill)
            result[i] = (
                status_of(rows[i], FILLS, items=filled) if filled else status_of(rows[i], SUPERSEDED, "R10", ref[owner])
            )
    for i in revocations:
        voided = tuple(ref[j] for j in sorted(result) if result[j].rule == "R7" and result[j].by == ref[i])
        result[i] = status_of(rows[i], REVOKES, voids=voided)
    return result


def _per_item(
    meeting: Meeting,
    rows: Sequence[LogEntry],
    votes: dict[int, VoteCast | VoteRevoked],
    pool: list[int],
    dropped: dict[int, int],
    ref: dict[int | None, Ref],
    result: dict[int, Status],
    horizons: dict[str, datetime],
    closures: list[tuple[int, PollsClosed]],
) -> None:
    """R12 per item: on each item closed before others, decide again over what was received by its closing time."""
    for closed_at in sorted(set(horizons.values())):
        items = sorted(item for item, t in horizons.items() if t == closed_at)
        before = [i for i in pool if votes[i].received_at <= closed_at]
        there = _decide(meeting, rows, votes, before, dropped, ref)
        closure = _closure_at(closures, closed_at)
        for i in pool:
            decided = there.get(i)
            if decided is None:  # received after this closing time: not there (R12)
                lines = [ItemStatus(item, SUPERSEDED, "R12", closure) for item in items]
            elif decided.status == REVOKES:
                lines = [ItemStatus(item, REVOKES) for item in items]
            else:
                assert decided.status is not None  # _decide gives every row of its pool a status
                lines = [ItemStatus(item, decided.status, decided.rule, decided.by) for item in items]
            current = result[i]
            result[i] = Status(
                current.position,
                current.event_id,
                current.decision,
                current.reason,
                current.status,
                current.rule,
                current.by,
                current.items,
                current.voids,
                (*current.per_item, *lines),
            )


def _closure_of(meeting: Meeting, closures: list[tuple[int, PollsClosed]], event: VoteCast | VoteRevoked) -> Ref | None:
    """The logged closure that made a submission late (R12): the one closing the last of the items it marks.

    None for a submission an amended cut-off made late, or a closure the caller did not pass.
    """
    marks = list(event.choices) if isinstance(event, VoteCast) else []
    if timing.closure_reason(meeting, event.received_at, None, marks) is None:
        return None  # late by a cut-off change logged later (R12 as amended), not by a closure
    last: tuple[datetime, str] | None = None
    for item in marks or meeting.items:
        times = [t for t in (meeting.closed_all_at, meeting.closed_item_at.get(item)) if t is not None]
        if times and (last is None or min(times) > last[0]):
            last = (min(times), item)
    if last is None:
        return None
    closed_at, item = last
    return next(
        (Ref(p, c.event_id) for p, c in closures if c.closed_at == closed_at and (c.items is None or item in c.items)),
        None,
    )


def _closure_at(closures: list[tuple[int, PollsClosed]], closed_at: datetime) -> Ref | None:
    """The logged closure of an item closing time (R12 per item), if the caller passed it."""
    return next((Ref(p, c.event_id) for p, c in closures if c.closed_at == closed_at), None)


def _filled_items(meeting: Meeting, owner: VoteCast, fill: VoteCast) -> tuple[str, ...]:
    """The routine items the owner left unmarked that the discretionary vote votes (R10)."""
    position = meeting.positions.get(owner.control_number)
    if position is None:
        return ()
    with_fill = contribution(meeting, position, owner, fill).buckets
    without = contribution(meeting, position, owner).buckets
    return tuple(
        item.id
        for item in meeting.spec.items
        if {k: v for k, v in with_fill.items() if k[0] == item.id}
        != {k: v for k, v in without.items() if k[0] == item.id}
    )


def _maxima(state: VoterState) -> tuple[str | datetime | None, ...]:
    """The ids of what a fold state keeps, to compare a shadow with the real state."""
    ids = tuple(v.event_id if v is not None else None for v in (state.owner, state.discretionary, state.ballot))
    return (*ids, state.revoked_at)


def _overvote_refusals(
    rows: Sequence[LogEntry], folded: list[int], state: VoterState | None
) -> tuple[dict[int, str], dict[int, int]]:
    """Place the fold's R17 refusals in log order: refused on arrival, or when a revocation revived it.

    Returns the refused rows (with the item) and the discretionary rows the fold dropped with a
    revived one (index -> the refused row). The fold appended ``state.overvote_rejected`` in log
    order, one entry per decision; an entry for a discretionary vote may have been taken on its
    arrival or at a later revocation, so both readings are tried and the one whose shadow of the
    fold ends in ``state``'s maxima is kept.
    """
    rejected = list(state.overvote_rejected) if state is not None else []
    if state is None or not rejected:  # (no state: nothing rejected; said again for mypy)
        return {}, {}
    budget = [64]  # alternative readings to try; a control number rarely has more than one

    def walk(
        k: int,
        shadow: VoterState,
        pending: list[tuple[str, str]],
        refused: dict[int, str],
        dropped: dict[int, int],
        since_drop: list[int],
        index: dict[str, int],
        target: tuple[Any, ...] | None,
    ) -> tuple[dict[int, str], dict[int, int]] | None:
        while k < len(folded):
            i = folded[k]
            event = rows[i].event
            assert isinstance(event, (VoteCast, VoteRevoked))  # folded holds accepted submissions only
            k += 1
            if pending and isinstance(event, VoteCast) and pending[0][0] == event.event_id:
                on_arrival = walk(
                    k,
                    shadow,
                    pending[1:],
                    {**refused, i: pending[0][1]},
                    dict(dropped),
                    list(since_drop),
                    dict(index),
                    target,
                )
                if on_arrival is not None or kind_of(event) != "discretionary" or budget[0] <= 0:
                    return on_arrival
                budget[0] -= 1  # else: recorded now, refused when a revocation revives it
            trial = msgspec.structs.replace(shadow)
            record(trial, event)
            if pending and isinstance(event, VoteRevoked):
                before, after = counting(shadow), counting(trial)
                revived = trial.discretionary
                if (
                    after[0] is not None
                    and (before[0] is not after[0] or before[1] is not after[1])
                    and revived is after[0]
                    and revived.event_id == pending[0][0]
                ):
                    d = index[revived.event_id]
                    refused[d] = pending.pop(0)[1]
                    dropped.update({j: d for j in since_drop if j != d})
                    since_drop = []
                    trial.discretionary = None  # as the fold does: every earlier one goes with it
            shadow = trial
            if isinstance(event, VoteCast):
                index[event.event_id] = i
                if kind_of(event) == "discretionary":
                    since_drop.append(i)
        if target is not None and (pending or _maxima(shadow) != target):
            return None
        return refused, dropped

    found = walk(0, VoterState(), list(rejected), {}, {}, [], {}, _maxima(state))
    if found is None:  # a state of another log prefix: take every refusal as made on arrival
        budget[0] = 0
        found = walk(0, VoterState(), list(rejected), {}, {}, [], {}, None)
    assert found is not None  # without a target every reading is kept
    return found

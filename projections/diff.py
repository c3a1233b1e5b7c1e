"""Time travel and tally diffs: the tally at a log position, and what changed between two. Pure, no I/O.

A position's tally is a fold from scratch of the accepted events logged at or before it (with the
R12 refolds `replay` does), so it is exactly what the projector had committed at that checkpoint.
A diff explains each change of the report by the control numbers whose contribution changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from events import ADMIN_EVENTS, AnyEvent, VoteCast, VoteRevoked, tag_of
from projections.contribution import BROKER_NON_VOTE
from projections.fold import Tally, counted_votes, voter_contribution
from projections.outcomes import tally_report
from projections.replay import Projection, counted, replay

Entries = Sequence[tuple[int, AnyEvent]]  # (log position, accepted event), in log order


def replay_to(entries: Iterable[tuple[int, AnyEvent]], position: int) -> Projection:
    """Fold from scratch the accepted events logged at or before ``position``."""
    return replay(event for at, event in entries if at <= position)


def report_of(tally: Tally, as_of_position: int) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md from a fold, R17 applied with the entitlements it knows."""
    totals, _ = counted(tally)
    report = tally_report(tally.meeting.spec, tally.present, totals, as_of_position=as_of_position)
    report["register"] = tally.meeting.register_state.as_dict()  # as services.read.tallies.read_tally gives it
    return report


def columns(tally: Tally, control_number: str) -> tuple[int, dict[str, dict[str, int]]]:
    """One control number's shares present and per-item report columns (not_voted included)."""
    meeting = tally.meeting
    state, position = tally.voters.get(control_number), meeting.positions.get(control_number)
    part = voter_contribution(meeting, position, state) if state is not None and position is not None else None
    present = part.present if part is not None else 0
    # Every column of the report, in its order, so deltas read like the tally.
    per_item = {item.id: dict.fromkeys([*item.options, "broker_non_votes"], 0) for item in meeting.spec.items}
    for (item_id, option, _nominee), shares in part.buckets.items() if part is not None else ():
        per_item[item_id]["broker_non_votes" if option == BROKER_NON_VOTE else option] += shares
    for counts in per_item.values():
        counts["not_voted"] = present - sum(counts.values())
    return present, per_item


def diff(
    before: Tally | None, after: Tally | None, from_position: int, to_position: int, window: Entries
) -> dict[str, Any]:
    """What changed from one fold to another: report deltas, and per control number, with causes.

    ``window`` holds the accepted events logged between the two positions. Control numbers' deltas
    are in voted shares; ``overvote_adjustment`` is what R17 proration adds to them per item, so
    their sum plus the adjustment is exactly the report's change.
    """
    if before is None:
        if after is None:
            raise ValueError("the meeting is at neither position")
        before = Tally(meeting=after.meeting)
    after = after if after is not None else Tally(meeting=before.meeting)
    old, new = report_of(before, from_position), report_of(after, to_position)
    items: dict[str, dict[str, Any]] = {
        item_id: {
            **_delta(old["items"].get(item_id, {}), counts, zeros=True),
            "outcome": {"from": old["items"].get(item_id, {}).get("outcome"), "to": counts["outcome"]},
        }
        for item_id, counts in new["items"].items()
    }
    changed = []
    explained: Counter[tuple[str, str]] = Counter()  # (item, column) -> shares the control numbers explain
    for number in sorted(set(before.voters) | set(after.voters)):
        (present_a, cols_a), (present_b, cols_b) = columns(before, number), columns(after, number)
        per_item = {item_id: d for item_id in cols_b if (d := _delta(cols_a.get(item_id, {}), cols_b[item_id]))}
        if not per_item and present_a == present_b:
            continue
        explained.update({(item_id, column): shares for item_id, d in per_item.items() for column, shares in d.items()})
        changed.append(
            {
                "control_number": number,
                "present": present_b - present_a,
                "items": per_item,
                "events": _causes(number, window, after),
            }
        )
    adjustment = {}
    for item_id, counts in items.items():
        # The margin's change follows from the columns' (no control number's own): not a residue of R17.
        residue = {c: v - explained[(item_id, c)] for c, v in counts.items() if c not in ("outcome", "margin")}
        if any(residue.values()):
            adjustment[item_id] = {c: v for c, v in residue.items() if v}
    return {
        "meeting_id": new["meeting_id"],
        "from_position": from_position,
        "to_position": to_position,
        "quorum": {
            "present": {
                "from": old["quorum"]["present"],
                "to": new["quorum"]["present"],
                "delta": new["quorum"]["present"] - old["quorum"]["present"],
            },
            "met": {"from": old["quorum"]["met"], "to": new["quorum"]["met"]},
        },
        "items": items,
        "control_numbers": changed,
        "overvote_adjustment": adjustment,
    }


def _delta(old: dict[str, Any], new: dict[str, Any], zeros: bool = False) -> dict[str, int]:
    """new − old for every numeric column of either (only the non-zero ones unless ``zeros``)."""
    keys = [k for k in new if k != "outcome"] + [k for k in old if k not in new and k != "outcome"]
    deltas = {k: new.get(k, 0) - old.get(k, 0) for k in keys}
    return deltas if zeros else {k: v for k, v in deltas.items() if v}


def _causes(control_number: str, window: Entries, after: Tally) -> list[dict[str, Any]]:
    """The events of the window that made the control number's contribution change.

    Its own submissions there that count at the end (effective or filling, R10) and its
    revocations (R7); failing those (say a vote replaced and then revoked), all its submissions
    there; without any, only an administration event (a poll closure refolding it, R12) can have.
    """
    own = [(at, e) for at, e in window if isinstance(e, (VoteCast, VoteRevoked)) and e.control_number == control_number]
    state = after.voters.get(control_number)
    now = {v.event_id for v in (counted_votes(state) if state is not None else ())}
    chosen: Entries = (
        [(at, e) for at, e in own if e.event_id in now or isinstance(e, VoteRevoked)]
        or own
        or [(at, e) for at, e in window if isinstance(e, ADMIN_EVENTS)]
    )
    return [{"position": at, "event_id": e.event_id, "type": tag_of(e)} for at, e in chosen]

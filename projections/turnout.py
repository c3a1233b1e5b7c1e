"""Turnout by channel and by nominee, and the call list of the largest positions without an instruction. Pure.

A control number's channel is that of the submission it counts by (its instruction; an attendance
counts as in person); a beneficial position's nominee is the DTC participant its shares are held
through (positions.recorded), registered holders have none. Shares present are the fold's (R2, R14),
before R17 proration, which applies to votes on an item, not to presence.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from events import VoteCast
from events.schema import CHANNELS
from projections.fold import Tally
from projections.voter_state import VoterState, key_of, voter_contribution


def counting_vote(state: VoterState) -> VoteCast | None:
    """The submission a control number counts by: its instruction, else its attendance (or a per-item Cut's)."""
    return next((v for v in key_of(state) if isinstance(v, VoteCast)), None)


def instructed(state: VoterState) -> bool:
    """Whether a control number counts by its own instruction (or attendance), not only its nominee's discretion."""
    return any(isinstance(v, VoteCast) and not v.discretionary for v in key_of(state))


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}" if whole else "0.00"


def turnout(tally: Tally) -> dict[str, Any]:
    """Shares present and control numbers per channel and per nominee, with each one's share of its holdings."""
    meeting = tally.meeting
    channels: dict[str, dict[str, int]] = {
        c: {"present": 0, "control_numbers": 0, "discretionary": 0} for c in CHANNELS
    }
    held: dict[str | None, dict[str, int]] = defaultdict(lambda: {"positions": 0, "shares": 0})
    for recorded in meeting.positions.values():
        mine = held[recorded.nominee if recorded.kind == "beneficial" else None]
        mine["positions"] += 1
        mine["shares"] += recorded.shares
    present: dict[str | None, dict[str, int]] = defaultdict(lambda: {"present": 0, "control_numbers": 0})
    for number, state in tally.voters.items():
        position = meeting.positions.get(number)
        part = voter_contribution(meeting, position, state) if position is not None else None
        vote = counting_vote(state)
        if part is None or position is None or vote is None:
            continue
        row = channels[vote.channel]
        row["present"] += part.present
        row["control_numbers"] += 1
        if vote.discretionary:
            row["discretionary"] += part.present  # present only by the nominee's vote on routine items (R10)
        mine = present[position.nominee if position.kind == "beneficial" else None]
        mine["present"] += part.present
        mine["control_numbers"] += 1
    outstanding = meeting.spec.outstanding
    nominees = sorted(held, key=lambda n: (n is not None, n or ""))  # registered holders first
    return {
        "by_channel": [
            {"channel": c, **row, "percent_of_outstanding": _percent(row["present"], outstanding)}
            for c, row in channels.items()
        ],
        "by_nominee": [
            {
                "nominee": n,  # None: the registered holders
                "entitlement": meeting.entitlements.get(n) if n is not None else None,
                "positions": held[n]["positions"],
                "shares": held[n]["shares"],
                "present": present[n]["present"],
                "control_numbers_present": present[n]["control_numbers"],
                "percent_of_shares": _percent(present[n]["present"], held[n]["shares"]),
            }
            for n in nominees
        ],
    }


def call_list(tally: Tally, limit: int) -> list[dict[str, Any]]:
    """The largest positions whose holder has not instructed: not present, or present only by a broker vote (R10).

    Largest first, then by control number. A position present only through its nominee's discretionary
    vote still counts as a broker non-vote on every non-routine item (R16): its owner is worth a call.
    """
    meeting = tally.meeting
    out = []
    for number, position in sorted(meeting.positions.items(), key=lambda np: (-np[1].shares, np[0])):
        state = tally.voters.get(number)
        part = voter_contribution(meeting, position, state) if state is not None else None
        if state is not None and part is not None and instructed(state):
            continue
        out.append(
            {
                "control_number": number,
                "holders": list(position.holders),
                "shares": position.shares,
                "kind": position.kind,
                "nominee": position.nominee,
                "status": "absent" if part is None else "broker_vote_only",
            }
        )
        if len(out) >= limit:
            break
    return out

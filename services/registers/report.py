"""The reconciliation of a register as `meeting load` and `meeting show` print it. Pure."""

from __future__ import annotations

from events import MeetingScheduled
from services.registers.reading import CEDE
from services.registers.reconcile import Reconciliation


def reconciliation_lines(reconciliation: Reconciliation, meeting: MeetingScheduled) -> list[str]:
    """The totals, then one line per DTC participant: entitlement, beneficial positions, difference (R17)."""
    r = reconciliation
    lines = [
        f"register: {r.registered_positions:,} registered holdings {r.registered_shares:,} + {CEDE} "
        f"{r.cede_shares:,} = {r.outstanding:,} shares outstanding",
        f"  DTC participants: {len(r.participants)}, positions {sum(p.entitlement for p in r.participants):,} "
        f"= {CEDE}; beneficial positions listed: {r.beneficial_positions:,}, {r.beneficial_shares:,} shares",
        f"  {'participant':<40} {'entitlement':>13} {'positions':>9} {'shares':>13} {'difference':>11}",
    ]
    for p in r.participants:
        if p.difference > 0:
            note = f"  OVER: its owners can over-vote (R17: {meeting.overvote_policy})"
        elif p.difference < 0:
            note = "  under: no listed owner votes the rest"
        else:
            note = ""
        lines.append(
            f"  {p.number} {p.name[:35]:<35} {p.entitlement:>13,} {p.positions:>9,} {p.shares:>13,} "
            f"{f'{p.difference:+,}' if p.difference else '0':>11}{note}"
        )
    over = [p for p in r.participants if p.difference > 0]
    if over:
        lines.append(
            f"warning: beneficial positions exceed the DTC entitlement of {len(over)} participant(s) "
            f"({', '.join(p.number for p in over)}): if their owners vote in full, the meeting's over-vote policy "
            f"({meeting.overvote_policy}) decides what counts (R17)"
        )
    return lines

"""Register totals reconciled: registered + Cede & Co. = outstanding, DTC = Cede & Co., each participant's books.

The first two must hold exactly (else nothing is published); a participant whose beneficial positions
differ from its DTC position is reported, never corrected: over, its owners can over-vote (R17: the
meeting's over-vote policy then decides); under, part of its position is voted by nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.registers.csv_table import Problem
from services.registers.reading import CEDE, DTC, REGISTERED, RegisterFiles


@dataclass(frozen=True)
class ParticipantBooks:
    """A participant's DTC position (its entitlement) against the beneficial positions listed for it."""

    number: str
    name: str
    nominee: str
    entitlement: int
    positions: int
    shares: int

    @property
    def difference(self) -> int:
        """Beneficial shares minus the entitlement: above zero, its owners can over-vote (R17)."""
        return self.shares - self.entitlement


@dataclass(frozen=True)
class Reconciliation:
    """The register's totals and each participant's books."""

    outstanding: int
    registered_positions: int
    registered_shares: int  # registered holders other than Cede & Co.
    cede_shares: int
    participants: list[ParticipantBooks]

    @property
    def beneficial_positions(self) -> int:
        """Beneficial positions listed, all participants."""
        return sum(p.positions for p in self.participants)

    @property
    def beneficial_shares(self) -> int:
        """Beneficial shares listed, all participants."""
        return sum(p.shares for p in self.participants)

    def as_dict(self) -> dict[str, Any]:
        """The reconciliation as JSON-ready data (exact integers)."""
        return {
            "outstanding": self.outstanding,
            "registered": {"positions": self.registered_positions, "shares": self.registered_shares},
            "cede_and_co": self.cede_shares,
            "beneficial": {"positions": self.beneficial_positions, "shares": self.beneficial_shares},
            "participants": [
                {
                    "participant": p.number,
                    "name": p.name,
                    "nominee": p.nominee,
                    "entitlement": p.entitlement,
                    "positions": p.positions,
                    "shares": p.shares,
                    "difference": p.difference,
                }
                for p in self.participants
            ],
        }


def reconcile(files: RegisterFiles, outstanding: int) -> tuple[Reconciliation, list[Problem]]:
    """The register's reconciliation against the meeting's outstanding shares, and the totals that do not hold."""
    problems: list[Problem] = []
    registered = sum(h.shares for h in files.registered)
    cede = files.cede.shares if files.cede else 0
    books = {n: [0, 0] for n in files.participants}
    for b in files.beneficial:
        books.setdefault(b.participant, [0, 0])
        books[b.participant][0] += 1
        books[b.participant][1] += b.shares
    participants = [
        ParticipantBooks(p.number, p.name, p.nominee, p.shares, *books[n]) for n, p in files.participants.items()
    ]
    result = Reconciliation(outstanding, len(files.registered), registered, cede, participants)
    if files.problems or files.cede is None:
        return result, problems  # totals of rows that do not read would only repeat those problems
    row = files.cede.row
    if registered + cede != outstanding:
        problems.append(
            row.at(
                "shares",
                f"registered holders {registered:,} + {CEDE} {cede:,} = {registered + cede:,}, not the meeting's "
                f"{outstanding:,} outstanding (difference {registered + cede - outstanding:+,})",
            )
        )
    listed = sum(p.entitlement for p in participants)
    if listed != cede:
        last = max(p.row.line for p in files.participants.values()) if files.participants else 1
        column = next(iter(files.participants.values())).row.columns["shares"] if files.participants else 1
        problems.append(
            Problem(
                str(files.directory / DTC),
                last,
                column,
                f"shares: the participants' positions total {listed:,}, not {CEDE}'s {cede:,} "
                f"({REGISTERED}:{row.line}; difference {listed - cede:+,})",
            )
        )
    running = 0
    for b in files.beneficial:
        running += b.shares
        if running > cede:
            # The ledger refuses a register holding more shares than are outstanding
            # (register_exceeds_outstanding): registered + beneficial <= registered + Cede & Co.
            problems.append(
                b.row.at(
                    "shares",
                    f"the beneficial positions reach {running:,} here, more than {CEDE}'s {cede:,}: the register "
                    f"would hold more shares than are outstanding",
                )
            )
            break
    return result, problems

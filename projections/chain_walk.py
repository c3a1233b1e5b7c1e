"""One meeting's log walked in order for an audit: its hash chain, its decisions, an anchor, its schedule. Pure, no I/O.

`audit verify` walks the rows it reads from PostgreSQL (services/read/verify.py), `audit verify
--file` the rows of an export (services/read/offline.py): the same checks, fed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events import AnyEvent
from projections.chain import Anchor, Break, ChainCheck, ChainRow
from projections.judge import Received
from projections.rejudge import Misjudged, Rejudge, scheduled_problem


@dataclass
class ChainWalk:
    """Feeds a meeting's rows in log order to the chain check, the rejudge and an anchor."""

    anchor: Anchor = field(default_factory=Anchor)
    check: ChainCheck = field(default_factory=ChainCheck)
    rejudge: Rejudge = field(default_factory=Rejudge)
    scheduled: bool = False  # an accepted meeting.scheduled was walked

    @classmethod
    def expecting(cls, expect_hash: str | None) -> ChainWalk:
        """A walk that also checks a hash published elsewhere (``HEX`` or ``POSITION:HEX``; None: none)."""
        return cls(anchor=Anchor.parse(expect_hash))

    def feed(self, row: ChainRow, event: AnyEvent, columns: Mapping[str, object] | None = None) -> None:
        """Walk one row with its decoded event (and, online, the columns the ledger copied from it).

        The row's payload and broker time go to the rejudge, which re-verifies its signature (S2).
        """
        self.check.feed([row])
        received = Received(row.payload, row.appended_at)
        self.rejudge.feed(row.position, row.type, row.decision, row.reason, event, dict(columns or {}), received)
        self.anchor.feed(row.position, row.hash)
        self.scheduled = self.scheduled or (row.type == "meeting.scheduled" and row.decision == "accepted")

    @property
    def rows(self) -> int:
        """Rows walked."""
        return self.check.rows

    @property
    def v1_rows(self) -> int:
        """Rows logged under chain v1 (before migration 010: recorded_at and the source not covered)."""
        return self.check.v1_rows

    @property
    def chain_break(self) -> Break | None:
        """The first row whose hash or link does not hold."""
        return self.check.first_break

    @property
    def final_hash(self) -> str | None:
        """The chain's last hash in hex; None if no row was walked."""
        return self.check.last_hash.hex() if self.check.rows else None

    @property
    def misjudged(self) -> Misjudged | None:
        """The first row the rules would have decided otherwise."""
        return self.rejudge.first

    def anchor_holds(self) -> bool:
        """Whether the chain passes through the expected hash (True when none was given)."""
        return self.anchor.holds(self.final_hash)

    def problems(self, meeting_id: str) -> list[str]:
        """A meeting with rows but no accepted meeting.scheduled is nothing to certify."""
        return scheduled_problem(meeting_id, self.check.rows, self.scheduled)

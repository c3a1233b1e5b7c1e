"""Re-derive the ledger's decisions from the log itself, to catch rows forged with a valid hash.

The chain proves rows were not changed after they were written; it cannot prove the writer judged
them right, and anyone able to INSERT can compute a hash. The ledger's decision on a row depends
only on the meeting's admin rows before it in the log, so replaying the rules in log order must
give every recorded decision and reason again. Pure, no I/O.

Given each row's payload and broker time (``received``), the replay re-verifies every signature (S2)
against the keys in force at the row's time, as registered and revoked by the rows before it: a
signature forged, or a key swapped in a registration after the fact, shows as a misjudged row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events import EVENT_TYPES, AnyEvent, tag_of
from projections.judge import Judge, Received
from projections.refusals import is_ledger_row
from projections.validation import DUPLICATE_EVENT_ID, KEY_MISMATCH, WRONG_TOPIC

# Reasons that rest on what the row does not hold (its Kafka topic and key; for duplicate_event_id, an
# earlier accepted row of its id in the same meeting, R18 being per meeting, which `audit verify`
# checks in SQL, log_verify.orphan_duplicate): taken as recorded. Such a row changes no state.
AS_RECORDED = (WRONG_TOPIC, DUPLICATE_EVENT_ID, KEY_MISMATCH)


@dataclass(frozen=True)
class Misjudged:
    """The first row whose recorded decision or columns the rules do not give."""

    position: int
    detail: str


@dataclass
class Rejudge:
    """Feeds a meeting's rows in log order; remembers the first mismatch."""

    judge: Judge = field(default_factory=Judge)
    first: Misjudged | None = None

    def feed(
        self,
        position: int,
        type_: str,
        decision: str,
        reason: str | None,
        event: AnyEvent,
        columns: dict[str, object] | None = None,
        received: Received | None = None,
    ) -> None:
        """Check one row: its decision and reason, its type, and (online) the columns copied from it.

        ``received``: the row's payload and broker time, so signatures are re-verified (without it a
        signed submission is judged bad_signature, as the ledger would).
        """
        if self.first is not None:
            return
        tag = tag_of(event)
        if type_ != tag:
            self.first = Misjudged(position, f"row {position} says type {type_}, its payload is {tag}")
            return
        for name, value in (columns or {}).items():
            if getattr(event, name, None) != value and not _same_instant(getattr(event, name, None), value):
                self.first = Misjudged(position, f"row {position}'s {name} column differs from its payload")
                return
        # The topic and the Kafka key a message came in with are not part of the row's payload, and a
        # duplicate_event_id depends on an earlier accepted row of its id in this meeting (R18 is per
        # meeting) that a walk from a checkpoint may not have seen: none is re-derived here, and such
        # a row changes no state, so it is taken as recorded (verify checks the earlier row in SQL).
        if is_ledger_row(tag, decision, reason):
            return  # the ledger's rows (R19: refusals, withdrawals): checked by the refusal accounting (RefusalCheck)
        expected = reason if reason in AS_RECORDED and tag in EVENT_TYPES else self.judge.judge(event, received)
        recorded = None if decision == "accepted" else reason
        if expected != recorded:
            self.first = Misjudged(
                position,
                f"row {position} is logged {decision}"
                f"{'' if reason is None else ' (' + reason + ')'}, but the rules"
                f" give {'accepted' if expected is None else 'rejected (' + expected + ')'}",
            )


def _same_instant(a: object, b: object) -> bool:
    return isinstance(a, datetime) and isinstance(b, datetime) and a == b


def scheduled_problem(meeting_id: str, rows: int, scheduled: bool) -> list[str]:
    """A meeting with rows but no accepted meeting.scheduled is nothing to certify."""
    if rows and not scheduled:
        return [
            f"meeting: the log holds {rows} row(s) of {meeting_id} but no accepted meeting.scheduled:"
            " it was never scheduled, or that row was removed"
        ]
    return []

"""Checking a receipt or consistency bundle (projections/receipts.py) offline, as a holder does. Pure, no I/O.

A receipt is VALID when every row it holds hashes, from its fields and the previous row's hash, to a
leaf whose audit path leads to the head's root (and the head is the one pinned, if any); then the
control number's proven rows say, by the rules ``audit history`` applies (projections/lineage.py),
whether the submission counts or what superseded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from events import (
    CutoffChanged,
    MalformedMessage,
    MeetingAdjourned,
    MeetingCorrected,
    MeetingScheduled,
    PollsClosed,
    VoteCast,
    VoteRevoked,
    decode,
)
from projections import merkle
from projections.amendments import amend
from projections.lineage import (
    ATTENDS,
    COUNTS,
    FILLS,
    REJECTED,
    LogEntry,
    Ref,
    Status,
    counting_refs,
    describe_per_item,
    lineage,
)
from projections.meeting import Meeting
from projections.receipts import Consistency, ProvenRow, Receipt, TreeHead


@dataclass
class ReceiptCheck:
    """What checking a receipt found: VALID or the problems, the ledger's decision, and what became of it."""

    receipt: Receipt
    problems: list[str] = field(default_factory=list)
    status: Status | None = None  # the submission's lineage status (None: no vote, or not computed)
    counts: Ref | None = None  # the control number's effective instruction at the head
    fills: Ref | None = None  # its discretionary fill of routine items (R10)
    polls_closed: bool = False  # closures in the tree close every item: no later submission can count (R12)
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Whether every row is proven against the head (and the head is the one pinned, if any)."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        sub, status = self.receipt.submission, self.status
        return {
            "valid": self.valid,
            "problems": self.problems,
            "meeting_id": self.receipt.meeting_id,
            "head": msgspec.to_builtins(self.receipt.head),
            "event_id": sub.event_id,
            "position": sub.position,
            "row_hash": _hex_or_none(sub),
            "payload": sub.payload,  # the holder's own submission, as logged: theirs to compare with what they sent
            "decision": sub.decision,
            "reason": sub.reason,
            "control_number": self.receipt.control_number,
            "status": None if status is None else status.status,
            "rule": None if status is None else status.rule,
            "by": None if status is None or status.by is None else vars(status.by),
            "items": [] if status is None else list(status.items),
            "counts": None if self.counts is None else vars(self.counts),
            "fills": None if self.fills is None else vars(self.fills),
            "polls_closed": self.polls_closed,
            "notes": self.notes,
        }


def _hex_or_none(row: ProvenRow) -> str | None:
    try:
        return row.row_hash().hex()
    except ValueError:
        return None


def check_receipt(receipt: Receipt, pinned: tuple[int, str] | None = None, row_hash: str | None = None) -> ReceiptCheck:
    """Check a receipt offline: every row's hash from its fields, every path to the head, the pinned head.

    ``pinned``: (tree_size, merkle_root) of a head the holder got elsewhere; the receipt must be
    against exactly that head. ``row_hash``: the hash the ledger's answer on votes.decisions gave the
    submission's row; the bundle's row must hash to it.
    """
    result = ReceiptCheck(receipt)
    head = receipt.head
    if row_hash is not None and _hex_or_none(receipt.submission) != row_hash.lower():
        result.problems.append(
            f"the submission's row hashes to {_hex_or_none(receipt.submission)}, not {row_hash.lower()} (the hash"
            " the ledger's answer gave): the bundle is about another row, or the row was changed"
        )
    if pinned is not None:
        size, root_hex = pinned
        if head.tree_size != size:
            result.problems.append(
                f"the proof is against a head of {head.tree_size} rows, not the pinned head of {size}:"
                f" ask for a proof against it (audit prove --head-size {size})"
            )
        elif head.merkle_root != root_hex.lower():
            result.problems.append(
                f"the proof's head root {head.merkle_root} is not the pinned root {root_hex.lower()}"
                " for a tree of the same size: the log the proof came from is not the one that head describes"
            )
    rows = [("the submission", receipt.submission)]
    rows += [(f"row {r.position} of the control number", r) for r in receipt.others]
    rows += [(f"meeting row {r.position} ({r.type})", r) for r in receipt.meeting]
    indices: dict[int, int] = {}
    for label, row in rows:
        problem = _prove(label, row, receipt.meeting_id, head)
        if problem is not None:
            result.problems.append(problem)
        if indices.setdefault(row.leaf_index, row.position) != row.position:
            result.problems.append(f"{label} claims leaf {row.leaf_index}, which another row of the bundle holds")
    by_index = sorted(indices.items())
    if any(a[1] >= b[1] for a, b in zip(by_index, by_index[1:], strict=False)):
        result.problems.append("the bundle's leaf indices are not in log order")
    _explain(result)
    return result


def _prove(label: str, row: ProvenRow, meeting_id: str, head: TreeHead) -> str | None:
    """Why ``row`` is not proven against ``head`` (None when it is)."""
    if row.meeting_id != meeting_id:
        return f"{label} is of meeting {row.meeting_id}, not {meeting_id}"
    try:
        row_hash = row.row_hash()
        path = [bytes.fromhex(p) for p in row.path]
        if any(len(node) != 32 for node in path):
            raise ValueError("a hash on its audit path is not 32 bytes")
        computed = merkle.root_from_path(merkle.leaf_hash(row_hash), row.leaf_index, head.tree_size, path)
        expected = bytes.fromhex(head.merkle_root)
    except (ValueError, AssertionError) as exc:
        return f"{label} (position {row.position}) cannot be proven: {exc}"
    if computed != expected:
        return (
            f"{label} (position {row.position}, leaf {row.leaf_index}) does not lead to the head's root:"
            f" its fields, previous hash or path differ from the log the head describes"
        )
    return None


def _event(row: ProvenRow) -> Any:
    try:
        return decode(row.payload)
    except MalformedMessage:
        return None


def _explain(result: ReceiptCheck) -> None:
    """The submission's lineage among the control number's proven rows, as ``audit history`` says it."""
    receipt = result.receipt
    submission = _event(receipt.submission)
    if submission is None:
        result.problems.append("the submission's payload is not an event")
        return
    if submission.event_id != receipt.submission.event_id:
        result.problems.append(
            f"the submission's payload has event id {submission.event_id}, the row {receipt.submission.event_id}"
        )
    is_vote = isinstance(submission, (VoteCast, VoteRevoked))
    if is_vote and submission.control_number != receipt.control_number:
        # A bundle naming no (or another) control number would skip the lineage below and hide
        # what superseded the vote (review L9).
        result.problems.append(
            f"the bundle names control number {receipt.control_number}, the submission {submission.control_number}"
        )
        return
    if receipt.submission.decision != "accepted":
        # Proven alone (projections.receipts.proves_holder): a rejected row counts nothing, whatever
        # the holder's other rows say.
        sub = receipt.submission
        result.status = Status(sub.position, sub.event_id, sub.decision, sub.reason, REJECTED)
        return
    if not is_vote or receipt.control_number is None:
        return
    rows = sorted([receipt.submission, *receipt.others], key=lambda r: r.position)
    events = [_event(r) for r in rows]
    strangers = [
        r.position
        for r, e in zip(rows, events, strict=True)
        if getattr(e, "control_number", receipt.control_number) != receipt.control_number
    ]
    if strangers or submission.control_number != receipt.control_number:
        result.problems.append(
            f"rows {strangers or [receipt.submission.position]} are not of control number {receipt.control_number}"
        )
        return
    meeting = _meeting(result, receipt.meeting)
    if meeting is None:
        return
    closures: list[tuple[int, PollsClosed]] = []
    for r, e in _meeting_events(receipt.meeting):  # in log order, as Judge.apply_accepted applies them
        if isinstance(e, PollsClosed):
            closures.append((r.position, e))
            meeting.close_polls(e)
        elif isinstance(e, (MeetingAdjourned, CutoffChanged, MeetingCorrected)):
            amend(meeting, e)  # R12 as amended (fold_drops), R9 as amended (fills), the date
    # R12 per item: with an item still open, a later submission may still change what counts there.
    result.polls_closed = meeting.closed_all_at is not None or set(meeting.items) <= set(meeting.closed_item_at)
    if receipt.register is not None:
        meeting.positions[receipt.control_number] = receipt.register
        result.notes.append(
            "the record-date position is as the ledger states it: its register chunk lists other holders,"
            " so the tree does not prove it here"
        )
    if receipt.state is not None:
        result.notes.append(
            "R17 refusals are as the ledger's fold states them: they turn on the nominee's other voters"
        )
    entries = [LogEntry(r.position, r.decision, r.reason, e) for r, e in zip(rows, events, strict=True)]
    statuses = lineage(meeting, entries, receipt.state, closures)
    result.status = next(s for s in statuses if s.position == receipt.submission.position)
    result.counts, result.fills = counting_refs(statuses)


def _meeting_events(rows: Sequence[ProvenRow]) -> list[tuple[ProvenRow, Any]]:
    return [(r, _event(r)) for r in sorted(rows, key=lambda r: r.position) if r.decision == "accepted"]


def _meeting(result: ReceiptCheck, rows: Sequence[ProvenRow]) -> Meeting | None:
    scheduled = [e for _, e in _meeting_events(rows) if isinstance(e, MeetingScheduled)]
    if not scheduled:
        result.problems.append("the bundle holds no meeting.scheduled row: what counts cannot be said")
        return None
    return Meeting.scheduled(scheduled[0])


def describe(check: ReceiptCheck) -> str:
    """In words: what became of the submission at the head (the `audit receipt` verdict line)."""
    status = check.status
    if status is None or status.status is None:
        return "not a vote or revocation: nothing to count"
    if status.status == COUNTS:
        later = (
            "" if check.polls_closed else " (the polls were not closed at this head: a later submission may change it)"
        )
        per_item = f"; {describe_per_item(status.per_item)}" if status.per_item else ""  # R12 per item
        return (
            f"COUNTS: the instruction the tally counts for control number {check.receipt.control_number}{later}"
            f"{per_item}"
        )
    if status.status == FILLS:
        return f"COUNTS as the broker's discretionary vote on item(s) {', '.join(status.items)} (R10)"
    if status.status == "revokes":
        voids = ", ".join(f"#{v.position} {v.event_id}" for v in status.voids) or "nothing"
        return f"REVOKES {voids} (R7)"
    if status.status == "rejected":
        return f"DOES NOT COUNT: rejected by the ledger ({status.reason})"
    if status.status == ATTENDS:
        return "PRESENT: an attendance at the meeting (R14); it revokes no proxy (R6)"
    if status.per_item:  # R12 per item: items closed before the others may count another instruction
        return f"{_describe_main(status)}; {describe_per_item(status.per_item)}"
    return _describe_main(status)


def _describe_main(status: Status) -> str:
    by = f" by #{status.by.position} {status.by.event_id}" if status.by is not None else ""
    items = f" on item {', '.join(status.items)}" if status.items else ""
    return f"DOES NOT COUNT: superseded under {status.rule}{by}{items}"


def check_consistency(
    bundle: Consistency, old: tuple[int, str] | None = None, new: tuple[int, str] | None = None
) -> list[str]:
    """Why the bundle does not prove that its new head extends its old one (empty: it does).

    ``old``/``new``: (tree_size, merkle_root) of heads the checker holds; the bundle must be about them.
    """
    problems = []
    for name, held, head in (("old", old, bundle.old), ("new", new, bundle.new)):
        if held is not None and (held[0], held[1].lower()) != (head.tree_size, head.merkle_root):
            problems.append(
                f"the bundle's {name} head ({head.tree_size}, {head.merkle_root}) is not the one given"
                f" ({held[0]}, {held[1].lower()})"
            )
    try:
        holds = merkle.verify_consistency(
            bundle.old.tree_size,
            bundle.new.tree_size,
            bytes.fromhex(bundle.old.merkle_root),
            bytes.fromhex(bundle.new.merkle_root),
            [bytes.fromhex(p) for p in bundle.path],
        )
    except ValueError as exc:
        holds = False
        problems.append(f"the bundle is malformed: {exc}")
    if not holds:
        problems.append(
            f"the tree of {bundle.new.tree_size} rows does not extend the tree of {bundle.old.tree_size}"
            f" rows with root {bundle.old.merkle_root}: rows before it were rewritten or removed"
        )
    return problems

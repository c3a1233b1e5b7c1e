"""Receipts a holder can check offline: a log row proven in its meeting's Merkle tree. Pure, no I/O.

Each meeting's log is an RFC 9162 tree (projections/merkle.py): leaf i is the meeting's i-th row in
position order, its data the row's chain hash (projections/chain.py). A head (tree_size, merkle_root)
is published on ``ledger.heads`` (projections/heads.py). A receipt bundle carries one submission's row
(every field its chain hash covers, and the previous row's hash), its leaf index and audit path, and the
head: recomputing the row's hash shows the holder that what was logged is what they submitted, and the
root recomputed from the path must be the head's. The path holds hashes of other rows, never their
contents.

To say whether the submission counts (R5-R7, R10, R12, R17, as ``audit history`` does), the bundle also
carries every other row of the same control number and the meeting's own rows (meeting.scheduled,
polls.closed), each proven the same way, plus two things the ledger states and the tree cannot prove
without other holders' contents: the holder's record-date position (its register chunk lists other
holders) and, for R17 `reject`, the control number's fold state (it turns on the nominee's other voters).

A consistency bundle proves that a later head extends an earlier one: no row before the earlier head
was rewritten or removed since (RFC 9162 2.1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from events import MalformedMessage, MeetingScheduled, PollsClosed, Position, VoteCast, VoteRevoked, decode
from projections import merkle
from projections.chain import GENESIS, ChainRow
from projections.fold import VoterState
from projections.lineage import COUNTS, FILLS, LogEntry, Ref, Status, counting_refs, lineage
from projections.meeting import Meeting

RECEIPT_TYPE = "vote-ledger.receipt"
CONSISTENCY_TYPE = "vote-ledger.consistency"


def log_leaf(row_hash: bytes | None) -> bytes:
    """The leaf hash of a log row in its meeting's tree: leaf_hash(its chain hash).

    A row logged before the hash chain existed (no hash) is the leaf of 32 zero bytes: it keeps the
    leaf index equal to the row's rank in the meeting, and proves nothing.
    """
    return merkle.leaf_hash(row_hash if row_hash is not None else GENESIS)


class TreeHead(msgspec.Struct, kw_only=True):
    """A meeting's tree head: its first ``tree_size`` rows hash to ``merkle_root`` (64 hex digits)."""

    tree_size: int
    merkle_root: str
    published_at: str | None = None  # when the ledger published it on ledger.heads; None: computed from the log


class ProvenRow(msgspec.Struct, kw_only=True):
    """A log row with every field its chain hash covers, the previous row's hash, and its audit path."""

    position: int
    prev_position: int | None
    meeting_id: str
    event_id: str
    type: str
    decision: str
    reason: str | None
    payload: str  # exactly as stored: the hash covers these characters
    recorded_at: datetime
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    appended_at: datetime | None = None  # the broker's LogAppendTime (chain v3)
    chain_version: int
    prev_hash: str  # the chain hash of the meeting's previous row (64 zeros for its first)
    leaf_index: int  # the row's rank among the meeting's rows, from 0
    path: list[str]  # the audit path, leaf to root, in hex

    def chain_row(self) -> ChainRow:
        """The row as the chain sees it (its stored hash left out: it is what a check recomputes)."""
        return ChainRow(
            position=self.position,
            prev_position=self.prev_position,
            meeting_id=self.meeting_id,
            event_id=self.event_id,
            type=self.type,
            decision=self.decision,
            reason=self.reason,
            payload=self.payload,
            hash=None,
            chain_version=self.chain_version,
            recorded_at=self.recorded_at,
            source_topic=self.source_topic,
            source_partition=self.source_partition,
            source_offset=self.source_offset,
            appended_at=self.appended_at,
        )

    def row_hash(self) -> bytes:
        """The row's chain hash, recomputed from its fields and the previous hash."""
        return self.chain_row().expected_hash(bytes.fromhex(self.prev_hash))


class Receipt(msgspec.Struct, kw_only=True):
    """A holder's proof bundle: the submission's row proven against a head, and what decides if it counts."""

    type: str = RECEIPT_TYPE
    v: int = 1
    meeting_id: str
    head: TreeHead
    submission: ProvenRow
    control_number: str | None  # None for a row of no control number (e.g. a proxy.substituted)
    others: list[ProvenRow] = []  # every other row of the control number in the tree, in log order
    meeting: list[ProvenRow] = []  # the meeting.scheduled row and the accepted polls.closed rows in the tree
    register: Position | None = None  # stated by the ledger, not proven: the holder's record-date position
    state: VoterState | None = None  # stated by the ledger, not proven: the fold's state for R17 `reject`


class Consistency(msgspec.Struct, kw_only=True):
    """A proof that the meeting's tree ``new`` extends the tree ``old`` (RFC 9162 2.1.4)."""

    type: str = CONSISTENCY_TYPE
    v: int = 1
    meeting_id: str
    old: TreeHead
    new: TreeHead
    path: list[str]


class BadBundle(ValueError):
    """The file is not a receipt or consistency bundle."""


_receipt_decoder = msgspec.json.Decoder(Receipt)
_consistency_decoder = msgspec.json.Decoder(Consistency)


def encode_bundle(bundle: Receipt | Consistency) -> bytes:
    """A bundle as indented JSON (a holder may read it)."""
    return msgspec.json.format(msgspec.json.encode(bundle), indent=2) + b"\n"


def decode_receipt(data: bytes) -> Receipt:
    """A receipt bundle from its JSON; BadBundle if it is not one."""
    bundle = _decode(_receipt_decoder, data, RECEIPT_TYPE)
    assert isinstance(bundle, Receipt)
    return bundle


def decode_consistency(data: bytes) -> Consistency:
    """A consistency bundle from its JSON; BadBundle if it is not one."""
    bundle = _decode(_consistency_decoder, data, CONSISTENCY_TYPE)
    assert isinstance(bundle, Consistency)
    return bundle


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes, expected: str) -> Receipt | Consistency:
    try:
        bundle: Receipt | Consistency = decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # DecodeError covers ValidationError
        raise BadBundle(f"not a {expected} bundle ({exc})") from None
    if bundle.type != expected or bundle.v != 1:
        raise BadBundle(f"not a {expected} bundle (type {bundle.type!r}, v{bundle.v})")
    return bundle


# Building ----------------------------------------------------------------------------------------


class Tree:
    """A meeting's tree over its rows' chain hashes, hashed once and asked for several paths."""

    def __init__(self, row_hashes: Sequence[bytes | None]) -> None:
        self.row_hashes = list(row_hashes)
        self.leaves = [log_leaf(h) for h in self.row_hashes]
        self._root: str | None = None  # hashed once, when first asked

    @property
    def size(self) -> int:
        """How many leaves (rows)."""
        return len(self.leaves)

    def head(self, published_at: str | None = None) -> TreeHead:
        """The tree's head."""
        if self._root is None:
            self._root = merkle.root(self.leaves).hex()
        return TreeHead(tree_size=self.size, merkle_root=self._root, published_at=published_at)

    def prove(self, row: ChainRow, index: int) -> ProvenRow:
        """The row (at leaf ``index``) with its previous hash and audit path; ValueError if it is not that leaf."""
        return self.prove_all([(index, row)])[0]

    def prove_all(self, rows: Sequence[tuple[int, ChainRow]]) -> list[ProvenRow]:
        """Each (leaf index, row) with its previous hash and audit path, the tree hashed once for all of them."""
        for index, row in rows:
            if row.hash is None:
                raise ValueError(f"row {row.position} has no chain hash (logged before the chain existed): unprovable")
            if not 0 <= index < self.size or self.row_hashes[index] != row.hash:
                raise ValueError(f"row {row.position} is not leaf {index} of this tree of {self.size}")
        paths = merkle.inclusion_paths_of(self.leaves, [index for index, _ in rows])
        return [self._proven(row, index, path) for (index, row), path in zip(rows, paths, strict=True)]

    def _proven(self, row: ChainRow, index: int, path: list[bytes]) -> ProvenRow:
        prev = self.row_hashes[index - 1] if index else GENESIS
        return ProvenRow(
            position=row.position,
            prev_position=row.prev_position,
            meeting_id=row.meeting_id,
            event_id=row.event_id,
            type=row.type,
            decision=row.decision,
            reason=row.reason,
            payload=row.payload,
            recorded_at=_required(row.recorded_at, row.position),
            source_topic=row.source_topic,
            source_partition=row.source_partition,
            source_offset=row.source_offset,
            appended_at=row.appended_at,
            chain_version=row.chain_version,
            prev_hash=(prev or GENESIS).hex(),
            leaf_index=index,
            path=[p.hex() for p in path],
        )

    def consistency(
        self, meeting_id: str, old_size: int, old_root: str, published_at: str | None = None
    ) -> Consistency:
        """The proof that this tree extends the holder's (old_size, old_root); ValueError if it is smaller."""
        if not 1 <= old_size <= self.size:
            raise ValueError(f"a tree of {self.size} rows cannot extend one of {old_size}")
        return Consistency(
            meeting_id=meeting_id,
            old=TreeHead(tree_size=old_size, merkle_root=old_root.lower()),
            new=self.head(published_at),
            path=[p.hex() for p in merkle.consistency_path(self.leaves, old_size)],
        )

    def root_at(self, size: int) -> str:
        """The root of the tree of the first ``size`` rows, in hex."""
        return merkle.root(self.leaves[:size]).hex()


def _required(recorded_at: datetime | None, position: int) -> datetime:
    if recorded_at is None:
        raise ValueError(f"row {position} has no recorded_at")
    return recorded_at


def build_receipt(
    tree: Tree,
    submission: tuple[int, ChainRow],
    control_number: str | None,
    others: Sequence[tuple[int, ChainRow]] = (),
    meeting: Sequence[tuple[int, ChainRow]] = (),
    register: Position | None = None,
    state: VoterState | None = None,
    published_at: str | None = None,
) -> Receipt:
    """A receipt bundle: each (leaf index, row) proven against ``tree``'s head."""
    proven = tree.prove_all([submission, *others, *meeting])
    return Receipt(
        meeting_id=submission[1].meeting_id,
        head=tree.head(published_at),
        submission=proven[0],
        control_number=control_number,
        others=proven[1 : 1 + len(others)],
        meeting=proven[1 + len(others) :],
        register=register,
        state=state,
    )


# Checking ----------------------------------------------------------------------------------------


@dataclass
class ReceiptCheck:
    """What checking a receipt found: VALID or the problems, the ledger's decision, and what became of it."""

    receipt: Receipt
    problems: list[str] = field(default_factory=list)
    status: Status | None = None  # the submission's lineage status (None: no vote, or not computed)
    counts: Ref | None = None  # the control number's effective instruction at the head
    fills: Ref | None = None  # its discretionary fill of routine items (R10)
    polls_closed: bool = False  # a poll closure is in the tree: no later submission can count
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
    if not isinstance(submission, (VoteCast, VoteRevoked)) or receipt.control_number is None:
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
    closures = [(r.position, e) for r, e in _meeting_events(receipt.meeting) if isinstance(e, PollsClosed)]
    for _, closure in closures:
        meeting.close_polls(closure)
    result.polls_closed = meeting.first_closure is not None
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
    return [(r, _event(r)) for r in rows if r.decision == "accepted"]


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
        return f"COUNTS: the instruction the tally counts for control number {check.receipt.control_number}{later}"
    if status.status == FILLS:
        return f"COUNTS as the broker's discretionary vote on item(s) {', '.join(status.items)} (R10)"
    if status.status == "revokes":
        voids = ", ".join(f"#{v.position} {v.event_id}" for v in status.voids) or "nothing"
        return f"REVOKES {voids} (R7)"
    if status.status == "rejected":
        return f"DOES NOT COUNT: rejected by the ledger ({status.reason})"
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

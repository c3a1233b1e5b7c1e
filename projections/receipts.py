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
polls.closed and the amendments: MEETING_RULES_TYPES), each proven the same way, plus two things the
ledger states and the tree cannot prove without other holders' contents: the holder's record-date
position (its register chunk lists other holders) and, for R17 `reject`, the control number's fold state
(it turns on the nominee's other voters).

A consistency bundle proves that a later head extends an earlier one: no row before the earlier head
was rewritten or removed since (RFC 9162 2.1.4). Checking either is projections/receipt_check.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from events import Position
from projections import merkle
from projections.chain import GENESIS, ChainRow
from projections.fold import VoterState

RECEIPT_TYPE = "vote-ledger.receipt"
# The meeting's own rows a receipt carries (its ``meeting`` list), each proven: what lineage needs to say
# whether a vote counts: the items (R10), the closures (R12), and the amendments, which move a cut-off
# (R12 as amended: timing.fold_drops), a recommendation (R9 fills) or the date. A bundle is v1 either way: an
# older one simply holds none of the amendment rows, and checks as before.
MEETING_RULES_TYPES = (
    "meeting.scheduled",
    "polls.closed",
    "meeting.adjourned",
    "meeting.cutoff_changed",
    "meeting.corrected",
)
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
    meeting: list[ProvenRow] = []  # the meeting's accepted MEETING_RULES_TYPES rows in the tree
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


def proves_holder(submission: ChainRow) -> bool:
    """Whether a receipt of this row also proves the holder's other rows and states their register position.

    Only an accepted row's: a rejected row counts nothing, and anyone able to publish can get a
    submission naming another holder's control number rejected (unsigned, badly signed, wrong Kafka
    key); its receipt is the row alone, or it would hand that holder's votes and shares to the sender.
    """
    return submission.decision == "accepted"


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
    """A receipt bundle: each (leaf index, row) proven against ``tree``'s head; a rejected row's alone."""
    if not proves_holder(submission[1]):
        others, meeting, register, state = (), (), None, None
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

"""Chain heads published outside the database, and the check of a chain against them. Pure, no I/O.

The ledger publishes each meeting's chain head (and the parked messages' chain head) to the
``ledger.heads`` topic as the log grows (services/runtime/chain_heads.py). A head is a promise about the
past: the chain had ``rows`` rows up to ``position`` and its hash there was ``hash``. A log that
was edited and re-hashed, or cut short, after a head went out no longer keeps that promise. A
meeting's head also carries its Merkle tree's head (``tree_size``, ``merkle_root``), which holders'
receipts and consistency proofs are checked against (projections/receipts.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from projections.merkle import Frontier
from projections.receipts import log_leaf

HEAD_TYPE = "chain.head"


class Head(msgspec.Struct, kw_only=True):
    """One published chain head: the wire format of ``ledger.heads`` (JSON, new fields optional)."""

    type: str = HEAD_TYPE
    v: int = 1
    chain: Literal["meeting", "parked"]
    meeting_id: str | None  # None for the parked messages' chain
    position: int  # the head row's log position (parked chain: its id)
    hash: str  # its chain hash, 64 lowercase hex digits
    rows: int  # rows in the chain up to and including position
    recorded_at: str  # when the ledger recorded the head row (RFC 3339)
    published_at: str  # when this head was published (RFC 3339)
    # The meeting's Merkle tree (projections/receipts.py): its first tree_size rows hash to merkle_root
    # (64 hex digits). None on the parked chain's heads and on heads published before issue 11.
    tree_size: int | None = None
    merkle_root: str | None = None


_decoder = msgspec.json.Decoder(Head)
_encoder = msgspec.json.Encoder()


def encode_head(head: Head) -> bytes:
    """The message value of a head."""
    return _encoder.encode(head)


def decode_head(value: bytes) -> Head:
    """A head from its message value; msgspec.ValidationError/DecodeError if it is not one."""
    head = _decoder.decode(value)
    if head.type != HEAD_TYPE:
        raise msgspec.ValidationError(f"not a {HEAD_TYPE} message: {head.type!r}")
    return head


@dataclass(frozen=True)
class HeadFailure:
    """A published head the log no longer matches."""

    head: Head
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "position": self.head.position,
            "hash": self.head.hash,
            "rows": self.head.rows,
            "published_at": self.head.published_at,
            "detail": self.detail,
        }


@dataclass
class HeadCheck:
    """Checks one chain's rows, fed in order, against every head published for it."""

    heads: list[Head]
    rows: int = 0
    last_position: int | None = None
    failures: list[HeadFailure] = field(default_factory=list)
    _pending: list[Head] = field(default_factory=list, repr=False)
    _tree: Frontier = field(default_factory=Frontier, repr=False)  # the chain's Merkle tree so far

    def __post_init__(self) -> None:
        self._pending = sorted(self.heads, key=lambda h: h.position, reverse=True)

    def feed(self, rows: Iterable[tuple[int, bytes | None]]) -> None:
        """Check the next (position, stored hash) pairs of the chain."""
        for position, hash_ in rows:
            self.rows += 1
            self._tree.append(log_leaf(hash_))
            while self._pending and self._pending[-1].position < position:
                head = self._pending.pop()
                self._fail(
                    head,
                    f"the chain has no row at position {head.position}"
                    f" (it goes from {self.last_position} to {position})",
                )
            while self._pending and self._pending[-1].position == position:
                head = self._pending.pop()
                stored = hash_.hex() if hash_ else None
                if stored != head.hash:
                    self._fail(
                        head,
                        f"row {position} now has hash {stored}, the head published {head.hash}:"
                        " the chain was changed and re-hashed",
                    )
                elif self.rows != head.rows:
                    self._fail(
                        head,
                        f"the chain now holds {self.rows} rows up to position {position},"
                        f" the head published {head.rows}",
                    )
                elif head.merkle_root is not None and (head.tree_size, head.merkle_root) != (
                    self._tree.size,
                    self._tree.root().hex(),
                ):
                    self._fail(
                        head,
                        f"the head's Merkle tree ({head.tree_size} rows, root {head.merkle_root}) is not the"
                        f" tree of the chain's {self._tree.size} rows up to position {position}"
                        f" ({self._tree.root().hex()})",
                    )
            self.last_position = position

    def finish(self) -> None:
        """After the last row: every head beyond it is a head the log no longer reaches."""
        while self._pending:
            head = self._pending.pop()
            ends = f"ends at position {self.last_position}" if self.last_position is not None else "is empty"
            self._fail(head, f"the chain {ends} ({self.rows} rows), short of this head: rows were removed from its end")

    def _fail(self, head: Head, detail: str) -> None:
        self.failures.append(HeadFailure(head, detail))

    @property
    def latest(self) -> Head | None:
        """The head furthest along the chain."""
        return max(self.heads, key=lambda h: h.position, default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary: how many heads, the latest, the failures."""
        latest = self.latest
        return {
            "checked": len(self.heads),
            "ok": not self.failures,
            "latest": None
            if latest is None
            else {
                "position": latest.position,
                "hash": latest.hash,
                "rows": latest.rows,
                "published_at": latest.published_at,
            },
            "failures": [f.as_dict() for f in self.failures],
        }

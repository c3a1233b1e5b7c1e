"""The log's hash chain: canonical bytes of a row and SHA-256 links per meeting. Pure, no I/O.

A row's hash is SHA-256(previous hash of the same meeting ‖ canonical bytes), the first row of a
meeting chaining to 32 zero bytes. Canonical bytes are the UTF-8 JSON array
``[position, prev_position, meeting_id, event_id, type, decision, reason, payload]`` as msgspec
encodes it, the payload being the message text exactly as stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec

GENESIS = bytes(32)
_encoder = msgspec.json.Encoder()


def canonical(position: int, prev_position: int | None, meeting_id: str, event_id: str, type_: str,
              decision: str, reason: str | None, payload: str) -> bytes:
    """The bytes a row's hash covers."""
    return _encoder.encode([position, prev_position, meeting_id, event_id, type_, decision, reason, payload])


def link(prev_hash: bytes, row_bytes: bytes) -> bytes:
    """The hash of a row given its meeting's previous hash."""
    return hashlib.sha256(prev_hash + row_bytes).digest()


@dataclass(frozen=True)
class ChainRow:
    """The columns of one log row that the chain covers, and its stored hash."""

    position: int
    prev_position: int | None
    meeting_id: str
    event_id: str
    type: str
    decision: str
    reason: str | None
    payload: str
    hash: bytes | None

    def expected_hash(self, prev_hash: bytes) -> bytes:
        """What this row's hash must be after ``prev_hash``."""
        return link(prev_hash, canonical(self.position, self.prev_position, self.meeting_id, self.event_id,
                                         self.type, self.decision, self.reason, self.payload))


@dataclass(frozen=True)
class Break:
    """The first place a meeting's chain does not hold."""

    position: int
    problem: str  # "altered" | "missing" | "unhashed"
    detail: str


@dataclass
class ChainCheck:
    """Verifies one meeting's rows in position order, streaming; remembers the first break."""

    last_position: int | None = None
    last_hash: bytes = GENESIS
    rows: int = 0
    first_break: Break | None = None

    def feed(self, rows: Iterable[ChainRow]) -> None:
        """Check the next rows (in position order)."""
        for row in rows:
            self.rows += 1
            if self.first_break is None:
                self.first_break = self._check(row)
            # Carry on from the stored hash, so one break does not hide a second, independent one.
            self.last_position, self.last_hash = row.position, row.hash or GENESIS

    def _check(self, row: ChainRow) -> Break | None:
        if row.prev_position != self.last_position:
            if row.prev_position is not None and (self.last_position is None or row.prev_position > self.last_position):
                return Break(row.prev_position, "missing",
                             f"row {row.position} follows position {row.prev_position}, which is not in the log")
            return Break(row.position, "altered",
                         f"row {row.position} claims to follow {row.prev_position}, but follows {self.last_position}")
        if row.hash is None:
            return Break(row.position, "unhashed", f"row {row.position} has no hash (logged before the chain existed)")
        if row.expected_hash(self.last_hash) != row.hash:
            return Break(row.position, "altered", f"row {row.position}'s hash does not match its contents")
        return None


def hashes(rows: Iterable[tuple], start: tuple[int | None, bytes] = (None, GENESIS)) -> Iterator[tuple[int | None, bytes]]:
    """For rows (position, meeting_id, event_id, type, decision, reason, payload) of ONE meeting in
    order, yield (prev_position, hash), continuing the chain from ``start``."""
    prev_position, prev_hash = start
    for position, meeting_id, event_id, type_, decision, reason, payload in rows:
        prev_hash = link(prev_hash, canonical(position, prev_position, meeting_id, event_id, type_, decision,
                                              reason, payload))
        yield prev_position, prev_hash
        prev_position = position


@dataclass
class Anchor:
    """A hash published earlier: ``HEX`` for the chain's end, or ``POSITION:HEX`` for a row's."""

    position: int | None = None
    expected: str | None = None
    seen: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Anchor:
        """Read ``HEX`` or ``POSITION:HEX`` (None: nothing to check)."""
        if not text:
            return cls()
        position, _, digest = text.rpartition(":")
        return cls(int(position) if position else None, digest.lower().removeprefix("sha256:"))

    def feed(self, position: int, hash_: bytes | None) -> None:
        """Note a row's hash if it is the anchored position."""
        if self.position is not None and position == self.position:
            self.seen = hash_.hex() if hash_ else None

    def holds(self, final_hash: str | None) -> bool:
        """Whether the anchor is satisfied (trivially, if there is none)."""
        if self.expected is None:
            return True
        return (self.seen if self.position is not None else final_hash) == self.expected

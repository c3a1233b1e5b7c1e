"""The log's hash chains: canonical bytes of a row and SHA-256 links. Pure, no I/O.

Each meeting's rows form a chain: a row's hash is SHA-256(previous hash of the same meeting ‖
canonical bytes), the first row of a meeting chaining to 32 zero bytes. The canonical bytes are a
UTF-8 JSON array as msgspec encodes it (compact, strings escaped as JSON), the payload being the
message text exactly as stored. Three versions, recorded per row in ``ledger_log.chain_version``:

- v1 (rows logged before migration 010): ``[position, prev_position, meeting_id, event_id, type,
  decision, reason, payload]``;
- v2 (every row since): ``[2, position, prev_position, meeting_id, event_id, type, decision, reason,
  payload, recorded_at, source_topic, source_partition, source_offset]``, ``recorded_at`` in whole
  microseconds since 1970-01-01 UTC, so ``tally --as-of TIME`` and the Kafka provenance are covered;
- v3 (every row since migration 014): v2's list with ``3`` first and ``appended_at`` appended, the
  broker's append time (LogAppendTime) in microseconds, or null when the record has none: the time the
  broker-clock cut-off (R12) and a key's validity (S3) were judged on, so it cannot be changed after.

A chain never goes back to an older version: a v1 row after a v2 row, or a v2 row after a v3 row, is a
downgrade, reported as altered (the older form leaves a judged-on time uncovered).

Parked messages (``ledger_parked``) have one chain of their own, in id order:
``[1, id, prev_id, source_topic, source_partition, source_offset, key, value, reason, detail,
parked_at]`` with key and value in lowercase hex (null when absent) and ``parked_at`` in microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.chain_forms import canonical, canonical_parked, canonical_v2, canonical_v3, link, micros

GENESIS = bytes(32)
LATEST_VERSION = 3
# The canonical forms and the link are in chain_forms.py (this module had reached 384 lines); they are
# named here too, where the chain's readers have always found them.
__all__ = [
    "GENESIS",
    "LATEST_VERSION",
    "Anchor",
    "Break",
    "ChainCheck",
    "ChainRow",
    "ParkedCheck",
    "ParkedRow",
    "canonical",
    "canonical_parked",
    "canonical_v2",
    "canonical_v3",
    "link",
    "micros",
]


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
    chain_version: int = 1
    recorded_at: datetime | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    appended_at: datetime | None = None  # covered from chain v3 on

    def canonical(self) -> bytes:
        """The bytes this row's hash covers, in its chain version."""
        if self.chain_version == 1:
            return canonical(
                self.position,
                self.prev_position,
                self.meeting_id,
                self.event_id,
                self.type,
                self.decision,
                self.reason,
                self.payload,
            )
        assert self.recorded_at is not None, "a v2 or v3 row has recorded_at (NOT NULL in the log)"
        # v3 covers v2's fields and then the broker's append time: one tuple, so the two cannot drift.
        fields = (
            self.position,
            self.prev_position,
            self.meeting_id,
            self.event_id,
            self.type,
            self.decision,
            self.reason,
            self.payload,
            self.recorded_at,
            self.source_topic,
            self.source_partition,
            self.source_offset,
        )
        if self.chain_version == 3:
            return canonical_v3(*fields, self.appended_at)
        return canonical_v2(*fields)

    def expected_hash(self, prev_hash: bytes) -> bytes:
        """What this row's hash must be after ``prev_hash``."""
        return link(prev_hash, self.canonical())


@dataclass(frozen=True)
class ParkedRow:
    """One parked message as its chain sees it (``position`` is its id, ``prev_position`` its prev_id)."""

    position: int
    prev_position: int | None
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    parked_at: datetime
    hash: bytes | None
    chain_version: int = 1

    def expected_hash(self, prev_hash: bytes) -> bytes:
        """What this message's hash must be after ``prev_hash``."""
        return link(
            prev_hash,
            canonical_parked(
                self.position,
                self.prev_position,
                self.source_topic,
                self.source_partition,
                self.source_offset,
                self.key,
                self.value,
                self.reason,
                self.detail,
                self.parked_at,
            ),
        )


@dataclass(frozen=True)
class Break:
    """The first place a chain does not hold."""

    position: int
    problem: str  # "altered" | "missing" | "unhashed"
    detail: str


@dataclass
class ChainCheck:
    """Verifies one chain's rows in order, streaming; remembers the first break.

    Works for a meeting's ChainRows and for the ParkedRows alike.
    """

    last_position: int | None = None
    last_hash: bytes = GENESIS
    last_version: int = 1
    rows: int = 0
    v1_rows: int = 0  # rows under chain v1: their recorded_at and source offsets are not covered
    first_break: Break | None = None

    def feed(self, rows: Iterable[ChainRow | ParkedRow]) -> None:
        """Check the next rows (in position order)."""
        for row in rows:
            self.rows += 1
            self.v1_rows += row.chain_version == 1
            if self.first_break is None:
                self.first_break = self._check(row)
            # Carry on from the stored hash, so one break does not hide a second, independent one.
            self.last_position, self.last_hash = row.position, row.hash or GENESIS
            self.last_version = max(self.last_version, row.chain_version)

    def _check(self, row: ChainRow | ParkedRow) -> Break | None:
        if row.prev_position != self.last_position:
            if row.prev_position is not None and (self.last_position is None or row.prev_position > self.last_position):
                return Break(
                    row.prev_position,
                    "missing",
                    f"row {row.position} follows position {row.prev_position}, which is not in the log",
                )
            return Break(
                row.position,
                "altered",
                f"row {row.position} claims to follow {row.prev_position}, but follows {self.last_position}",
            )
        if row.hash is None:
            return Break(row.position, "unhashed", f"row {row.position} has no hash (logged before the chain existed)")
        if not 1 <= row.chain_version <= LATEST_VERSION:
            return Break(row.position, "altered", f"row {row.position} is under chain v{row.chain_version}, unknown")
        if row.chain_version < self.last_version:
            # An older form leaves recorded_at (v1) or appended_at (v2) out: going back would un-cover it.
            return Break(
                row.position,
                "altered",
                f"row {row.position} is under chain v{row.chain_version} after a row under v{self.last_version}",
            )
        if row.expected_hash(self.last_hash) != row.hash:
            return Break(row.position, "altered", f"row {row.position}'s hash does not match its contents")
        return None


@dataclass
class ParkedCheck(ChainCheck):
    """Verifies the parked messages' chain; messages parked before it existed are counted, not trusted."""

    legacy: int = 0  # parked before migration 010: no hash, so not covered

    def feed(self, rows: Iterable[ChainRow | ParkedRow]) -> None:  # ParkedRows only; typed as the base's
        """Check the next parked messages (in id order)."""
        for row in rows:
            if row.hash is None and self.rows == 0:
                self.legacy += 1  # before the first chained message; one after it is "unhashed"
            else:
                super().feed([row])

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "rows": self.rows,
            "not_chained": self.legacy,
            "final_hash": self.last_hash.hex() if self.rows else None,
            "chain_break": None if self.first_break is None else vars(self.first_break),
        }


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

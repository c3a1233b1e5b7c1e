"""The log digest: SHA-256 over a meeting's log rows up to a position, in position order. Pure.

Each row is canonicalised as ``position \\t event_id \\t decision \\t reason-or-empty \\t payload \\n``
(UTF-8; the payload exactly as stored), so an auditor can recompute the digest from a plain
``SELECT`` with any SHA-256 tool and compare it with the one printed on the final report: a row
changed, added, dropped or reordered below the reported position changes the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PREFIX = "sha256:"


def canonical_row(position: int, event_id: str, decision: str, reason: str | None, payload: str | bytes) -> bytes:
    """One log row in the digest's canonical byte form."""
    # Payload bytes are hashed as given: re-serialising the JSON would hide a changed byte.
    body = payload if isinstance(payload, bytes) else payload.encode()
    head = f"{position}\t{event_id}\t{decision}\t{reason or ''}\t".encode()
    return head + body + b"\n"


@dataclass
class LogDigest:
    """A running digest fed rows in chunks, so a million-row log never sits in memory at once."""

    up_to: int
    rows: int = 0
    last_position: int = 0
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    def update(self, rows: Iterable[Any]) -> None:
        """Hash rows (mappings with position, event_id, decision, reason, payload) in position order."""
        for row in rows:
            position = row["position"]
            if position > self.up_to:
                continue  # past the reported position: not part of what the report certifies
            if position <= self.last_position:
                # Out of order or repeated: the digest would silently differ from an auditor's.
                raise ValueError(f"log rows out of position order: {position} after {self.last_position}")
            self._hash.update(canonical_row(position, row["event_id"], row["decision"], row["reason"], row["payload"]))
            self.last_position = position
            self.rows += 1

    def hexdigest(self) -> str:
        """The digest so far, as ``sha256:<64 hex digits>``."""
        digest: str = self._hash.hexdigest()
        return PREFIX + digest


def log_digest(rows: Iterable[Any], up_to: int) -> str:
    """The digest of the rows at or below ``up_to`` (rows of one meeting, in position order)."""
    digest = LogDigest(up_to=up_to)
    digest.update(rows)
    return digest.hexdigest()

"""Is the record-date register complete? What a complete one holds, what is recorded, what is missing. Pure.

A meeting.scheduled may declare its register (RegisterTotals: chunks, positions, shares, digest); then
the register is complete when every chunk 0 .. chunks - 1 is recorded AND the recorded positions and
their shares equal the declared totals AND, when a digest is declared, the recorded register's
``register_digest`` equals it. An older meeting declares nothing: its chunks' own ``chunks`` says how
many there are. A meeting with no chunk at all has no register: incomplete (docs/rules.md, "Register
completeness").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

import msgspec

from events import Position, RegisterTotals

# Missing chunk numbers listed by number (the lowest first); a register of 10^6 chunks with none
# recorded would otherwise make every status and tally carry a million numbers.
MISSING_LISTED = 20
# RFC 8785 (JCS) for a position or an entitlement: msgspec with sorted members writes JCS's string
# escaping and whole numbers; the members' names are ASCII, where JCS's UTF-16 key order is
# msgspec's code point order, and shares are below 2^53 (MAX_SHARES), where JCS's numbers are exact.
# tests/unit/test_register_digest.py holds it equal to the rfc8785 reference library.
_canonical = msgspec.json.Encoder(order="sorted")
# Digest characters shown in a line (the JSON carries all 64): enough to tell two registers apart.
DIGEST_SHOWN = 16


def register_digest(positions: Iterable[Position], entitlements: Mapping[str, int]) -> str:
    """SHA-256 (hex) of the register's canonical form: its positions, then its nominees' entitlements.

    One line per position, sorted by control number, then one per entitlement ({nominee, shares}),
    sorted by nominee; each line is the RFC 8785 JSON of the object as positions.recorded carries it
    (a registered holding's ``nominee`` is null) followed by a line feed (docs/register.md, "What is
    published"). Chunking and order in the files do not change it; one share moved does.
    """
    digest = hashlib.sha256(_canonical.encode_lines(sorted(positions, key=attrgetter("control_number"))))
    digest.update(
        _canonical.encode_lines(
            [{"nominee": nominee, "shares": entitlements[nominee]} for nominee in sorted(entitlements)]
        )
    )
    return digest.hexdigest()


@dataclass(frozen=True)
class RegisterState:
    """How much of the register is recorded, against what a complete one holds."""

    declared: RegisterTotals | None
    chunks_expected: int | None  # declared, else announced by the chunks; None: no chunk, nothing declared
    chunks_recorded: int
    chunks_missing: int
    missing_chunks: tuple[int, ...]  # the lowest MISSING_LISTED of them
    positions: int
    shares: int
    # The recorded register's register_digest: computed only when a digest is declared and everything
    # else matches (1 to 3 s per million positions), else None.
    digest: str | None = None

    @property
    def counts_match(self) -> bool:
        """Every expected chunk recorded and, when declared, exactly the declared positions and shares."""
        if self.chunks_expected is None or self.chunks_missing:
            return False
        return self.declared is None or (
            self.positions == self.declared.positions and self.shares == self.declared.shares
        )

    @property
    def complete(self) -> bool:
        """The counts match and, when a digest is declared, the recorded register is the declared one."""
        return self.counts_match and (
            self.declared is None or self.declared.digest is None or self.digest == self.declared.digest
        )

    def shortfalls(self) -> list[str]:
        """What is missing or does not match, in words (empty when complete)."""
        return shortfalls(self.as_dict())

    def summary(self) -> str:
        """One line: complete with its totals, or INCOMPLETE and what is missing."""
        return summary(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the ``register`` object of tally, status, reports and audit verify)."""
        return {
            "complete": self.complete,
            "chunks_recorded": self.chunks_recorded,
            "chunks_expected": self.chunks_expected,
            "missing_chunks": list(self.missing_chunks),
            "chunks_missing": self.chunks_missing,
            "positions": self.positions,
            "shares": self.shares,
            "digest": self.digest,
            "declared": None
            if self.declared is None
            else {
                "chunks": self.declared.chunks,
                "positions": self.declared.positions,
                "shares": self.declared.shares,
                "digest": self.declared.digest,
            },
        }


def shortfalls(register: Mapping[str, Any]) -> list[str]:
    """What a register (RegisterState.as_dict(), as tally and status print it) misses, in words; [] if complete."""
    if register["complete"]:
        return []
    expected, declared = register["chunks_expected"], register["declared"]
    if expected is None:
        return ["no register chunk recorded"]
    found = []
    if register["chunks_missing"]:
        listed = ", ".join(map(str, register["missing_chunks"]))
        more = register["chunks_missing"] - len(register["missing_chunks"])
        found.append(
            f"{register['chunks_recorded']:,} of {expected:,} chunks recorded (missing {listed}"
            + (f" and {more:,} more" if more else "")
            + ")"
        )
    if declared is not None and register["positions"] != declared["positions"]:
        found.append(f"{register['positions']:,} of {declared['positions']:,} declared positions")
    if declared is not None and register["shares"] != declared["shares"]:
        found.append(f"{register['shares']:,} of {declared['shares']:,} declared shares")
    if not found and declared is not None and declared.get("digest") is not None:
        # Same chunks, positions and shares, yet not the declared register: e.g. chunks of two versions of
        # the files (an interrupted load, then a corrected one), or one share moved between holders.
        found.append(
            f"the recorded register differs from the declared one (digest {_short(register.get('digest'))},"
            f" declared {_short(declared['digest'])})"
        )
    return found


def _short(digest: str | None) -> str:
    return "not computed" if digest is None else digest[:DIGEST_SHOWN] + "…"


def summary(register: Mapping[str, Any]) -> str:
    """One line for a register (as_dict form): complete with its totals, or INCOMPLETE and what is missing."""
    if not register["complete"]:
        return "INCOMPLETE: " + "; ".join(shortfalls(register))
    basis = "as declared" if register["declared"] is not None else "as announced by its chunks; no totals declared"
    return (
        f"complete: {register['chunks_recorded']:,} chunk(s), {register['positions']:,} positions,"
        f" {register['shares']:,} shares ({basis})"
    )


def state_of(
    declared: RegisterTotals | None,
    chunks: Collection[int],
    announced: int | None,
    positions: int,
    shares: int,
    digest: Callable[[], str] | None = None,
) -> RegisterState:
    """The register's state from the chunk numbers recorded, the count they announce, positions and shares.

    ``digest``: computes the recorded register's register_digest; called only when the declaration has
    a digest and every count matches (the rest already says the register is incomplete).
    """
    expected = declared.chunks if declared is not None else announced
    recorded = set(chunks)
    if expected is None:
        return RegisterState(declared, None, len(recorded), 0, (), positions, shares)
    # Accepted chunks are numbered 0 .. chunks - 1 (chunk_out_of_range), so only the missing need listing.
    missing_count = expected - sum(1 for number in recorded if 0 <= number < expected)
    missing: list[int] = []
    if missing_count:
        for number in range(expected):
            if number not in recorded:
                missing.append(number)
                if len(missing) == MISSING_LISTED:
                    break
    state = RegisterState(declared, expected, len(recorded), missing_count, tuple(missing), positions, shares)
    if declared is not None and declared.digest is not None and digest is not None and state.counts_match:
        return replace(state, digest=digest())
    return state

"""A meeting's register completeness from the log: what is recorded against what a complete one holds."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import asyncpg
import msgspec

from events import Entitlement, MeetingScheduled, Position, RegisterTotals
from projections.completeness import RegisterState, register_digest, state_of
from services.adapters.postgres.log import register as log_register


class _Shares(msgspec.Struct):
    """Of a position, only its shares."""

    shares: int


class _Chunk(msgspec.Struct):
    """Of a positions.recorded payload, only what the counts and R17 need: msgspec skips the rest unparsed."""

    chunk: int
    chunks: int
    positions: list[_Shares]
    entitlements: list[Entitlement] = []


class _WholeChunk(msgspec.Struct):
    """A positions.recorded payload's register content: what the digest covers."""

    chunk: int
    chunks: int
    positions: list[Position] = []
    entitlements: list[Entitlement] = []


_chunk = msgspec.json.Decoder(_Chunk)
_whole_chunk = msgspec.json.Decoder(_WholeChunk)
_totals = msgspec.json.Decoder(RegisterTotals)


@dataclass(frozen=True)
class Register:
    """What a read takes from a meeting's accepted register chunks: nominee entitlements (R17) and completeness."""

    entitlements: Mapping[str, int]
    state: RegisterState


class RegisterCache:
    """A long-lived reader's (the API's) recent registers, by (meeting, position of its last chunk read).

    The log is append-only: the meeting's accepted chunks at or below a chunk's position never change, so
    a key names one register for good. Decoding it is the bulk of a tally read (issue 13: 1.7 s of CPU at
    100,000 positions, fetched and decoded twice); a hit costs one indexed query. Owned by its caller (no
    process-wide state: tests run many databases in one process).
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._held: OrderedDict[tuple[str, int | None], Register] = OrderedDict()
        self.misses = 0  # registers decoded (a test counts them)

    def get(self, key: tuple[str, int | None]) -> Register | None:
        """The register held under ``key``, or None."""
        held = self._held.get(key)
        if held is not None:
            self._held.move_to_end(key)
        return held

    def put(self, key: tuple[str, int | None], register: Register) -> None:
        """Hold ``register`` under ``key``, forgetting the least recently used beyond the size."""
        self.misses += 1
        self._held[key] = register
        while len(self._held) > self._size:
            self._held.popitem(last=False)


async def register_of(
    conn: asyncpg.Connection, spec: MeetingScheduled, up_to: int, cache: RegisterCache | None = None
) -> Register:
    """The meeting's entitlements and register as its accepted rows up to a log position hold them (one fetch).

    With a ``cache``: one indexed query for the last chunk's position, and the chunks only on a miss.
    """
    if cache is None:
        return _register_of_rows(spec, await log_register.meeting_chunks(conn, spec.meeting_id, up_to))
    last = await log_register.last_chunk_position(conn, spec.meeting_id, up_to)
    key = (spec.meeting_id, last)
    held = cache.get(key)
    if held is None:
        rows = [] if last is None else await log_register.meeting_chunks(conn, spec.meeting_id, last)
        held = _register_of_rows(spec, rows)
        cache.put(key, held)
    return held


def _register_of_rows(spec: MeetingScheduled, rows: Sequence[asyncpg.Record]) -> Register:
    return register_of_payloads(spec.register, [row["payload"] for row in rows])


async def register_at(conn: asyncpg.Connection, spec: MeetingScheduled, up_to: int) -> RegisterState:
    """The meeting's register as its accepted rows up to a log position hold it (the tally's, the report's)."""
    return (await register_of(conn, spec, up_to)).state


async def all_registers(conn: asyncpg.Connection) -> dict[str, RegisterState]:
    """Every scheduled meeting's register as the whole log holds it, by meeting id (for `status`)."""
    payloads: dict[str, list[str]] = {}
    for row in await log_register.all_chunks(conn):
        payloads.setdefault(row["meeting_id"], []).append(row["payload"])
    return {
        row["meeting_id"]: state_of_payloads(
            None if row["register"] is None else _totals.decode(row["register"]), payloads.get(row["meeting_id"], [])
        )
        for row in await log_register.declared_registers(conn)
    }


def state_of_payloads(declared: RegisterTotals | None, payloads: Sequence[str | bytes]) -> RegisterState:
    """The register's state from its accepted chunks' payloads, in log order, decoded once."""
    return register_of_payloads(declared, payloads).state


def register_of_payloads(declared: RegisterTotals | None, payloads: Sequence[str | bytes]) -> Register:
    """Entitlements and register state from the accepted chunks' payloads, in log order, decoded once.

    As Meeting.record_positions folds them: the last chunk's count is the announced one, a later
    entitlement of a nominee replaces an earlier one.
    """
    # Accepted chunks have distinct numbers in 0 .. chunks - 1 (duplicate_chunk, chunk_out_of_range), so as
    # many rows as declared chunks means all are there: only then may the digest be needed, and the one
    # decode reads whole positions. Otherwise only the shares. Per million positions in 500 chunks: 0.2 s
    # for the shares alone, 2.2 s to decode whole positions, sort and hash them (measured on the shared
    # 2-core machine, issue 12).
    if declared is None or declared.digest is None or len(payloads) != declared.chunks:
        some = [_chunk.decode(payload) for payload in payloads]
        return Register(MappingProxyType(_entitlements(some)), _counted(some, declared))
    chunks = [_whole_chunk.decode(payload) for payload in payloads]
    entitlements = _entitlements(chunks)
    return Register(
        MappingProxyType(entitlements),
        _counted(
            chunks, declared, lambda: register_digest((p for chunk in chunks for p in chunk.positions), entitlements)
        ),
    )


def _entitlements(chunks: Sequence[_Chunk | _WholeChunk]) -> dict[str, int]:
    """Nominee entitlements (R17), in log order: a later chunk's entitlement of a nominee replaces an earlier one."""
    return {e.nominee: e.shares for chunk in chunks for e in chunk.entitlements}


def _counted(
    chunks: Sequence[_Chunk | _WholeChunk], declared: RegisterTotals | None, digest: Callable[[], str] | None = None
) -> RegisterState:
    """The state of these decoded chunks, in log order."""
    numbers = {chunk.chunk for chunk in chunks}
    announced = chunks[-1].chunks if chunks else None
    positions = sum(len(chunk.positions) for chunk in chunks)
    shares = sum(p.shares for chunk in chunks for p in chunk.positions)
    return state_of(declared, numbers, announced, positions, shares, digest)

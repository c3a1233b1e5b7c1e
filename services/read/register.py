"""A meeting's register completeness from the log: what is recorded against what a complete one holds."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import msgspec

from events import MeetingScheduled, RegisterTotals
from projections.completeness import RegisterState, state_of
from services.adapters.postgres.log import register as log_register


class _Shares(msgspec.Struct):
    """Of a position, only its shares."""

    shares: int


class _Chunk(msgspec.Struct):
    """Of a positions.recorded payload, only what completeness needs: msgspec skips the rest unparsed."""

    chunk: int
    chunks: int
    positions: list[_Shares]


_chunk = msgspec.json.Decoder(_Chunk)
_totals = msgspec.json.Decoder(RegisterTotals)


async def register_at(conn: asyncpg.Connection, spec: MeetingScheduled, up_to: int) -> RegisterState:
    """The meeting's register as its accepted rows up to a log position hold it (the tally's, the report's)."""
    rows = await log_register.meeting_chunks(conn, spec.meeting_id, up_to)
    return _state(spec.register, (_chunk.decode(row["payload"]) for row in rows))


async def all_registers(conn: asyncpg.Connection) -> dict[str, RegisterState]:
    """Every scheduled meeting's register as the whole log holds it, by meeting id (for `status`)."""
    chunks: dict[str, list[_Chunk]] = {}
    for row in await log_register.all_chunks(conn):
        chunks.setdefault(row["meeting_id"], []).append(_chunk.decode(row["payload"]))
    return {
        row["meeting_id"]: _state(
            None if row["register"] is None else _totals.decode(row["register"]), chunks.get(row["meeting_id"], [])
        )
        for row in await log_register.declared_registers(conn)
    }


def _state(declared: RegisterTotals | None, chunks: Iterable[_Chunk]) -> RegisterState:
    """Fold the chunks as Meeting.record_positions does: the last chunk's count is the announced one."""
    numbers: set[int] = set()
    announced, positions, shares = None, 0, 0
    for chunk in chunks:
        numbers.add(chunk.chunk)
        announced = chunk.chunks
        positions += len(chunk.positions)
        shares += sum(p.shares for p in chunk.positions)
    return state_of(declared, numbers, announced, positions, shares)

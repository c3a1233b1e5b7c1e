"""A meeting's register completeness from the log: what is recorded against what a complete one holds."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import msgspec

from events import MeetingScheduled, RegisterTotals
from projections.completeness import RegisterState, state_of
from services.adapters.postgres.log import register as log_register

_totals = msgspec.json.Decoder(RegisterTotals)


async def register_at(conn: asyncpg.Connection, spec: MeetingScheduled, up_to: int) -> RegisterState:
    """The meeting's register as its accepted rows up to a log position hold it (the tally's, the report's)."""
    return _state(spec.register, await log_register.meeting_chunks(conn, spec.meeting_id, up_to))


async def all_registers(conn: asyncpg.Connection) -> dict[str, RegisterState]:
    """Every scheduled meeting's register as the whole log holds it, by meeting id (for `status`)."""
    chunks: dict[str, list[asyncpg.Record]] = {}
    for row in await log_register.all_chunks(conn):
        chunks.setdefault(row["meeting_id"], []).append(row)
    return {
        row["meeting_id"]: _state(
            None if row["register"] is None else _totals.decode(row["register"]), chunks.get(row["meeting_id"], [])
        )
        for row in await log_register.declared_registers(conn)
    }


def _state(declared: RegisterTotals | None, rows: Iterable[asyncpg.Record]) -> RegisterState:
    """Fold the chunks' summaries as Meeting.record_positions does: the last chunk's count is the announced one."""
    numbers: set[int] = set()
    announced, positions, shares = None, 0, 0
    for row in rows:
        numbers.add(row["chunk"])
        announced = row["chunks"]
        positions += row["positions"]
        shares += int(row["shares"])  # numeric arrives as Decimal: an exact integer
    return state_of(declared, numbers, announced, positions, shares)

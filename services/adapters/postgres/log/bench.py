"""The benchmark's own statements on the log's tables (services/devtools/bench/), kept with the others."""

from __future__ import annotations

import asyncpg

from projections.log_row import LOG_COLUMNS

LOG_TABLE = "ledger_log"


async def create_bare_copy(conn: asyncpg.Connection, table: str) -> None:
    """Create ``table`` with the log's columns and NOT NULLs only: no keys, checks, indexes or triggers."""
    # INCLUDING DEFAULTS: recorded_at is NOT NULL DEFAULT clock_timestamp() and is not copied.
    await conn.execute(f"CREATE TABLE {table} (LIKE ledger_log INCLUDING DEFAULTS)")
    # LIKE copies no storage parameters: the log's toast_tuple_target (019_compact_form.sql) keeps a vote's
    # payload in its row, and the bare table must store the same rows the same way to be a like-for-like limit.
    options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'ledger_log'::regclass")
    if options:
        await conn.execute(f"ALTER TABLE {table} SET ({', '.join(options)})")


async def copy_rows(conn: asyncpg.Connection, rows: list[tuple], into: str = LOG_TABLE) -> None:
    """COPY LOG_COLUMNS tuples into the log (or a bare copy of it), in one transaction: one commit, one WAL flush."""
    async with conn.transaction():
        await conn.copy_records_to_table(into, columns=LOG_COLUMNS, records=rows)


async def count_and_size(conn: asyncpg.Connection, table: str = LOG_TABLE) -> tuple[int, int]:
    """How many rows the log (or a bare copy of it) holds, and its bytes on disk with indexes and TOAST."""
    count = await conn.fetchval(f"SELECT count(*) FROM {table}")
    size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
    return count, size


# The columns a replay read before migration 019 (the payload, parsed again as JSON), and every column of a
# row: what the read limit (services/devtools/bench/limits.read_limit) compares with the replay's own read.
PAYLOAD_COLUMNS = "position, meeting_id, type, decision, reason, payload"
ALL_COLUMNS = "*"


async def rows_after(
    conn: asyncpg.Connection, meeting_id: str, position: int, limit: int, columns: str
) -> list[asyncpg.Record]:
    """A meeting's rows after a position, as log_reads.read_after reads them but with other columns."""
    assert columns in (PAYLOAD_COLUMNS, ALL_COLUMNS)  # fixed column lists, never a caller's text
    return await conn.fetch(
        f"SELECT {columns} FROM ledger_log WHERE meeting_id = $3 AND position > $1 ORDER BY meeting_id, position"
        " LIMIT $2",
        position,
        limit,
        meeting_id,
    )


async def index_count(conn: asyncpg.Connection) -> int:
    """How many indexes the log table has."""
    return await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'ledger_log'")


async def autovacuum_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """How often autovacuum and autoanalyze have run on the log (empty before its first statistics)."""
    row = await conn.fetchrow(
        "SELECT autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'ledger_log'"
    )
    return dict(row or {})


async def vacuum_analyze(conn: asyncpg.Connection) -> None:
    """VACUUM (ANALYZE) the log."""
    await conn.execute("VACUUM (ANALYZE) ledger_log")


async def row_count(conn: asyncpg.Connection) -> int:
    """How many rows the log holds."""
    return await conn.fetchval("SELECT count(*) FROM ledger_log")


async def decisions(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows per decision."""
    return dict(await conn.fetch("SELECT decision, count(*) FROM ledger_log GROUP BY decision"))


async def event_ids_between(conn: asyncpg.Connection, after: int, up_to: int) -> list[str]:
    """The event ids of the rows in (after, up_to]."""
    rows = await conn.fetch("SELECT event_id FROM ledger_log WHERE position > $1 AND position <= $2", after, up_to)
    return [r["event_id"] for r in rows]


async def consumed(conn: asyncpg.Connection, group: str, topics: list[str]) -> int:
    """Messages a consumer group has committed on these topics, from its stored offsets."""
    return await conn.fetchval(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM ledger_offsets WHERE consumer_group = $1"
        " AND topic = ANY($2::text[])",
        group,
        topics,
    )


async def stamps_after(conn: asyncpg.Connection, position: int) -> list[asyncpg.Record]:
    """(position, event_id, appended_at, recorded_at) of the rows after a position, in epoch seconds (latency)."""
    return await conn.fetch(
        "SELECT position, event_id, extract(epoch FROM appended_at)::float8 AS appended,"
        " extract(epoch FROM recorded_at)::float8 AS recorded FROM ledger_log WHERE position > $1 ORDER BY position",
        position,
    )

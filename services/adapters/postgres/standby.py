"""Whether a reader's server is a hot standby, and how far its replay trails what it received.

Readers may point VOTE_LEDGER_PG_READER_DSN at a hot standby (README "Reading from a standby"). There
every read is read-only by the server's own rule, LISTEN is refused, and the data is as of the last
WAL record replayed: a consistent log position, possibly slightly older than the primary's.
"""

from __future__ import annotations

from typing import Any

import asyncpg

PRIMARY = "primary"
STANDBY = "standby"

# Replay lag as the standby alone can tell it: nothing, when it has replayed all it received (an idle
# primary sends nothing, so "now - last replayed commit" alone would grow without bound while nothing
# is missing); else the age of the last commit it replayed. WAL it has not received yet is invisible
# here (the primary's pg_stat_replication shows it); with synchronous replication there is none for
# anything the ledger was told had committed.
_REPLAY = """
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END AS lag_s,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint END AS lag_bytes,
       pg_last_xact_replay_timestamp() AS replayed_at
"""


async def in_recovery(conn: asyncpg.Connection) -> bool:
    """Whether the server is a standby replaying WAL (it refuses LISTEN, writes and SERIALIZABLE)."""
    return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))


async def database_role(conn: asyncpg.Connection) -> dict[str, Any]:
    """``{"database": "primary"}``, or on a standby its replay lag: seconds, bytes received not yet replayed, and
    when the last commit it replayed was made (RFC 3339; None before the first)."""
    row = await conn.fetchrow(_REPLAY)
    if not row["standby"]:
        return {"database": PRIMARY}
    replayed_at = row["replayed_at"]
    return {
        "database": STANDBY,
        "replay_lag_s": None if row["lag_s"] is None else round(max(row["lag_s"], 0.0), 3),
        "replay_lag_bytes": row["lag_bytes"],
        "replayed_at": replayed_at.isoformat() if replayed_at is not None else None,
    }

"""Whether a reader's server is a hot standby, and how far its replay trails what it received.

Readers may point VOTE_LEDGER_PG_READER_DSN at a hot standby (README "Reading from a standby"). There
every read is read-only by the server's own rule, LISTEN is refused, and the data is as of the last
WAL record replayed: a consistent log position, possibly slightly older than the primary's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from services.settings import Settings

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


# Whether the primary's commits wait for a synchronous standby that is not there. A commit waiting shows
# as wait_event 'SyncRep' in pg_stat_activity, but only to its own role (or pg_read_all_stats): a login
# that SET ROLE to its group role, or the status command's reader login, sees NULL for the ledger's
# backends. So the absence of every walsender (pg_stat_replication's rows are counted by anyone, its
# columns are not) while synchronous_standby_names is set says it too: every commit then waits. A wait
# under 1 s is how synchronous replication always looks (measured: a few ms a commit); longer is not.
_SYNC_WAIT = """
SELECT current_setting('synchronous_standby_names') AS names,
       (SELECT count(*) FROM pg_stat_replication) AS standbys,
       (SELECT count(*) FROM pg_stat_activity
         WHERE wait_event_type = 'IPC' AND wait_event = 'SyncRep'
           AND clock_timestamp() - query_start > interval '1 second') AS waiting
"""


async def sync_standby_wait(conn: asyncpg.Connection, timeout: float | None = None) -> str:
    """The one line saying commits wait for the synchronous standby, or "" when they do not."""
    if await in_recovery(conn):
        return ""  # a standby's own sessions commit nothing
    row = await conn.fetchrow(_SYNC_WAIT, timeout=timeout)
    names = (row["names"] or "").strip()
    if not names or (row["standbys"] and not row["waiting"]):
        return ""
    return sync_wait_line(names)


def sync_wait_line(names: str) -> str:
    """What an operator reads when the primary's commits wait for its synchronous standby."""
    return (
        f"commits wait for the synchronous standby (synchronous_standby_names = '{names}'):"
        " start it, or let the primary go on alone (README Failover)"
    )


async def ledger_commits_wait(settings: Settings, timeout: float) -> str:
    """Whether the ledger's commits wait for the synchronous standby: the line, else "" (also when unknown).

    On a connection of its own, as the ledger's login: the ledger's pool's connections are the ones stuck in COMMIT.
    """
    from services.adapters.postgres.connect import LEDGER_ROLE, connect_as

    try:
        conn = await asyncio.wait_for(connect_as(settings, LEDGER_ROLE), timeout)
    except Exception:  # noqa: BLE001 - PostgreSQL itself is away: its own outage report says so
        return ""
    try:
        return await sync_standby_wait(conn, timeout=timeout)
    except Exception:  # noqa: BLE001 - no answer is no evidence
        return ""
    finally:
        await conn.close(timeout=timeout)

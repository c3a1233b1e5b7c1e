"""Connections to PostgreSQL, each acting under the least-privileged role of its process."""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

LEDGER_ROLE = "vote_ledger_ledger"
PROJECTOR_ROLE = "vote_ledger_projector"
READER_ROLE = "vote_ledger_reader"

# asyncpg prepares every statement, and PostgreSQL switches a prepared statement to one generic
# plan after five runs. Our tables grow from empty to millions of rows within one session, so a
# generic plan chosen early (a seq scan, when the log was small) stays and goes quadratic: the
# ledger's duplicate check took seconds per batch at 50,000 rows. Planning each batch statement
# for its values costs well under a millisecond.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def _assume(conn: asyncpg.Connection, role: str | None) -> None:
    """SET ROLE so the database, not our code, refuses what this process must not do."""
    if role is None:
        return
    try:
        await conn.execute(f'SET ROLE "{role}"')
    except asyncpg.InsufficientPrivilegeError:
        # A login that is not a member of the role (e.g. a managed database's own user): carry on
        # with its own privileges, loudly, rather than refuse to run.
        log.warning("cannot SET ROLE %s; running with the login's own privileges", role)


async def connect(dsn: str, role: str | None = None) -> asyncpg.Connection:
    """Open one connection acting as ``role`` (None: the login itself, for migrations)."""
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    await _assume(conn, role)
    return conn


async def create_pool(dsn: str, role: str | None = None, size: int = 4) -> asyncpg.Pool:
    """Open a pool whose connections act as ``role``."""
    async def init(conn: asyncpg.Connection) -> None:
        await _assume(conn, role)

    return await asyncpg.create_pool(dsn, min_size=1, max_size=size, init=init, server_settings=SERVER_SETTINGS)

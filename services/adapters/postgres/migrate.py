"""Apply the SQL migrations shipped in services/adapters/postgres/migrations, once each, in order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x766F74656D6967  # "votemig"


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every shipped migration, in version order."""
    folder = resources.files("services.adapters.postgres") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations in one transaction each; return the versions applied now."""
    applied_now: list[str] = []
    async with conn.transaction():
        # Serialise concurrent `db migrate` runs (e.g. two services starting at once).
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    return applied_now


def dsn_for(server_dsn: str, database: str) -> str:
    """The same server and login, another database."""
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{database}"))


@asynccontextmanager
async def temporary_database(server_dsn: str, prefix: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A new database (with our schema unless told not to) for a test or a measurement; dropped after.

    Yields its DSN. Needs a login allowed to CREATE DATABASE.
    """
    database = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            dsn = dsn_for(server_dsn, database)
            if migrated:
                conn = await asyncpg.connect(dsn)
                try:
                    await migrate(conn)
                finally:
                    await conn.close()
            yield dsn
        finally:
            await _drop(admin, database)
    finally:
        await admin.close()


async def _drop(admin: asyncpg.Connection, database: str, attempts: int = 100) -> None:
    """Drop a database, terminating its sessions; retried while other logins' sessions are still exiting.

    FORCE may only terminate sessions of roles the dropping login belongs to. A login that is not a
    superuser (the owner in test_logins) fails when a service login's session, closed by its client
    a moment ago, has not yet exited on the server (seen once in a fresh-clone CI run): wait for it.
    It fails too while an autovacuum worker (the superuser's) is working on the database, as after the
    benchmark's million-row COPY (an aborted bench run, issue 15): a plain DROP then ends that worker
    itself, and only refuses while a real session remains, which the next attempt waits out.
    """
    for attempt in range(attempts):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
                return
            except asyncpg.ObjectInUseError:
                if attempt == attempts - 1:
                    raise
            await asyncio.sleep(0.1)

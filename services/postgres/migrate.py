"""Apply the SQL migrations shipped in services/postgres/migrations, once each, in order."""

from __future__ import annotations

from importlib import resources

import asyncpg

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x766F74656D6967  # "votemig"


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every shipped migration, in version order."""
    folder = resources.files("services.postgres") / "migrations"
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

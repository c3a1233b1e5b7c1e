"""Every SQL statement on api_tokens (017_api_tokens.sql): issue, look up, list and revoke API tokens."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_COLUMNS = "token_id, name, role, issued_at, expires_at, revoked_at"


async def issue(
    conn: asyncpg.Connection, token_id: str, name: str, role: str, secret_sha256: bytes, expires_at: datetime | None
) -> asyncpg.Record:
    """Store a new token (its secret's hash only); the owner's login. Returns the stored row without the hash."""
    return await conn.fetchrow(
        "INSERT INTO api_tokens (token_id, name, role, secret_sha256, expires_at) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {_COLUMNS}",
        token_id,
        name,
        role,
        secret_sha256,
        expires_at,
    )


async def lookup(conn: asyncpg.Connection, token_id: str) -> asyncpg.Record | None:
    """A token's name, role, secret hash and whether it is in force now (not revoked, not expired); None if unknown.

    Read on every request, no cache: a revocation takes effect on the next one. The database's clock
    decides expiry, the same clock that stamped issued_at and revoked_at.
    """
    return await conn.fetchrow(
        "SELECT token_id, name, role, secret_sha256,"
        " (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > clock_timestamp())) AS live"
        " FROM api_tokens WHERE token_id = $1",
        token_id,
    )


async def tokens(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every token ever issued, oldest first, without the secrets' hashes."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY issued_at, token_id")


async def revoke(conn: asyncpg.Connection, token_id: str) -> asyncpg.Record | None:
    """Revoke a token now (once: a revoked token keeps its first revocation time); None if unknown."""
    return await conn.fetchrow(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, clock_timestamp()) WHERE token_id = $1"
        f" RETURNING {_COLUMNS}",
        token_id,
    )

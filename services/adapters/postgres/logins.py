"""Login roles: one LOGIN per process (owner, ledger, projector, reader), each with a SCRAM password.

The group roles of migrations 003/007 (vote_ledger_ledger, _projector, _reader) keep the grants and
stay NOLOGIN; each service logs in as its own login, a plain member of exactly one group role, so
`RESET ROLE` leads back to a login that holds nothing more. The owner login owns the database and
runs `db migrate`; it is not a superuser. Used by `stack up`, the test fixtures and the benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from services.adapters.postgres.connect import LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, ROLE_DSNS

if TYPE_CHECKING:
    from services.settings import Settings

log = logging.getLogger(__name__)

# What each login is for: the group role it joins (None: the owner, who owns instead of joining).
KINDS: dict[str, str | None] = {
    "owner": None,
    "ledger": LEDGER_ROLE,
    "projector": PROJECTOR_ROLE,
    "reader": READER_ROLE,
}
# Session defaults of reader logins. Not a boundary (a client may SET them back; the grants are the
# boundary), a seatbelt: a dashboard's stray write or large object fails, and a session left idle in
# a transaction cannot hold back vacuum of the log for long.
READER_DEFAULTS = {"default_transaction_read_only": "on", "idle_in_transaction_session_timeout": "60s"}
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


@dataclass(frozen=True)
class Login:
    """A login role's name and password."""

    name: str
    password: str


SERVICE_KINDS = ("ledger", "projector", "reader")


def new_logins(prefix: str, kinds: tuple[str, ...] = tuple(KINDS)) -> dict[str, Login]:
    """Fresh logins named <prefix><kind>, each with a random 32-character URL-safe password."""
    return {kind: Login(f"{prefix}{kind}", secrets.token_urlsafe(24)) for kind in kinds}


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, computed here so the password never reaches the server."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def login_dsn(server_dsn: str, login: Login, database: str | None = None) -> str:
    """The same server (and database unless given) with this login and password."""
    parts = urlsplit(server_dsn)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    netloc = f"{quote(login.name, safe='')}:{quote(login.password, safe='')}@{host}"
    netloc += f":{parts.port}" if parts.port else ""
    path = f"/{database}" if database else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


# Dashboards that read PostgreSQL (Grafana): SELECT on the 018_dashboard_views.sql views only, no table.
DASHBOARDS_ROLE = "vote_ledger_dashboards"


async def ensure_group_roles(conn: asyncpg.Connection) -> None:
    """Create the NOLOGIN group roles when missing (as migrations 003 and 018 do), e.g. before any database exists."""
    for role in (LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, DASHBOARDS_ROLE):
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f'CREATE ROLE "{role}" NOLOGIN')


async def ensure_logins(conn: asyncpg.Connection, logins: dict[str, Login]) -> None:
    """Create or reset each login: its password, no special attribute, membership of its group role only.

    Needs a superuser (or CREATEROLE) connection. Idempotent: `stack up` runs it on every start.
    """
    await ensure_group_roles(conn)
    for kind, login in logins.items():
        group = KINDS[kind]
        verb = "ALTER" if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", login.name) else "CREATE"
        # Only the owner may create databases (the tests' and the benchmark's scratch databases).
        createdb = "CREATEDB" if group is None else "NOCREATEDB"
        # Utility statements take no parameters; the verifier is base64 and '$', safe in a literal.
        await conn.execute(
            f'{verb} ROLE "{login.name}" LOGIN INHERIT NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS'
            f" {createdb} PASSWORD '{scram_verifier(login.password)}'"
        )
        # Exactly one group role (007 refuses service roles that belong to others; this is the other side).
        others = await conn.fetch(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " WHERE m.member = $1::regrole AND g.rolname <> coalesce($2, '')",
            login.name,
            group,
        )
        for row in others:
            await conn.execute(f'REVOKE "{row["rolname"]}" FROM "{login.name}"')
        if group is not None:
            await conn.execute(f'GRANT "{group}" TO "{login.name}"')
        await conn.execute(f'ALTER ROLE "{login.name}" RESET ALL')
        if group == READER_ROLE:
            for name, value in READER_DEFAULTS.items():
                await conn.execute(f"ALTER ROLE \"{login.name}\" SET {name} = '{value}'")


async def drop_logins(conn: asyncpg.Connection, logins: dict[str, Login]) -> None:
    """Drop the logins (their databases must be gone: a role that owns one cannot be dropped)."""
    for login in logins.values():
        try:
            await conn.execute(f'DROP ROLE IF EXISTS "{login.name}"')
        except asyncpg.PostgresError as exc:  # e.g. still owns a database: leave it, say so
            log.warning("could not drop login %s: %s", login.name, exc)


@asynccontextmanager
async def temporary_logins(
    admin_dsn: str, prefix: str, kinds: tuple[str, ...] = tuple(KINDS)
) -> AsyncIterator[dict[str, str]]:
    """Fresh logins for one test session or benchmark run; yields their DSNs by kind; dropped after."""
    logins = new_logins(prefix, kinds)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await ensure_logins(conn, logins)
        yield {kind: login_dsn(admin_dsn, login) for kind, login in logins.items()}
    finally:
        await drop_logins(conn, logins)
        await conn.close()


@asynccontextmanager
async def service_logins(cfg: Settings, prefix: str) -> AsyncIterator[Settings]:
    """Settings in which each service has its own login.

    The given ones when every VOTE_LEDGER_PG_<ROLE>_DSN is set; else, when VOTE_LEDGER_PG_DSN is a
    superuser (e.g. a bare test container), fresh logins named <prefix><kind> for the block, dropped
    after; else the settings unchanged (connect_as falls back to VOTE_LEDGER_PG_DSN and SET ROLE).
    """
    fields = {kind: ROLE_DSNS[KINDS[kind]][0] for kind in SERVICE_KINDS}
    missing = {kind: f for kind, f in fields.items() if not getattr(cfg, f)}
    if not missing or not cfg.pg_dsn or not await is_superuser(cfg.pg_dsn):
        yield cfg
        return
    async with temporary_logins(cfg.pg_dsn, prefix, tuple(missing)) as dsns:
        yield cfg.model_copy(update={f: dsns[kind] for kind, f in missing.items()})


# pg_catalog functions any login may run that write or lock: large objects are storage of a login's
# own choosing (read-only transactions allow them), and an advisory lock held by a reader on the
# projector's lease (tally_store.PROJECTOR_LOCK) would stall the projector. Only a superuser may
# change their grants, per database, so this is an administrator's step, not a migration.
HARDEN = r"""
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig, p.proname ~ 'advisory' AS is_lock FROM pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace
                AND (p.proname ~ '^pg_(try_)?advisory(_xact)?_lock(_shared)?$'
                     OR p.proname IN ('lo_creat', 'lo_create', 'lo_from_bytea'))
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.sig);
        IF f.is_lock THEN  -- the ledger, the projector and `db migrate` (the owner) serialise with them
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO vote_ledger_ledger, vote_ledger_projector,'
                           ' pg_database_owner', f.sig);
        END IF;
    END LOOP;
END
$$;
"""


async def harden_database(conn: asyncpg.Connection) -> None:
    """Close the write and lock functions of pg_catalog to all but our writers, in this database.

    Needs a superuser connection to the database; idempotent. `stack up` runs it on the stack's
    database, the test fixtures on theirs, `vote-ledger db harden` elsewhere.
    """
    await ensure_group_roles(conn)
    await conn.execute(HARDEN)


async def is_superuser(dsn: str) -> bool:
    """Whether this DSN logs in as a superuser."""
    conn = await asyncpg.connect(dsn)
    try:
        return conn.get_settings().is_superuser == "on"
    finally:
        await conn.close()


async def adopt_database(conn: asyncpg.Connection, owner: str) -> list[str]:
    """Make ``owner`` own this database and every object of our schemas (a database migrated earlier
    by another login, e.g. the superuser of a `stack up` before logins existed). Returns what moved.

    Needs a superuser connection to the database. Ownership is what lets the owner login run later
    migrations; the grants of 003-009 move with it (PostgreSQL rewrites the grantor).
    """
    moved: list[str] = []
    database = await conn.fetchval("SELECT current_database()")
    if await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database) != owner:
        await conn.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
        moved.append(f"database {database}")
    # Tables first: a sequence owned by a column follows its table and cannot be moved alone.
    queries = [
        "SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, $1::text) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'tally_shadow')"
        " AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relowner <> $1::regrole",
        "SELECT format('ALTER SEQUENCE %s OWNER TO %I', c.oid::regclass, $1::text) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'tally_shadow')"
        " AND c.relkind = 'S' AND c.relowner <> $1::regrole",
        "SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'tally_shadow')"
        " AND p.proowner <> $1::regrole",
        # Schema public belongs to pg_database_owner (PostgreSQL 15+), which follows the database.
        "SELECT format('ALTER SCHEMA %I OWNER TO %I', nspname, $1::text) FROM pg_namespace"
        " WHERE nspname IN ('public', 'tally_shadow') AND nspowner NOT IN ($1::regrole, 'pg_database_owner'::regrole)",
    ]
    for query in queries:
        for (statement,) in await conn.fetch(query, owner):
            await conn.execute(statement)
            moved.append(statement)
    if moved and await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        # 007's defaults belong to the login that ran it; restate them for the new owner.
        await conn.execute(f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC')
        await conn.execute(
            f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public GRANT SELECT ON TABLES TO "{READER_ROLE}"'
        )
    return moved

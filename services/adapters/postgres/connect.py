"""Connections to PostgreSQL, each logged in as its process's own login and acting under its role."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg

from services.errors import UserError

if TYPE_CHECKING:
    from services.settings import Settings

log = logging.getLogger(__name__)

LEDGER_ROLE = "vote_ledger_ledger"
PROJECTOR_ROLE = "vote_ledger_projector"
READER_ROLE = "vote_ledger_reader"

# Each process's own login, by the role it acts as: (Settings field, environment variable).
ROLE_DSNS = {
    LEDGER_ROLE: ("pg_ledger_dsn", "VOTE_LEDGER_PG_LEDGER_DSN"),
    PROJECTOR_ROLE: ("pg_projector_dsn", "VOTE_LEDGER_PG_PROJECTOR_DSN"),
    READER_ROLE: ("pg_reader_dsn", "VOTE_LEDGER_PG_READER_DSN"),
}

# asyncpg prepares every statement, and PostgreSQL switches a prepared statement to one generic
# plan after five runs. Our tables grow from empty to millions of rows within one session, so a
# generic plan chosen early (a seq scan, when the log was small) stays and goes quadratic: the
# ledger's duplicate check took seconds per batch at 50,000 rows. Planning each batch statement
# for its values costs well under a millisecond.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}

# How long opening one connection may take (asyncpg's default is 60 s). Something else listening on
# the port (a web server, say) accepts and never answers; a server that answers at all does so in
# milliseconds. Services retry in their own loops, so this bounds one attempt, not their patience.
CONNECT_TIMEOUT_S = 10.0


async def _assume(conn: asyncpg.Connection, role: str | None, variable: str | None = None) -> None:
    """SET ROLE so the database, not our code, refuses what this process must not do.

    For a service (``variable`` names where its DSN came from) a login that is not a member of the
    role is refused: it would run with its own privileges, e.g. the owner's, who may switch the
    log's triggers off. Elsewhere (the owner's own tools) it carries on, loudly.
    """
    if role is None:
        return
    try:
        await conn.execute(f'SET ROLE "{role}"')
    except asyncpg.InsufficientPrivilegeError:
        if variable is not None:
            user = conn.get_settings().session_authorization
            raise UserError(
                f"{variable} logs in as {user!r}, which is not a member of {role}: give this process"
                f" a login of its own ({ROLE_DSNS[role][1]}; `vote-ledger stack up` prints one)"
            ) from None
        log.warning("cannot SET ROLE %s; running with the login's own privileges", role)


async def connect(dsn: str, role: str | None = None) -> asyncpg.Connection:
    """Open one connection on a given DSN acting as ``role`` (None: the login itself, e.g. `db migrate`).

    Services use connect_as()/pool_as(), which choose their own login; this is for the owner's
    connections and for tests that probe a role's grants from the owner's login.
    """
    conn = await _open(dsn)
    await _assume(conn, role)
    return conn


def on_database(cfg: Settings, database: str) -> Settings:
    """The same logins (owner's and services') on another database, e.g. a test's or a benchmark's."""
    from services.adapters.postgres.migrate import dsn_for

    fields = ("pg_dsn", *(field for field, _ in ROLE_DSNS.values()))
    return cfg.model_copy(update={f: dsn_for(getattr(cfg, f), database) for f in fields if getattr(cfg, f)})


def dsn_env(cfg: Settings) -> dict[str, str]:
    """The environment variables that give a `vote-ledger` process these logins ("" = unset)."""
    return {
        "VOTE_LEDGER_PG_DSN": cfg.pg_dsn or "",
        **{variable: getattr(cfg, field) or "" for field, variable in ROLE_DSNS.values()},
    }


def role_dsn(cfg: Settings, role: str) -> tuple[str, str]:
    """The DSN a process acting as ``role`` logs in with, and the variable it came from.

    Its own login (VOTE_LEDGER_PG_<ROLE>_DSN) when set; else VOTE_LEDGER_PG_DSN, the older form,
    which connect_as() accepts only for a login that is not a superuser.
    """
    field, variable = ROLE_DSNS[role]
    own = getattr(cfg, field)
    if own:
        return own, variable
    if cfg.pg_dsn:
        return cfg.pg_dsn, "VOTE_LEDGER_PG_DSN"
    raise UserError(
        f'{variable} is not set: run `eval "$(vote-ledger stack up)"` for the local stack,'
        " or set it to this process's own login"
    )


def _refuse_superuser(conn: asyncpg.Connection, role: str, variable: str) -> None:
    # A superuser can RESET ROLE and switch the append-only triggers off (session_replication_role):
    # a service must log in as a login that holds only its role's grants. is_superuser is reported
    # by the server at login, so this costs no round trip.
    if conn.get_settings().is_superuser != "on":
        return
    user = conn.get_settings().session_authorization
    own = ROLE_DSNS[role][1]
    if variable == own:
        raise UserError(
            f"{own} logs in as the superuser {user!r}: give this process a login of its own"
            f" (member of {role}; `vote-ledger stack up` prints one)"
        )
    raise UserError(
        f"{own} is not set and {variable} logs in as the superuser {user!r}: set {own}"
        f' to this process\'s own login (`eval "$(vote-ledger stack up)"` sets it)'
    )


async def connect_as(cfg: Settings, role: str) -> asyncpg.Connection:
    """A service's connection: its own login (never a superuser), acting as ``role``."""
    dsn, variable = role_dsn(cfg, role)
    conn = await _open(dsn, variable)
    try:
        _refuse_superuser(conn, role, variable)
        await _assume(conn, role, variable)
    except BaseException:
        await conn.close()
        raise
    return conn


async def pool_as(cfg: Settings, role: str, size: int = 4) -> asyncpg.Pool:
    """A service's pool: every connection its own login (never a superuser), acting as ``role``."""
    dsn, variable = role_dsn(cfg, role)

    async def init(conn: asyncpg.Connection) -> None:
        _refuse_superuser(conn, role, variable)
        await _assume(conn, role, variable)

    async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        # The pool's later connections too (a refill after an outage): marked like _open's, so that
        # outage.of tells their refused socket or timeout apart from any other OSError, as PostgreSQL's.
        try:
            return await asyncpg.connect(*args, **kwargs)
        except UNREACHABLE as exc:
            exc.postgres_target = (dsn, variable)  # type: ignore[union-attr]
            raise

    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            init=init,
            connect=connect,
            server_settings=SERVER_SETTINGS,
            timeout=CONNECT_TIMEOUT_S,
        )
    except UNREACHABLE as exc:
        exc.postgres_target = (dsn, variable)  # type: ignore[union-attr]
        raise


# What asyncpg raises when it cannot open a session: no server, a wrong address, a refused login or an
# unknown database. Callers that retry (the projector) still see these types; only the CLI's main turns
# them into one line (unreachable below), so a long-running service keeps reconnecting as before.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InvalidAuthorizationSpecificationError,  # bad password, unknown role, no pg_hba.conf entry
    asyncpg.InvalidCatalogNameError,  # unknown database
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
)


async def _open(dsn: str, variable: str | None = None) -> asyncpg.Connection:
    """asyncpg.connect, remembering on a failure where it tried to go (for the CLI's one-line error)."""
    try:
        return await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS, timeout=CONNECT_TIMEOUT_S)
    except UNREACHABLE as exc:
        exc.postgres_target = (dsn, variable)  # type: ignore[union-attr]
        raise


def _where(dsn: str) -> str:
    # Host, port, database and login: everything but the password.
    parts = urlsplit(dsn)
    login = f" as {parts.username}" if parts.username else ""
    try:
        host = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:  # several hosts (h1:5432,h2:5433), which asyncpg tries in turn: as written
        host = parts.netloc.rpartition("@")[2]
    return f"{host}{parts.path or '/'}{login}"


def _variable_of(dsn: str) -> str | None:
    # connect() is given a bare DSN (e.g. `db migrate`'s): name the variable that holds it, if one does.
    from services.settings import load, variable

    try:
        current: Any = load()
    except Exception:  # noqa: BLE001 - a malformed variable was reported before any connection
        return None
    fields = ("pg_dsn", "pg_admin_dsn", *(field for field, _ in ROLE_DSNS.values()))
    return next((variable(field) for field in fields if getattr(current, field) == dsn), None)


def unreachable(exc: BaseException) -> str | None:
    """One line for a failure to reach PostgreSQL (where it tried, why, what to do); None for any other error."""
    if isinstance(exc, asyncpg.PostgresError) and "conflict with recovery" in str(exc):
        # A hot standby cancels a read whose snapshot still needs rows its replay must remove, or that
        # holds a lock replay needs, once max_standby_streaming_delay (30 s) passed: nothing is wrong
        # with the read, and it is read-only, so running it again is safe.
        return (
            f"the standby cancelled this read ({exc}); run it again. If it recurs, set hot_standby_feedback = on"
            " on the standby (`stack up --replicated` does) or raise its max_standby_streaming_delay"
        )
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        # e.g. `db migrate` or `api token issue` with their DSN on a hot standby, but also a read-only login on
        # the primary (the reader's: default_transaction_read_only, tests/integration/test_logins.py): the same
        # error and message, and no connection is at hand here to ask pg_is_in_recovery(), so both are named.
        return (
            f"PostgreSQL refused a write ({exc}): this command's DSN points at a hot standby, or logs in"
            " read-only (e.g. the reader's login); point it at the primary, with a login that may write"
        )
    if isinstance(exc, asyncpg.UndefinedTableError):
        # Reached, but the database was never migrated (a fresh stack, a wrong database in the DSN).
        return f"the database has no vote-ledger schema ({exc}); run `vote-ledger db migrate` as its owner"
    target = getattr(exc, "postgres_target", None)
    if target is None and not isinstance(exc, UNREACHABLE[2:]):
        return None  # e.g. a file the command could not open: not ours to explain
    dsn, variable = target or (None, None)
    variable = variable or (dsn and _variable_of(dsn))
    fix = variable or "the VOTE_LEDGER_PG_*_DSN variables"
    start = 'for the local stack run `eval "$(vote-ledger stack up)"`'
    if isinstance(exc, asyncpg.InvalidPasswordError):
        why, todo = "the password was refused", f"fix the password in {fix}"
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        why, todo = f"the login was refused ({exc})", f"fix the login in {fix}"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        why, todo = str(exc), f"fix the database in {fix}, or create it and run `vote-ledger db migrate`"
    elif isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        why, todo = str(exc), "try again in a moment"
    elif isinstance(exc, TimeoutError):
        why, todo = "no answer in time", f"check the address in {fix} and that the server is reachable"
    elif isinstance(exc, socket.gaierror):
        why, todo = f"unknown host ({exc.strerror})", f"fix the host in {fix}"
    else:
        refused = isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc)
        why = "connection refused" if refused else str(exc) or type(exc).__name__
        todo = f"is it running? {start}, or fix {fix}"
    where = f" at {_where(dsn)}" if dsn else ""
    named = f" ({variable})" if variable else ""
    return f"cannot reach PostgreSQL{where}{named}: {why}; {todo}"

"""The database boundary, proven over TCP: each process logs in with its own password and cannot leave its role."""

import asyncio
import uuid
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.adapters.postgres.connect import LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, ROLE_DSNS, connect_as, pool_as
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.logins import adopt_database, temporary_logins
from services.adapters.postgres.migrate import dsn_for, migrate, temporary_database
from services.cli import UserError
from tests.factories import small_meeting
from tests.integration.helpers import append, log_row

pytestmark = pytest.mark.integration

ROLES = (LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE)
# What a login could try once it has left its role: write the log, switch the append-only triggers
# off, become somebody else, plant code or data of its own.
ESCAPES = [
    "UPDATE ledger_log SET reason = 'forged'",
    "DELETE FROM ledger_log",
    "TRUNCATE ledger_log",
    "SET session_replication_role = replica",
    "ALTER TABLE ledger_log DISABLE TRIGGER ALL",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "CREATE TEMP TABLE planted (a integer)",
    "CREATE TABLE public.planted (a integer)",
    "GRANT vote_ledger_ledger TO CURRENT_USER",
]


def own_dsn(settings, role: str) -> str:
    """The DSN of the service login acting as ``role`` in this test's database."""
    return getattr(settings, ROLE_DSNS[role][0])


def with_password(dsn: str, password: str) -> str:
    """The same DSN with another password."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


async def escapes(conn: asyncpg.Connection) -> list[str]:
    """The ESCAPES the database did NOT refuse (should be none), each in a read-write transaction."""
    allowed = []
    for sql in ESCAPES:
        try:
            async with conn.transaction(readonly=False):
                await conn.execute("SET TRANSACTION READ WRITE")
                await conn.execute(sql)
            allowed.append(sql)
        except asyncpg.InsufficientPrivilegeError:
            pass
    return allowed


@pytest.mark.parametrize("role", ROLES)
async def test_each_service_logs_in_with_its_password_as_a_plain_member_of_its_role_only(settings, role):
    conn = await asyncpg.connect(own_dsn(settings, role))
    try:
        assert conn.get_settings().is_superuser == "off"
        login = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin,"
            " array(SELECT roleid::regrole::text FROM pg_auth_members WHERE member = r.oid) AS member_of"
            " FROM pg_roles r WHERE rolname = session_user"
        )
        assert dict(login) == {
            "rolsuper": False,
            "rolcreaterole": False,
            "rolcreatedb": False,
            "rolreplication": False,
            "rolbypassrls": False,
            "rolcanlogin": True,
            "member_of": [role],
        }
    finally:
        await conn.close()


@pytest.mark.parametrize("role", ROLES)
async def test_after_reset_role_a_service_login_still_cannot_touch_the_log_or_switch_off_its_triggers(
    settings, pg_dsn, role
):
    owner = await asyncpg.connect(pg_dsn)
    await append(owner, [log_row(small_meeting())])
    conn = await connect_as(settings, role)  # exactly what the service opens
    try:
        assert await conn.fetchval("SELECT current_user") == role
        await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT current_user = session_user")
        assert await escapes(conn) == []
    finally:
        await conn.close()
    assert await owner.fetchval("SELECT count(*) FROM ledger_log WHERE reason IS NULL") == 1
    await owner.close()


async def test_the_reader_starts_read_only_and_cannot_create_a_temporary_table_even_read_write(settings):
    reader = await asyncpg.connect(settings.pg_reader_dsn)
    try:
        assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.execute("CREATE TEMP TABLE planted (a integer)")
        await reader.execute("SET default_transaction_read_only = off")  # a client can; the grants still hold
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("CREATE TEMP TABLE planted (a integer)")
        assert await reader.fetchval("SELECT count(*) FROM ledger_log") == 0  # and it does read
    finally:
        await reader.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_xact_lock(1, 2)",
        "SELECT lo_create(0)",
        "SELECT lo_from_bytea(0, 'planted')",
    ],
)
async def test_the_reader_cannot_take_an_advisory_lock_the_ledger_needs_or_store_a_large_object(settings, sql):
    reader = await asyncpg.connect(settings.pg_reader_dsn)
    try:
        await reader.execute("RESET ROLE; SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute(sql)
    finally:
        await reader.close()
    ledger = await connect_as(settings, LEDGER_ROLE)
    try:
        async with ledger.transaction():
            await log_append.lock_log(ledger)  # the writers keep their locks
    finally:
        await ledger.close()


async def test_no_login_but_the_ledgers_can_take_the_append_lock_so_none_can_stall_ingestion(settings):
    for role in (PROJECTOR_ROLE, READER_ROLE):
        other = await connect_as(settings, role)
        try:
            await other.execute("RESET ROLE; SET default_transaction_read_only = off")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with other.transaction():
                    await log_append.lock_log(other)
            # An advisory lock on the key the ledger used before 013 stalls nothing any more.
            if role == PROJECTOR_ROLE:
                await other.execute("SELECT pg_advisory_lock(33350360623122279)")
                ledger = await connect_as(settings, LEDGER_ROLE)
                try:
                    async with ledger.transaction():
                        await asyncio.wait_for(log_append.lock_log(ledger), timeout=5)
                finally:
                    await ledger.close()
        finally:
            await other.close()


async def test_no_service_login_may_create_a_temporary_table(settings):
    for role in (LEDGER_ROLE, PROJECTOR_ROLE):
        conn = await asyncpg.connect(own_dsn(settings, role))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TEMP TABLE planted (a integer)")
        finally:
            await conn.close()


async def test_a_wrong_password_is_refused(settings):
    wrong = with_password(settings.pg_ledger_dsn, "not-the-password")
    try:
        conn = await asyncpg.connect(wrong)
    except asyncpg.InvalidPasswordError:
        return
    await conn.close()
    pytest.skip("this server trusts every login (pg_hba.conf `trust`): `vote-ledger stack up` converts it")


async def test_a_service_given_a_superuser_login_refuses_to_start_naming_the_variable_to_set(settings, pg_dsn):
    only_owner = settings.model_copy(update={"pg_dsn": pg_dsn, "pg_ledger_dsn": None})
    with pytest.raises(
        UserError, match="VOTE_LEDGER_PG_LEDGER_DSN is not set and VOTE_LEDGER_PG_DSN logs in as the superuser"
    ):
        await connect_as(only_owner, LEDGER_ROLE)
    superuser_as_ledger = settings.model_copy(update={"pg_ledger_dsn": pg_dsn})
    with pytest.raises(UserError, match="^VOTE_LEDGER_PG_LEDGER_DSN logs in as the superuser"):
        pool = await pool_as(superuser_as_ledger, LEDGER_ROLE)
        await pool.close()


async def test_the_older_single_dsn_form_still_works_for_a_login_that_is_no_superuser(settings):
    only_one = settings.model_copy(update={"pg_dsn": settings.pg_reader_dsn, "pg_reader_dsn": None})
    conn = await connect_as(only_one, READER_ROLE)  # VOTE_LEDGER_PG_DSN, then SET ROLE
    try:
        assert await conn.fetchval("SELECT current_user") == READER_ROLE
    finally:
        await conn.close()


async def test_a_service_given_a_login_outside_its_role_refuses_to_start_rather_than_run_with_its_rights(settings):
    # E.g. the owner's DSN as the only one: SET ROLE fails and the ledger would run as the owner,
    # who may switch the log's triggers off. The reader's login stands in for any non-member here.
    only_other = settings.model_copy(update={"pg_dsn": settings.pg_reader_dsn, "pg_ledger_dsn": None})
    with pytest.raises(UserError, match="which is not a member of vote_ledger_ledger"):
        await connect_as(only_other, LEDGER_ROLE)
    with pytest.raises(UserError, match="which is not a member of vote_ledger_ledger"):
        pool = await pool_as(only_other, LEDGER_ROLE)
        await pool.close()


async def test_an_owner_login_that_is_no_superuser_migrates_a_database_it_owns(logins):
    async with temporary_logins(logins.pg_dsn, f"vl_t{uuid.uuid4().hex[:8]}_", ("owner",)) as dsns:
        # From the `postgres` database: 009 closed the others to logins outside our roles.
        async with temporary_database(dsn_for(dsns["owner"], "postgres"), "t_owner_") as dsn:  # 007, 009 hold
            conn = await asyncpg.connect(dsn)
            try:
                assert conn.get_settings().is_superuser == "off"
                assert await conn.fetchval(
                    "SELECT pg_get_userbyid(relowner) = session_user FROM pg_class WHERE oid = 'ledger_log'::regclass"
                )
                assert (
                    await conn.fetchval(
                        "SELECT has_database_privilege('vote_ledger_reader', current_database(), 'TEMPORARY')"
                    )
                    is False
                )
            finally:
                await conn.close()


async def test_a_database_migrated_by_the_superuser_is_adopted_by_the_owner_login_who_migrates_on(logins):
    async with temporary_logins(logins.pg_dsn, f"vl_t{uuid.uuid4().hex[:8]}_", ("owner",)) as dsns:
        async with temporary_database(logins.pg_dsn, "t_adopt_") as dsn:
            admin = await asyncpg.connect(dsn)
            owner = urlsplit(dsns["owner"]).username
            try:
                assert await adopt_database(admin, owner)
                assert await adopt_database(admin, owner) == []  # nothing left to move
            finally:
                await admin.close()
            conn = await asyncpg.connect(urlunsplit(urlsplit(dsns["owner"])._replace(path=urlsplit(dsn).path)))
            try:
                assert await migrate(conn) == []
                # A later migration's table, created by the new owner, is readable by readers (007's defaults).
                await conn.execute("CREATE TABLE later_table (a integer)")
                assert await conn.fetchval("SELECT has_table_privilege('vote_ledger_reader', 'later_table', 'SELECT')")
                await conn.execute("DROP TABLE later_table")
            finally:
                await conn.close()


async def test_migration_009_refuses_a_login_that_belongs_to_two_service_roles(pg_dsn):
    sql = next(text for version, text in _migrations() if version.startswith("009"))
    conn = await asyncpg.connect(pg_dsn)
    login = f"t_both_{uuid.uuid4().hex[:8]}"
    try:
        tx = conn.transaction()  # rolled back: no other session ever sees this login
        await tx.start()
        try:
            await conn.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE vote_ledger_ledger, vote_ledger_projector')
            with pytest.raises(asyncpg.RaiseError, match=f"{login}: is a member of more than one service role"):
                await conn.execute(sql)
        finally:
            await tx.rollback()
    finally:
        await conn.close()


def _migrations():
    folder = resources.files("services.adapters.postgres") / "migrations"
    return [(f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql")]

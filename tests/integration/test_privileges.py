"""Least privilege, proven: what each service role is refused, and that what it needs still works."""

import uuid

import asyncpg
import pytest

from projections.log_row import ParkedMessage
from services.adapters.postgres import tally_store
from services.adapters.postgres.connect import LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, connect
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.tally_store import PROJECTION
from services.read.tallies import read_tally
from services.runtime.rebuild import rebuild
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import append, log_row

pytestmark = pytest.mark.integration

ROLES = (LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE)
LOG_TABLES = ("ledger_log", "ledger_offsets", "ledger_parked")
TALLY_TABLES = ("tally_meetings", "tally_buckets", "tally_voters", "tally_overvote_rejections")
PROJECTION_TABLES = ("projection_checkpoints", "projection_failures", *TALLY_TABLES)
SHADOW_TABLES = tuple(f"tally_shadow.{t}" for t in TALLY_TABLES)
# The API's bearer tokens (017_api_tokens.sql): the reader (the API) looks them up, only the owner writes them.
TOKEN_TABLES = ("api_tokens",)
EVERY_TABLE = (*LOG_TABLES, *PROJECTION_TABLES, *SHADOW_TABLES, *TOKEN_TABLES)
# A column of each table, for an UPDATE that would change nothing if it were allowed.
COLUMN = {
    "ledger_log": "reason",
    "ledger_offsets": "next_offset",
    "ledger_parked": "detail",
    "projection_checkpoints": "position",
    "api_tokens": "revoked_at",
}

# Exactly the writes each role holds, on any table of the database (the matrix of 007_least_privilege.sql).
WRITES = {
    LEDGER_ROLE: {
        ("ledger_log", "INSERT"),
        ("ledger_parked", "INSERT"),
        ("ledger_offsets", "INSERT"),
        ("ledger_offsets", "UPDATE"),
        ("ledger_append_lock", "UPDATE"),
    },  # to lock its one row FOR UPDATE (013_append_lock.sql)
    PROJECTOR_ROLE: {(t, p) for t in PROJECTION_TABLES + SHADOW_TABLES for p in ("INSERT", "UPDATE", "DELETE")},
    READER_ROLE: set(),
}


def writes(table: str, kinds: str = "IUDT") -> list[str]:
    """Statements that write to a table: (I)NSERT, (U)PDATE, (D)ELETE, (T)RUNCATE; harmless if allowed."""
    column = COLUMN.get(table, "meeting_id")
    sql = {
        "I": f"INSERT INTO {table} DEFAULT VALUES",
        "U": f"UPDATE {table} SET {column} = {column} WHERE false",
        "D": f"DELETE FROM {table} WHERE false",
        "T": f"TRUNCATE {table}",
    }
    return [sql[k] for k in kinds]


def ddl(table: str) -> list[str]:
    """Statements only a table's owner may run."""
    return [
        f"ALTER TABLE {table} ADD COLUMN sneaky integer",
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"DROP TABLE {table}",
    ]


# Statements nobody but the owner may run, whatever the role.
OWNER_ONLY = [
    *(s for t in EVERY_TABLE for s in ddl(t)),
    "CREATE TABLE public.planted (a integer)",
    "CREATE TABLE tally_shadow.planted (a integer)",
    "CREATE SCHEMA planted",
    "CREATE FUNCTION public.planted() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "SELECT setval('ledger_parked_id_seq', 1)",
]

REFUSED = {
    LEDGER_ROLE: [
        *(s for t in PROJECTION_TABLES + SHADOW_TABLES + TOKEN_TABLES for s in writes(t)),
        "SELECT * FROM api_tokens",
        *writes("ledger_log", "UDT"),
        *writes("ledger_parked", "UDT"),
        *writes("ledger_offsets", "DT"),
        *OWNER_ONLY,
    ],
    PROJECTOR_ROLE: [
        *(s for t in LOG_TABLES + TOKEN_TABLES for s in writes(t)),
        "SELECT * FROM api_tokens",
        *(s for t in PROJECTION_TABLES + SHADOW_TABLES for s in writes(t, "T")),
        "SELECT nextval('ledger_parked_id_seq')",
        *OWNER_ONLY,
    ],
    READER_ROLE: [
        *(s for t in EVERY_TABLE for s in writes(t)),
        "SELECT nextval('ledger_parked_id_seq')",
        "SELECT * FROM tally_shadow.tally_buckets",
        *OWNER_ONLY,
    ],
}


async def refused(dsn: str, role: str, statements: list[str]) -> list[str]:
    """The statements the database did NOT refuse for lack of privilege (should be none)."""
    conn = await connect(dsn, role)
    allowed = []
    try:
        assert await conn.fetchval("SELECT current_user") == role
        for sql in statements:
            try:
                await conn.execute(sql)
                allowed.append(sql)
            except asyncpg.InsufficientPrivilegeError:
                pass
    finally:
        await conn.close()
    return allowed


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_is_refused_every_write_and_every_change_of_schema_it_does_not_need(pg_dsn, role):
    assert await refused(pg_dsn, role, REFUSED[role]) == []


async def test_the_ledger_cannot_write_a_projection_and_the_projector_cannot_append_to_the_log(pg_dsn):
    assert await refused(pg_dsn, LEDGER_ROLE, ["INSERT INTO tally_buckets VALUES ('m1', '2', 'for', '', 1)"]) == []
    assert (
        await refused(
            pg_dsn,
            PROJECTOR_ROLE,
            [
                "INSERT INTO ledger_log (position, meeting_id, event_id, type, decision, payload)"
                " VALUES (1, 'm1', 'forged', 'vote.cast', 'accepted', '{}')"
            ],
        )
        == []
    )


async def test_nobody_can_update_or_delete_a_logged_row_not_even_the_owner(pg_dsn):
    owner = await connect(pg_dsn)
    await append(owner, [log_row(small_meeting())])
    for role in (*ROLES, None):
        conn = await connect(pg_dsn, role)
        try:
            for sql in ("UPDATE ledger_log SET reason = reason", "DELETE FROM ledger_log", "TRUNCATE ledger_log"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(sql)
        finally:
            await conn.close()
    assert await owner.fetchval("SELECT count(*) FROM ledger_log") == 1
    await owner.close()


async def test_the_catalog_grants_each_role_exactly_its_writes_on_every_table_and_owns_nothing(pg_dsn):
    conn = await connect(pg_dsn)
    try:
        tables = [
            r["name"]
            for r in await conn.fetch(
                "SELECT CASE schemaname WHEN 'public' THEN tablename ELSE schemaname || '.' || tablename END AS name"
                " FROM pg_tables WHERE schemaname IN ('public', 'tally_shadow')"
            )
        ]
        for role in ROLES:
            held = {
                (t, p)
                for t in tables
                for p in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                if await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", role, t, p)
            }
            assert held == WRITES[role], role
            assert not await conn.fetchval(
                "SELECT bool_or(has_table_privilege($1, t, 'SELECT WITH GRANT OPTION')) FROM unnest($2::text[]) t",
                role,
                tables,
            ), f"{role} may grant"
            assert not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_class WHERE relowner = $1::regrole)", role)
            assert await conn.fetchval(
                "SELECT NOT (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb) FROM pg_roles"
                " WHERE rolname = $1",
                role,
            )
    finally:
        await conn.close()


async def test_tables_and_functions_later_migrations_add_are_readable_by_readers_and_closed_to_services(pg_dsn):
    owner = await connect(pg_dsn)  # the login that runs `db migrate`, as a later migration would
    await owner.execute("CREATE TABLE later_table (a integer)")
    await owner.execute("CREATE FUNCTION later_function() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
    await owner.close()
    assert await refused(pg_dsn, LEDGER_ROLE, [*writes("later_table", "IT"), "SELECT later_function()"]) == []
    assert await refused(pg_dsn, PROJECTOR_ROLE, [*writes("later_table", "IT"), "SELECT * FROM later_table"]) == []
    assert await refused(pg_dsn, READER_ROLE, [*writes("later_table", "IT"), "SELECT later_function()"]) == []
    reader = await connect(pg_dsn, READER_ROLE)
    assert await reader.fetch("SELECT * FROM later_table") == []
    await reader.close()


async def test_each_role_can_still_do_its_job_ledger_appends_projector_rebuilds_reader_reads(pg_dsn):
    ledger = await connect(pg_dsn, LEDGER_ROLE)
    head = await append(
        ledger,
        [
            log_row(small_meeting()),
            log_row(register_event()),
            log_row(cast("R-1", {"2": "for"})),
            log_row(cast("B-1", {"2": "against"}, channel="broker")),
            log_row(cast("X-1", {"2": "for"}), "rejected", "not_entitled"),
        ],
    )
    async with ledger.transaction():
        await log_append.park(ledger, [ParkedMessage("t", 0, 7, None, b"\xff", "undecodable", "bad")])
        await log_append.store_offsets(ledger, "g", {("t", 0): 8})
        await log_append.store_offsets(ledger, "g", {("t", 0): 9})  # an update, never backwards
    assert await log_append.load_offsets(ledger, "g", [("t", 0)]) == {("t", 0): 9}
    await ledger.close()

    projector = await connect(pg_dsn, PROJECTOR_ROLE)
    async with projector.transaction():
        await tally_store.lock(projector)
        await tally_store.save_checkpoint(projector, PROJECTION, head)
    assert await rebuild(projector, "m1") == head  # through the shadow tables, then swapped in
    await projector.close()

    reader = await connect(pg_dsn, READER_ROLE)
    try:
        tally = await read_tally(reader, "m1")
        assert (tally["quorum"]["present"], tally["items"]["2"]["for"], tally["items"]["2"]["against"]) == (
            5000,
            3000,
            2000,
        )
        for table in (*LOG_TABLES, *PROJECTION_TABLES, *TOKEN_TABLES, "schema_migrations"):
            await reader.fetch(f"SELECT * FROM {table} LIMIT 1")
    finally:
        await reader.close()


async def test_a_login_granted_the_reader_role_reads_the_tally_and_can_assume_no_other_role(pg_dsn):
    login = f"t_dashboard_{uuid.uuid4().hex[:8]}"
    owner = await connect(pg_dsn)
    # What the README tells operators, minus the password (this test never authenticates as it).
    await owner.execute(f'CREATE ROLE "{login}" LOGIN')
    await owner.execute(f'GRANT vote_ledger_reader TO "{login}"')
    dashboard = await connect(pg_dsn)
    try:
        await dashboard.execute(f'SET SESSION AUTHORIZATION "{login}"')  # as if it had logged in
        await dashboard.fetch("SELECT * FROM tally_buckets")  # inherited from the reader role
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await dashboard.execute("DELETE FROM tally_buckets")
        await dashboard.execute("SET ROLE vote_ledger_reader")  # what services.adapters.postgres.connect does
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await dashboard.execute("SET ROLE vote_ledger_projector")
    finally:
        await dashboard.close()
        await owner.execute(f'DROP ROLE "{login}"')
        await owner.close()


DASHBOARD_VIEWS = (
    "dashboard_submissions_per_minute",
    "dashboard_parked_by_reason",
    "dashboard_item_buckets",
    "dashboard_presence",
)


async def test_a_dashboards_login_reads_the_dashboard_views_and_no_table_neither_votes_nor_token_hashes(pg_dsn):
    login = f"t_grafana_{uuid.uuid4().hex[:8]}"
    owner = await connect(pg_dsn)
    ledger = await connect(pg_dsn, LEDGER_ROLE)
    head = await append(
        ledger, [log_row(small_meeting()), log_row(register_event()), log_row(cast("R-1", {"2": "for"}))]
    )
    await ledger.close()
    projector = await connect(pg_dsn, PROJECTOR_ROLE)
    async with projector.transaction():
        await tally_store.lock(projector)
        await tally_store.save_checkpoint(projector, PROJECTION, head)
    await rebuild(projector, "m1")  # the tally tables hold the meeting: the views have rows to show
    await projector.close()
    # What the README and deploy/grafana/provisioning/datasources.yaml tell operators, minus the password.
    await owner.execute(f'CREATE ROLE "{login}" LOGIN')
    await owner.execute(f'GRANT vote_ledger_dashboards TO "{login}"')
    grafana = await connect(pg_dsn)
    try:
        await grafana.execute(f'SET SESSION AUTHORIZATION "{login}"')  # as if it had logged in
        # The views read their tables with their owner's rights: SELECT on the views is enough.
        counted = await grafana.fetchval(
            "SELECT sum(rows) FROM dashboard_submissions_per_minute WHERE meeting_id = 'm1'"
        )
        assert counted == head
        assert await grafana.fetchval("SELECT shares_present FROM dashboard_presence WHERE meeting_id = 'm1'") == 3000
        for view in DASHBOARD_VIEWS:
            await grafana.fetch(f"SELECT * FROM {view}")
        tables = (*EVERY_TABLE, "schema_migrations")
        for table in tables:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await grafana.fetch(f"SELECT 1 FROM {table} LIMIT 1")
        for role in ROLES:  # nor may it become a service role with more rights
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await grafana.execute(f'SET ROLE "{role}"')
    finally:
        await grafana.close()
        await owner.execute(f'DROP ROLE "{login}"')
        await owner.close()

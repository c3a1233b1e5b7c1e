"""The replicated stack's PostgreSQL: a primary and a hot standby streaming from it synchronously.

Each pair is the tests' own (tests/pg_pair.py: own home under /tmp, free ports, always stopped).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from services.devtools.stack import postgres_standby
from services.devtools.stack.common import StackError
from services.local_stack import LOOPBACK
from tests.pg_pair import db_migrate, primary_dsns, running_pair, say


@pytest.fixture(scope="module")
def pair():
    """A primary + standby for this module's tests (the promotion test makes its own)."""
    with running_pair("vl-pair-test-") as cfg:
        yield cfg


async def _rows_on(dsn: str, query: str, timeout: float = 10.0) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def _until_replayed(dsn: str, query: str, want: int, timeout: float = 10.0) -> int:
    """synchronous_commit = on waits for the standby's flush, not its replay: poll until the rows show."""
    deadline = time.monotonic() + timeout
    while True:
        count = (await _rows_on(dsn, query))[0][0]
        if count >= want or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


async def test_the_standby_streams_synchronously_through_its_slot(pair):
    state = postgres_standby.wait_streaming(pair, say)
    assert state["state"] == "streaming"
    assert state["sync_state"] == "sync"
    admin = primary_dsns(pair).pg_admin_dsn
    slots = await _rows_on(
        admin.replace("/vote_ledger", "/postgres"), "SELECT slot_name, active FROM pg_replication_slots"
    )
    assert [(r["slot_name"], r["active"]) for r in slots] == [(postgres_standby.SLOT, True)]
    assert postgres_standby.status(pair)["role"] == "standby"


async def test_what_the_primary_commits_is_on_the_standby_after_migrations(pair):
    primary = primary_dsns(pair)
    db_migrate(primary.pg_dsn)  # as the owner login, as an operator does
    standby = postgres_standby.standby_dsns(pair)
    conn = await asyncpg.connect(primary.pg_dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS pair_probe (n int PRIMARY KEY)")
        await conn.executemany("INSERT INTO pair_probe VALUES ($1) ON CONFLICT DO NOTHING", [(n,) for n in range(500)])
    finally:
        await conn.close()
    assert await _until_replayed(standby.pg_dsn, "SELECT count(*) FROM pair_probe", 500) == 500
    migrations = "SELECT count(*) FROM schema_migrations"
    assert (await _rows_on(standby.pg_dsn, migrations))[0][0] == (await _rows_on(primary.pg_dsn, migrations))[0][0]
    assert postgres_standby.replay_lag_bytes(pair) is not None


async def test_the_standby_refuses_writes_and_is_in_recovery(pair):
    standby = postgres_standby.standby_dsns(pair)
    conn = await asyncpg.connect(standby.pg_dsn)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("CREATE TABLE refused (n int)")
    finally:
        await conn.close()


def test_promote_is_refused_while_the_primary_runs(pair):
    # Two primaries would follow: services on the old one would wait for good for a standby that left it.
    with pytest.raises(StackError, match="stop the primary first") as refused:
        postgres_standby.promote(pair, say)
    assert "\n" not in str(refused.value) and f"-D {pair.pg_data} -m fast stop" in str(refused.value)
    assert postgres_standby.is_standby(pair)
    assert postgres_standby.wait_streaming(pair, say)["sync_state"] == "sync"


async def test_the_replication_login_streams_but_cannot_connect_to_the_ledgers_database(pair):
    from services.devtools.stack import postgres

    password = postgres.passwords(pair)[postgres.REPLICATOR]
    # It holds REPLICATION only; the database grants CONNECT to our logins and group roles, not to PUBLIC.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT"):
        await asyncpg.connect(
            host=LOOPBACK, port=pair.pg_port, user=postgres.REPLICATOR, password=password, database="vote_ledger"
        )


async def test_writes_wait_while_the_standby_is_down_and_go_on_when_it_is_back(pair):
    admin = primary_dsns(pair).pg_admin_dsn
    setup = await asyncpg.connect(admin)
    try:
        await setup.execute("CREATE TABLE IF NOT EXISTS waits (n int)")
    finally:
        await setup.close()
    postgres_standby.stop_standby(pair, say)
    conn = await asyncpg.connect(admin)
    try:
        write = asyncio.create_task(conn.execute("INSERT INTO waits VALUES (1)"))
        await asyncio.sleep(3)
        assert not write.done(), "a commit returned with the synchronous standby down"
        began = time.monotonic()
        postgres_standby.start_standby(pair, say)
        await asyncio.wait_for(write, 60)
        print(f"the waiting commit returned {time.monotonic() - began:.1f} s after the standby was started")
    finally:
        if not write.done():
            write.cancel()
        await conn.close()
    assert postgres_standby.wait_streaming(pair, say)["sync_state"] == "sync"


async def test_the_primary_goes_on_alone_when_the_operator_names_no_synchronous_standby(pair):
    admin = primary_dsns(pair).pg_admin_dsn
    postgres_standby.stop_standby(pair, say)
    conn = await asyncpg.connect(admin)
    try:
        # README, Operating: what an operator runs to write without the standby.
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        await conn.execute("SELECT pg_reload_conf()")
        await asyncio.sleep(0.5)  # the reload reaches the backends at their next command
        await asyncio.wait_for(
            conn.execute("CREATE TABLE IF NOT EXISTS alone (n int); INSERT INTO alone VALUES (1)"), 10
        )
        await conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    postgres_standby.start_standby(pair, say)
    state = postgres_standby.wait_streaming(pair, say)
    deadline = time.monotonic() + 30
    while state["sync_state"] != "sync" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = postgres_standby.replication_state(pair) or state
    assert state["sync_state"] == "sync"


async def test_the_promoted_standby_has_every_committed_row_and_accepts_writes():
    with running_pair("vl-pair-promote-") as cfg:
        admin = primary_dsns(cfg).pg_admin_dsn
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute("CREATE TABLE acked (n int PRIMARY KEY)")
            for n in range(200):  # each commit acknowledged one by one, as the ledger's are
                await conn.execute("INSERT INTO acked VALUES ($1)", n)
        finally:
            await conn.close()
        postgres_standby.stop_primary(cfg, say, mode="immediate")
        began = time.monotonic()
        postgres_standby.promote(cfg, say)
        print(f"promoted in {time.monotonic() - began:.2f} s")
        new_admin = postgres_standby.standby_dsns(cfg).pg_admin_dsn
        conn = await asyncpg.connect(new_admin)
        try:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
            assert await conn.fetchval("SELECT count(*) FROM acked") == 200
            # Alone: no standby of its own is named, so a commit waits for no one.
            await asyncio.wait_for(conn.execute("INSERT INTO acked VALUES (200)"), 10)
        finally:
            await conn.close()
        assert postgres_standby.status(cfg)["role"] == "primary (promoted)"
        with pytest.raises(StackError, match="run `vote-ledger stack promote` to start the promoted server"):
            postgres_standby.up(cfg, say)
        # `stack down`, then `stack promote` again: it starts the promoted server, the only good copy of the log.
        postgres_standby.down(cfg, say)
        assert postgres_standby.standby_pid(cfg) is None
        postgres_standby.promote(cfg, say)
        conn = await asyncpg.connect(new_admin)
        try:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
            assert await conn.fetchval("SELECT count(*) FROM acked") == 201
        finally:
            await conn.close()
        assert postgres_standby.status(cfg)["running"] is True

"""Migration 010 on a log that already has rows: the v1 rows keep verifying, new rows chain on in v2,
and messages parked before it are reported as not covered, never as verified."""

import asyncpg
import pytest

from projections.chain import GENESIS, canonical, link
from projections.log_row import ParkedMessage
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.migrate import migrate, migration_files, temporary_database
from services.read.verify import verify_meeting
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import append, log_row

pytestmark = pytest.mark.integration


@pytest.fixture
async def before_010(logins):
    """A database migrated up to 009, holding three v1 rows and one unchained parked message."""
    async with temporary_database(logins.pg_dsn, "t_", migrated=False) as dsn:
        conn = await asyncpg.connect(dsn)
        await conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migration_files():
            if version < "010":
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        prev_position, prev_hash = None, GENESIS
        for position, event in enumerate([small_meeting(), register_event(), cast("R-1", {"2": "for"})], start=1):
            row = log_row(event)
            prev_hash = link(
                prev_hash,
                canonical(
                    position,
                    prev_position,
                    row.meeting_id,
                    row.event_id,
                    row.type,
                    row.decision,
                    row.reason,
                    row.payload,
                ),
            )
            # As the ledger appended before 010: recorded_at by the column's default, outside the hash.
            await conn.execute(
                "INSERT INTO ledger_log (position, prev_position, meeting_id, event_id, type, control_number,"
                " channel, executed_at, received_at, decision, reason, payload, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                position,
                prev_position,
                row.meeting_id,
                row.event_id,
                row.type,
                row.control_number,
                row.channel,
                row.executed_at,
                row.received_at,
                row.decision,
                row.reason,
                row.payload,
                prev_hash,
            )
            prev_position = position
        await conn.execute(
            "INSERT INTO ledger_parked (source_topic, source_partition, source_offset, value,"
            " reason, detail) VALUES ('votes.submissions', 0, 3, 'x', 'undecodable', 'old')"
        )
        yield conn
        await conn.close()


async def test_v1_rows_keep_verifying_after_010_and_new_rows_continue_their_chain_in_the_latest_version(before_010):
    conn = before_010
    assert await migrate(conn) == [v for v, _ in migration_files() if v >= "010"]
    await append(conn, [log_row(cast("R-2", {"2": "against"})), log_row(cast("B-1", {"2": "for"}, channel="broker"))])
    await log_append.park(conn, [ParkedMessage("votes.submissions", 1, 9, None, b"\xff", "undecodable", "new")])
    assert [r["chain_version"] for r in await conn.fetch("SELECT chain_version FROM ledger_log ORDER BY position")] == [
        1,
        1,
        1,
        3,
        3,
    ]
    result = await verify_meeting(conn, "m1")
    assert result.ok, result.as_dict()
    assert (result.rows, result.v1_rows) == (5, 3)
    assert (result.parked.rows, result.parked.legacy) == (1, 1)


async def test_a_v1_rows_recorded_at_is_not_covered_but_a_v2_rows_is(before_010):
    conn = before_010
    await migrate(conn)
    await append(conn, [log_row(cast("R-2", {"2": "against"}))])
    await conn.execute("SET session_replication_role = replica")
    edit = "UPDATE ledger_log SET recorded_at = recorded_at - interval '1 day' WHERE position = 3"
    with pytest.raises(asyncpg.CheckViolationError):  # an updated row is re-checked: it would have to be v3
        await conn.execute(edit)
    await conn.execute("ALTER TABLE ledger_log DROP CONSTRAINT ledger_log_new_rows_chain_v3")  # a superuser can
    await conn.execute(edit)
    assert (await verify_meeting(conn, "m1")).ok  # the documented limit of rows logged before 010
    await conn.execute("UPDATE ledger_log SET recorded_at = recorded_at - interval '1 day' WHERE position = 4")
    assert (await verify_meeting(conn, "m1")).chain_break.position == 4


async def test_after_010_no_row_can_be_appended_under_v1_or_without_its_own_recorded_at(before_010):
    conn = before_010
    await migrate(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO ledger_log (position, meeting_id, event_id, type, decision, payload, hash,"
            " recorded_at, chain_version) VALUES (4, 'm1', 'e', 'vote.cast', 'accepted', '{}', $1,"
            " now(), 1)",
            bytes(32),
        )
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute(
            "INSERT INTO ledger_log (position, meeting_id, event_id, type, decision, payload, hash)"
            " VALUES (4, 'm1', 'e', 'vote.cast', 'accepted', '{}', $1)",
            bytes(32),
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO ledger_parked (source_topic, source_partition, source_offset, reason, detail,"
            " parked_at) VALUES ('t', 0, 1, 'undecodable', 'no hash', now())"
        )

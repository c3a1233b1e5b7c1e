"""The append-only log in a real PostgreSQL: guards, uniqueness, gapless commit-ordered positions."""

import asyncio
import random

import asyncpg
import pytest

from projections.log_row import LogRow
from services.adapters.postgres.connect import LEDGER_ROLE, READER_ROLE, connect
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.log import reads as log_reads

pytestmark = pytest.mark.integration


def row(event_id: str, meeting_id: str = "m1") -> LogRow:
    return LogRow(
        meeting_id=meeting_id,
        event_id=event_id,
        type="vote.cast",
        control_number="C-1",
        channel="internet",
        executed_at=None,
        received_at=None,
        decision="rejected",
        reason="not_entitled",
        payload='{"type": "vote.cast"}',
    )


async def append(conn, rows):
    async with conn.transaction():
        await log_append.lock_log(conn)
        return await log_append.append(conn, rows)


async def test_the_log_refuses_update_delete_and_truncate_even_for_its_owner(pg_dsn):
    conn = await connect(pg_dsn)  # the superuser that owns the table
    try:
        await append(conn, [row("a"), row("b")])
        for sql in (
            "UPDATE ledger_log SET reason = 'x'",
            "DELETE FROM ledger_log WHERE position = 1",
            "TRUNCATE ledger_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM ledger_log") == 2
    finally:
        await conn.close()


@pytest.mark.parametrize("role", [LEDGER_ROLE, READER_ROLE])
async def test_service_roles_are_refused_changes_to_the_log_by_privileges(pg_dsn, role):
    owner = await connect(pg_dsn)
    await append(owner, [row("a")])
    await owner.close()
    conn = await connect(pg_dsn, role)
    try:
        for sql in ("UPDATE ledger_log SET reason = 'x'", "DELETE FROM ledger_log", "TRUNCATE ledger_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_the_reader_role_cannot_append_and_the_ledger_role_can(pg_dsn):
    reader = await connect(pg_dsn, READER_ROLE)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await append(reader, [row("a")])
    await reader.close()
    ledger = await connect(pg_dsn, LEDGER_ROLE)
    assert await append(ledger, [row("a")]) == 1
    await ledger.close()


async def test_the_database_refuses_a_second_accepted_row_with_the_same_event_id_in_a_meeting(pg_dsn):
    accepted = row("same")
    accepted.decision, accepted.reason = "accepted", None
    conn = await connect(pg_dsn)
    try:
        await append(conn, [accepted])
        with pytest.raises(asyncpg.UniqueViolationError, match="ledger_log_applied_meeting_event_id_key"):
            await append(conn, [accepted])
        rejected = row("same")  # R18 is about applying: a rejected row under the id is evidence, allowed
        rejected.decision, rejected.reason = "rejected", "duplicate_event_id"
        await append(conn, [rejected])
        # R18 is per meeting (015_event_ids_per_meeting.sql): the id applies once in another meeting too.
        elsewhere = row("same", meeting_id="m2")
        elsewhere.decision, elsewhere.reason = "accepted", None
        await append(conn, [elsewhere])
        with pytest.raises(asyncpg.UniqueViolationError, match="ledger_log_applied_meeting_event_id_key"):
            await append(conn, [elsewhere])
    finally:
        await conn.close()


async def test_a_rejection_without_a_reason_is_refused_by_a_constraint(pg_dsn):
    conn = await connect(pg_dsn)
    bad = row("r")
    bad.reason = None
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="reason_iff_rejected"):
            await append(conn, [bad])
    finally:
        await conn.close()


async def test_concurrent_writers_never_make_a_tailing_reader_skip_a_position(pg_dsn):
    writers, transactions, rows_per_tx = 6, 40, 5
    total = writers * transactions * rows_per_tx
    done = asyncio.Event()

    async def writer(n: int) -> None:
        conn = await connect(pg_dsn, LEDGER_ROLE)
        rnd = random.Random(n)
        try:
            for t in range(transactions):
                async with conn.transaction():
                    await log_append.lock_log(conn)
                    await log_append.append(conn, [row(f"w{n}-{t}-{i}") for i in range(rows_per_tx)])
                    # Hold the transaction open a little: a reader polling now must not see later
                    # positions committed by others before this one.
                    await asyncio.sleep(rnd.random() * 0.004)
        finally:
            await conn.close()

    async def reader() -> list[int]:
        conn = await connect(pg_dsn, READER_ROLE)
        seen: list[int] = []
        try:
            while len(seen) < total:
                rows = await log_reads.read_after(conn, seen[-1] if seen else 0, 1000)
                for r in rows:
                    # Every row read must be the next position: a gap would be a skipped row.
                    assert r["position"] == (seen[-1] if seen else 0) + 1, "the reader skipped a position"
                    seen.append(r["position"])
                if not rows:
                    if done.is_set() and len(seen) < total:
                        raise AssertionError(f"rows missing: saw {len(seen)} of {total}")
                    await asyncio.sleep(0)
        finally:
            await conn.close()
        return seen

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(writers)))
    done.set()
    seen = await asyncio.wait_for(read, timeout=60)
    assert seen == list(range(1, total + 1))

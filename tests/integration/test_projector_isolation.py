"""One meeting cannot break another: a meeting whose rows cannot be projected is isolated (issue 9).

The overflowing rows are appended as the database owner, bypassing the ledger's judge (which now
refuses them, tests/unit/test_bounds.py), as a log written before the bounds existed would hold.
"""

import logging
import os
import subprocess
from urllib.parse import urlsplit

import asyncpg
import pytest

from events import Position
from services.adapters.postgres.connect import READER_ROLE, connect, on_database
from services.adapters.postgres.log import append as log_append
from services.read.errors import MeetingNotProjected
from services.read.status import database_status
from services.read.tallies import read_tally
from services.runtime.rebuild import rebuild
from tests import reference_count
from tests.conftest import settings_env
from tests.e2e.conftest import cli
from tests.factories import POSITIONS, cast, register_event, small_meeting
from tests.integration.helpers import log_row, running_projector, wait_for

pytestmark = pytest.mark.integration

CHECKPOINT = "SELECT position FROM projection_checkpoints"
FAILURES = "SELECT meeting_id, position, error FROM projection_failures ORDER BY meeting_id"


async def append(dsn: str, *events) -> int:
    """Append accepted rows as the database owner (no judge): return the new head."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await log_append.lock_log(conn)
            return await log_append.append(conn, [log_row(e) for e in events])
    finally:
        await conn.close()


@pytest.fixture
def services(logins, pg_dsn):
    """The services' own logins on this test's database (no Kafka needed: rows are appended directly)."""
    return on_database(logins, urlsplit(pg_dsn).path.lstrip("/"))


async def fetch(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def overflowing_meeting():
    """The issue's meeting: a position of 2^63 shares (one more than a bigint holds) and one vote for it."""
    spec = small_meeting(meeting_id="big", event_id="meeting-big")
    register = register_event(
        [Position(control_number="H-1", kind="registered", shares=2**63, holders=["Hugo"])], meeting_id="big"
    )
    return spec, register, cast("H-1", {"2": "for"}, meeting_id="big", event_id="big-vote-1")


def healthy(control_number: str, choice: str, hours: float, **fields):
    return cast(control_number, {"2": choice}, executed=hours, **fields)


async def test_a_meeting_overflowing_bigint_is_reported_and_skipped_while_the_other_meeting_keeps_moving(
    pg_dsn, services, caplog
):
    spec, register, poison = overflowing_meeting()
    first = [healthy("R-1", "for", 1), healthy("B-1", "against", 1, channel="broker")]
    later = [healthy("R-2", "for", 2), healthy("R-1", "against", 3)]
    await append(pg_dsn, small_meeting(), register_event(), spec, register, *first)
    caplog.set_level(logging.ERROR, logger="vote_ledger.projector")
    async with running_projector(services):
        await wait_for(pg_dsn, CHECKPOINT, 6)
        poisoned_at = await append(pg_dsn, poison, *later)  # the vote first: same batch as m1's votes
        await wait_for(pg_dsn, CHECKPOINT, poisoned_at)
        assert await fetch(pg_dsn, "SELECT meeting_id, position FROM projection_failures") == [("big", 7)]
        # Later rows of the failed meeting are skipped; the healthy meeting goes on.
        more = [healthy("B-2", "for", 4, channel="broker")]
        head = await append(pg_dsn, cast("H-1", {"2": "against"}, meeting_id="big", executed=5), *more)
        await wait_for(pg_dsn, CHECKPOINT, head)

    [(meeting_id, position, error)] = await fetch(pg_dsn, FAILURES)
    assert (meeting_id, position) == ("big", 7) and "int64" in error
    assert any(
        "meeting big failed at log position 7" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
    )
    reader = await connect(pg_dsn, READER_ROLE)
    try:
        status = await database_status(reader)
        tally = await read_tally(reader, "m1")
        # Its stale rows are never served as its tally (nor, through the same read, as a report).
        with pytest.raises(MeetingNotProjected, match="'big' is not projected from log position 7"):
            await read_tally(reader, "big")
    finally:
        await reader.close()
    # The CLI turns the read side's error into its one line, word for word as before.
    line = (
        "vote-ledger: meeting 'big' is not projected from log position 7 on (see `vote-ledger status`): its tally"
        " would be stale; fix the cause, then `vote-ledger projections rebuild --meeting big`, or count from the"
        " log itself with `vote-ledger tally --as-of`\n"
    )
    for command in (["tally", "--meeting", "big"], ["report", "final", "--meeting", "big"]):
        env = {**os.environ, **settings_env(services)}
        done = subprocess.run([*cli(), *command], env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", line)
    assert status["projector_lag"] == 0
    assert [(f["meeting_id"], f["position"]) for f in status["failed_meetings"]] == [("big", 7)]
    expected = reference_count.count(small_meeting(), {p.control_number: p for p in POSITIONS}, first + later + more)
    assert tally["quorum"]["present"] == expected["present"] == 10_000
    assert {k: v for k, v in tally["items"]["2"].items() if k in expected["items"]["2"]} == expected["items"]["2"]
    # The failed meeting's tally stays as of the rows before the failure (its register, no votes).
    assert await fetch(pg_dsn, "SELECT present, as_of_position FROM tally_meetings WHERE meeting_id = 'big'") == [
        (0, 4)
    ]


async def test_a_restarted_projector_keeps_skipping_the_failed_meeting_and_a_rebuild_that_still_fails_keeps_it_failed(
    pg_dsn, services
):
    spec, register, poison = overflowing_meeting()
    head = await append(pg_dsn, small_meeting(), register_event(), spec, register, poison, healthy("R-1", "for", 1))
    async with running_projector(services):
        await wait_for(pg_dsn, CHECKPOINT, head)
    async with running_projector(services) as projector:
        assert projector.failed == {"big": 3} and "big" not in projector.projection.tallies
        head = await append(pg_dsn, healthy("R-2", "against", 2))
        await wait_for(pg_dsn, CHECKPOINT, head)
        conn = await connect(pg_dsn, "vote_ledger_projector")
        with pytest.raises(asyncpg.DataError, match="int64"):
            await rebuild(conn, "big")  # the data still cannot be stored: nothing is swapped in
        await conn.close()
    assert await fetch(pg_dsn, "SELECT meeting_id, position FROM projection_failures") == [("big", 3)]
    assert await fetch(pg_dsn, "SELECT present FROM tally_meetings WHERE meeting_id = 'm1'") == [(4000,)]


async def test_after_a_fix_a_rebuild_clears_the_failure_and_the_running_projector_follows_the_meeting_again(
    pg_dsn, services
):
    # A failure an operator can fix: a limit the database enforces on the meeting's rows (here a
    # check constraint the owner added, as a bad migration might), removed by the owner.
    owner = await asyncpg.connect(pg_dsn)
    await owner.execute("ALTER TABLE tally_meetings ADD CONSTRAINT small_meetings CHECK (present < 5000)")
    head = await append(
        pg_dsn,
        small_meeting(),
        register_event(),
        small_meeting(meeting_id="m2", event_id="meeting-2"),
        register_event(meeting_id="m2"),
        healthy("R-1", "for", 1),
        healthy("R-1", "for", 1, meeting_id="m2"),
    )
    try:
        async with running_projector(services) as projector:
            await wait_for(pg_dsn, CHECKPOINT, head)
            head = await append(pg_dsn, healthy("B-2", "for", 2), healthy("R-2", "against", 2, meeting_id="m2"))
            await wait_for(pg_dsn, CHECKPOINT, head)
            assert await fetch(pg_dsn, "SELECT meeting_id, position FROM projection_failures") == [("m1", 7)]
            assert await fetch(pg_dsn, "SELECT present FROM tally_meetings WHERE meeting_id = 'm2'") == [(4000,)]
            await owner.execute("ALTER TABLE tally_meetings DROP CONSTRAINT small_meetings")  # the fix
            conn = await connect(pg_dsn, "vote_ledger_projector")
            assert await rebuild(conn, "m1") == 4  # its rows up to the checkpoint, skipped ones included
            await conn.close()
            assert await fetch(pg_dsn, FAILURES) == []
            head = await append(pg_dsn, healthy("R-2", "for", 3))
            await wait_for(pg_dsn, CHECKPOINT, head)
            await wait_for(pg_dsn, "SELECT present FROM tally_meetings WHERE meeting_id = 'm1'", 8000)
            assert projector.failed == {}
    finally:
        await owner.close()
    present = await fetch(pg_dsn, "SELECT meeting_id, present, as_of_position FROM tally_meetings ORDER BY 1")
    assert present == [("m1", 8000, head), ("m2", 4000, 8)]


async def test_a_lost_connection_is_retried_not_blamed_on_a_meeting(pg_dsn, services):
    head = await append(pg_dsn, small_meeting(), register_event(), healthy("R-1", "for", 1))
    owner = await asyncpg.connect(pg_dsn)
    try:
        async with running_projector(services) as projector:
            await wait_for(pg_dsn, CHECKPOINT, head)
            # What a PostgreSQL restart or a network cut does to the projector's session.
            assert await owner.fetchval("SELECT pg_terminate_backend($1)", projector.conn.get_server_pid())
            head = await append(pg_dsn, healthy("R-2", "against", 2))
            await wait_for(pg_dsn, CHECKPOINT, head)
            assert projector.leader and projector.failed == {}
    finally:
        await owner.close()
    assert await fetch(pg_dsn, FAILURES) == []
    assert await fetch(pg_dsn, "SELECT present FROM tally_meetings WHERE meeting_id = 'm1'") == [(4000,)]

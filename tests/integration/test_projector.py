"""The projector on a real log: follows appends, matches an independent count, rebuilds exactly."""

import asyncio

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish
from services.read.tallies import read_tally
from services.runtime.projector import Projector
from services.runtime.rebuild import rebuild
from tests import reference_count
from tests.factories import POSITIONS, cast, register_event, revoke, small_meeting
from tests.integration.helpers import run_projector, running_ledger, snapshot, wait_for

pytestmark = pytest.mark.integration

VOTES = [
    cast("R-1", {"2": "for"}, executed=50, received=50),
    cast("R-1", {"2": "against"}, executed=10, received=60, channel="mail", signatures=["Alice"]),  # R5: older
    cast("R-2", {"1.1": "against"}, executed=5, channel="phone"),
    revoke("R-2", executed=6),
    cast("R-2", {"3": "against"}, executed=7, channel="phone"),  # R7: counts again after revocation
    cast("B-1", {"2": {"for": 1200, "against": 800}, "3": "for"}, channel="broker"),
    cast("B-2", {"2": "for"}, channel="broker", discretionary=True),
    cast("X-1", {"2": "for"}),  # rejected: not entitled
]


async def test_the_projected_tally_equals_an_independent_count_and_a_rebuild_leaves_the_same_tables(settings):
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + VOTES)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(VOTES))
    await run_projector(settings, 2 + len(VOTES))

    conn = await asyncpg.connect(settings.pg_dsn)
    report = await read_tally(conn, "m1")
    expected = reference_count.count(small_meeting(), {p.control_number: p for p in POSITIONS}, VOTES[:-1])
    assert report["quorum"]["present"] == expected["present"] == 3000 + 1000 + 2000 + 4000
    for item_id, columns in expected["items"].items():
        got = {k: v for k, v in report["items"][item_id].items() if k not in ("outcome", "margin", "not_voted") and v}
        assert got == columns, item_id
    # R-1 internet (R5), R-2 unmarked so per the board (R9), B-1 split, B-2 discretionary (R10).
    assert report["items"]["2"]["for"] == 3000 + 1000 + 1200 + 4000

    before = await snapshot(settings.pg_dsn)
    replayed = await rebuild(conn, "m1")
    await conn.close()
    assert replayed == 2 + len(VOTES)
    assert await snapshot(settings.pg_dsn) == before


async def test_a_restarted_projector_resumes_at_its_checkpoint_with_the_same_result(settings):
    first, second = VOTES[:4], VOTES[4:]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + first)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(first))
        await run_projector(settings, 2 + len(first))
        await publish(client, settings, second)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(VOTES))
    await run_projector(settings, 2 + len(VOTES))
    incremental = await snapshot(settings.pg_dsn)
    conn = await asyncpg.connect(settings.pg_dsn)
    await rebuild(conn, "m1")
    await conn.close()
    assert await snapshot(settings.pg_dsn) == incremental


async def test_a_rebuild_while_the_projector_runs_is_not_overwritten_by_its_older_state(settings):
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + VOTES[:3])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5)
        projector = Projector(settings)
        await projector.start()
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))
        try:
            await wait_for(settings.pg_dsn, "SELECT position FROM projection_checkpoints", 5)
            # Corrupt the live projector's memory, as a bug fixed by a rebuild would have.
            projector.projection.tallies["m1"].present += 1
            conn = await asyncpg.connect(settings.pg_dsn)
            await rebuild(conn, "m1")
            await conn.close()
            await publish(client, settings, VOTES[3:])
            await wait_for(settings.pg_dsn, "SELECT position FROM projection_checkpoints", 2 + len(VOTES))
        finally:
            stop.set()
            await task
            await projector.stop()
    live = await snapshot(settings.pg_dsn)
    conn = await asyncpg.connect(settings.pg_dsn)
    await rebuild(conn, "m1")
    await conn.close()
    assert await snapshot(settings.pg_dsn) == live


async def test_r12_a_ballot_logged_before_a_late_poll_closure_does_not_count_live_or_rebuilt(settings):
    from events import PollsClosed
    from tests.factories import at

    before = cast("R-1", {"2": "for"}, executed=30, channel="internet")
    late = cast("R-1", {"2": "against"}, executed=24 * 30 + 1, channel="in_person")  # after the close
    closure = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(24 * 30 + 0.5))
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event(), before, late])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
        await run_projector(settings, 4)  # the late ballot counts until the closure is logged
        await publish(client, settings, [closure])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5)
    await run_projector(settings, 5)
    conn = await asyncpg.connect(settings.pg_dsn)
    report = await read_tally(conn, "m1")
    assert (report["items"]["2"]["for"], report["items"]["2"]["against"]) == (3000, 0)
    live = await snapshot(settings.pg_dsn)
    await rebuild(conn, "m1")
    await conn.close()
    assert await snapshot(settings.pg_dsn) == live

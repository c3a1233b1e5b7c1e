"""A batch the ledger cannot commit for good (a revoked privilege) holds the consumer: no later batch commits past it.

It used to sleep 5 s and return, neither acked nor rewound: an app not stopped within those 5 s read the next
batch, whose commit moved the stored offsets past the skipped one, which was then never logged.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish
from services.runtime import failures
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration

HEAD = "SELECT coalesce(max(position), 0) FROM ledger_log"
OLD_WAIT_S = 5.0  # how long a batch that gave up used to wait before returning


async def test_after_a_batch_gives_up_no_later_batch_commits_and_a_restart_logs_both(settings):
    owner = await asyncpg.connect(settings.pg_dsn)
    failures._gave_up = None
    try:
        async with running_ledger(settings):
            async with producer(settings, "admin") as admin:
                await publish(admin, settings, [small_meeting(), register_event()])
            await wait_for(settings.pg_dsn, HEAD, 2)
            await owner.execute("REVOKE INSERT ON ledger_log FROM vote_ledger_ledger")
            async with producer(settings) as channel:
                await publish(channel, settings, [cast("R-1", {"2": "for"}, event_id="skipped")])
                for _ in range(200):  # the batch fails: a refused privilege, which retrying cannot fix
                    if failures._gave_up is not None and failures._gave_up[0].is_set():
                        break
                    await asyncio.sleep(0.1)
                assert failures._gave_up is not None and "refused a privilege" in failures._gave_up[1][0]
                # Nothing here stops the app (no `services run`): the case the 5 s wait did not cover.
                await owner.execute("GRANT INSERT ON ledger_log TO vote_ledger_ledger")
                await publish(channel, settings, [cast("R-1", {"2": "against"}, event_id="later")])
                await asyncio.sleep(OLD_WAIT_S + 3)
            assert await owner.fetchval(HEAD) == 2  # the later batch did not commit past the one that gave up
        failures._gave_up = None
        async with running_ledger(settings):  # restarted: from the stored offsets, both are logged
            await wait_for(settings.pg_dsn, HEAD, 4)
        logged = await owner.fetch("SELECT event_id FROM ledger_log WHERE position > 2")
        assert {row["event_id"] for row in logged} == {"skipped", "later"}
    finally:
        failures._gave_up = None
        await owner.execute("GRANT INSERT ON ledger_log TO vote_ledger_ledger")
        await owner.close()

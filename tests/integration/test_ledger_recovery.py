"""After `kill -9` the ledger consumes again within seconds: measured here, reported in the README."""

import asyncio
import os
import signal
import sys
import time

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish
from tests.conftest import settings_env
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration


async def start_ledger(settings, log, instance_id: str):
    """`vote-ledger services run ledger` as an operator runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "vote-ledger")
    env = {**os.environ, **settings_env(settings), "VOTE_LEDGER_INSTANCE_ID": instance_id}
    return await asyncio.create_subprocess_exec(script, "services", "run", "ledger", env=env, stdout=log, stderr=log)


@pytest.mark.parametrize("instance_id", ["ledger-a", ""], ids=["static membership", "dynamic membership"])
async def test_a_ledger_restarted_after_kill_9_logs_new_votes_within_seconds(settings, tmp_path, instance_id):
    log = open(tmp_path / "ledger.log", "ab")
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        ledger = await start_ledger(settings, log, instance_id)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2, timeout=60)
        await asyncio.sleep(1)  # a heartbeat or two: the member is settled in its group
        ledger.send_signal(signal.SIGKILL)
        await ledger.wait()
        killed = time.monotonic()
        ledger = await start_ledger(settings, log, instance_id)
        try:
            conn = await asyncpg.connect(settings.pg_dsn)
            sent = 0
            while await conn.fetchval("SELECT count(*) FROM ledger_log") == 2:
                assert time.monotonic() - killed < 60, "the restarted ledger consumed nothing within 60 s"
                await publish(client, settings, [cast("R-1", {"2": "for"}, executed=1 + sent / 1000)])
                sent += 1
                await asyncio.sleep(0.05)
            recovered = time.monotonic() - killed
            await conn.close()
        finally:
            ledger.send_signal(signal.SIGTERM)
            await ledger.wait()
    print(f"\nledger ({instance_id or 'dynamic'}) consuming again {recovered:.2f} s after kill -9 and restart")

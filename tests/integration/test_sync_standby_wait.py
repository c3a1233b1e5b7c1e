"""With the synchronous standby stopped, the ledger's commits wait for it: the ledger and `status` say so.

Before, nothing named the cause: /readyz stayed 200 for ~30 s, then said "records behind"; status showed
STALLED partitions; the stall watch probed for unreadable records and blamed no parsing. Uses a primary +
standby of its own (tests/pg_pair.py, always stopped) and the session's Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.adapters.kafka.topics import producer, publish
from services.adapters.postgres.connect import READER_ROLE, connect_as
from services.devtools.stack import postgres_standby
from services.observability.readiness import ledger_ready
from services.read.status import status
from tests.factories import register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for
from tests.pg_pair import own_database, running_pair, say

HEAD = "SELECT coalesce(max(position), 0) FROM ledger_log"
SAID = "commits wait for the synchronous standby (synchronous_standby_names = '"


async def on_own_database(settings, pair):
    """Settings on a fresh, migrated database of the pair's primary; quick stall checks."""
    return await own_database(settings, pair, "s_", stall_check_s=0.5, stall_after_s=2.0)


async def until(what, check, timeout: float = 20.0):
    """Poll an async check until it returns something true; fail naming ``what`` (and the last value)."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} not seen within {timeout} s (last: {value!r})")


async def test_with_the_standby_stopped_readiness_the_stall_watch_and_status_name_it_and_votes_log_once_it_is_back(
    settings, caplog
):
    caplog.set_level(logging.ERROR, logger="vote_ledger.stall_watch")
    with running_pair("vl-syncwait-") as pair:
        cfg = await on_own_database(settings, pair)
        await asyncio.to_thread(postgres_standby.stop_standby, pair, say)
        async with running_ledger(cfg) as ledger:
            async with producer(cfg, "admin") as admin:
                await publish(admin, cfg, [small_meeting(), register_event()])

            async def reason():
                ready = await ledger_ready(ledger, cfg, ledger.backlog)
                return not ready.ok and SAID in ready.reason and ready.reason

            assert "start it, or let the primary go on alone (README Failover)" in await until("readiness", reason)

            async def watch_said():
                return [r.getMessage() for r in caplog.records if SAID in r.getMessage()]

            said = await until("the stall watch's line", watch_said)
            assert "stalled at offset 0" in said[0]
            assert not [r for r in caplog.records if "probing it" in r.getMessage()]

            reader = await connect_as(cfg, READER_ROLE)
            try:
                report = await status(reader, cfg, with_registers=False)
            finally:
                await reader.close()
            assert report["commits_wait"].startswith(SAID)

            await asyncio.to_thread(postgres_standby.start_standby, pair, say)
            await wait_for(cfg.pg_dsn, HEAD, 2, timeout=30)
            assert (await ledger_ready(ledger, cfg, ledger.backlog)).reason == ""

"""PostgreSQL faults mid-ingest on a primary + synchronous hot standby (services/devtools/stack/postgres_standby.py).

The pair is this module's own (tests/pg_pair.py: own home under /tmp, free ports, always stopped); Kafka
and the topic prefix come from the shared `settings` fixture, with every PostgreSQL DSN replaced by the
pair's logins (made as `stack up` makes them) on a database of each case's own, migrated by `db migrate`
as the owner login. Cases:

- the primary stopped for 20 s mid-ingest and started again: the ledger and projector keep running,
  retry, and go on;
- the primary killed (immediate shutdown: no checkpoint, as a crash) mid-ingest and the standby promoted,
  the services stopped and started again with every DSN on the promoted server (README, Operating: the
  failover procedure): every row the old primary had acknowledged is on the new primary, unchanged, and
  `audit verify` passes against the chain heads already published on ledger.heads. Replication is
  synchronous, so no acknowledged commit can be missing; with asynchronous replication it could.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from services.devtools.stack import postgres_standby
from tests.faults.harness import (
    STALL_BOUND_S,
    fault_seed,
    load_meeting,
    progress,
    publish,
    published_past,
    record,
    settle,
    verify,
    wait_caught_up,
    workload,
)
from tests.pg_pair import on_pair, own_database, running_pair, say

pytestmark = pytest.mark.faults

SEED = 1420  # fixed, so `make test` replays the same stream; VOTE_LEDGER_FAULT_SEED overrides it
RATE = 150  # submissions per second while the fault happens
OUTAGE_S = 20.0  # the PostgreSQL stop
START_BOUND_S = 90.0  # the services up and the meeting logged before the fault (asserted in started_ingest)
# The fault itself at its slowest in a passing run: the 20 s stop and a start, or stopping both services (SIGTERM,
# then SIGKILL after 30 s each; measured 16 s) and promoting (0.6 s).
FAULT_BOUND_S = 90.0
# Enough that the fault lands mid-ingest and ids are published after it in the worst passing run (150/s for
# 302 s: start-up, 2 s of steady ingest, the fault, a recovery up to the stall bound); publishing halts then.
COUNT = int(RATE * (START_BOUND_S + 2 + FAULT_BOUND_S + STALL_BOUND_S))


@pytest.fixture(scope="module")
def pair():
    """This module's primary + standby; stopped at the end of the module, even on failure."""
    with running_pair("vl-pgfaults-") as cfg:
        yield cfg


@pytest.fixture
async def pair_settings(settings, pair):
    """A database of this case's own on the pair (owned by the owner login, hardened, `db migrate`d as the owner)."""
    return await own_database(settings, pair, "f_")


@pytest.fixture
def service_settings(pair_settings):
    """The services (conftest's `services` fixture) run on the pair's database."""
    return pair_settings


async def started_ingest(cfg, services, seed: int, count: int):
    """Start the ledger and projector, load the meeting, publish the workload at RATE; once ingest is
    under way (meeting logged, submissions projected), return the workload, the publisher and its halt."""
    work = workload(cfg, seed, count)
    services.start("ledger", instance_id="pgfaults-ledger-1")
    services.start("projector")
    await load_meeting(cfg)
    halt = asyncio.Event()
    publishing = asyncio.create_task(publish(cfg, work, rate=RATE, halt=halt))
    assert await wait_caught_up(cfg, work, START_BOUND_S, published=max(1, work.published)) is not None
    await asyncio.sleep(2)  # a moment of steady ingest, so the fault lands mid-stream
    assert not publishing.done(), "the workload ran out before the fault: not mid-ingest"
    return work, publishing, halt


async def recovered(cfg, work, publishing, timeout: float = STALL_BOUND_S) -> float | None:
    """Seconds from now (the fault over) until an id published after now, and every one before it, is projected.

    Once the publisher has finished, every id published; fails, rather than waiting for ever, if it crashed.
    """
    loop = asyncio.get_running_loop()
    began, mark = loop.time(), work.published
    await published_past(work, mark, publishing)  # the paced publisher sends again within a tick
    took = await wait_caught_up(cfg, work, timeout, published=work.published)
    return None if took is None else loop.time() - began


async def finish(cfg, work, publishing, halt) -> tuple[float, object]:
    """Stop the paced publisher, settle and verify (what was published: the workload is sized with room to spare)."""
    halt.set()
    await publishing
    settle_s = await settle(cfg, work, timeout=180)
    return settle_s, await verify(cfg, work)


async def test_postgresql_stopped_for_20_s_mid_ingest_and_started_again_loses_and_doubles_nothing(
    pair, pair_settings, services
):
    cfg = pair_settings
    seed = fault_seed(SEED)
    print(f"\npg-stop-20s: seed {seed} (rerun with VOTE_LEDGER_FAULT_SEED={seed})")
    work, publishing, halt = await started_ingest(cfg, services, seed, count=COUNT)
    stalled = 0
    try:
        before = await progress(cfg, work)
        await asyncio.to_thread(postgres_standby.stop_primary, pair, say, "fast")
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(postgres_standby.start_primary, pair, say)
        took = await recovered(cfg, work, publishing)
        if took is None:
            stalled += 1
            took = await recovered(cfg, work, publishing, 120)
            assert took is not None, "ingest never resumed after PostgreSQL came back"
            took += STALL_BOUND_S
        # They retried through the outage: neither exited (nothing restarted them here).
        assert services.running("ledger"), "the ledger exited during the PostgreSQL outage"
        assert services.running("projector"), "the projector exited during the PostgreSQL outage"
        print(
            f"  primary stopped for {OUTAGE_S:.0f} s at {before.logged} logged of {before.expected} published; "
            f"caught up {took:.2f} s after it was back"
        )
    finally:
        if not publishing.done():
            halt.set()
            await publishing
    settle_s, outcome = await finish(cfg, work, publishing, halt)
    assert postgres_standby.wait_streaming(pair, say)["sync_state"] == "sync"  # the pair is whole again
    record(
        "pg-stop-20s",
        faults=f"PostgreSQL primary stopped (fast) {OUTAGE_S:.0f} s mid-ingest, then started; services kept running",
        cases=1,
        lost=outcome.lost,
        doubled=outcome.doubled,
        stalled=stalled,
        recovery_s=took,
        seed=seed,
        events=outcome.published,
        notes=f"{RATE}/s; synchronous standby streaming throughout; settled {settle_s:.2f} s after the last publish",
    )
    assert stalled == 0


async def acknowledged_rows(dsn: str) -> dict[int, tuple[str, bytes]]:
    """Every row of the log (position: event id, chain hash) as this server has committed it."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT position, event_id, hash FROM ledger_log ORDER BY position")
    finally:
        await conn.close()
    return {r["position"]: (r["event_id"], bytes(r["hash"])) for r in rows}


async def answered_rows(settings) -> set[tuple[int, str, bytes]]:
    """Every log row an answer on votes.decisions reported (position, event id, hash): the relay answers only
    committed rows, so this is what the ledger told channels was committed, up to the kill included. A set,
    not keyed by position: an answer of the old primary and one of the new for the same position both count."""
    from events.answers import SubmissionDecided
    from tests.integration.test_answers import read_answers

    return {
        (a.position, a.event_id, bytes.fromhex(a.hash))
        for _, _, a in await read_answers(settings)
        if isinstance(a, SubmissionDecided)
    }


async def test_the_standby_promoted_after_the_primary_is_killed_mid_ingest_has_every_acknowledged_row(
    pair, pair_settings, services
):
    # Last in the module: the pair is one server afterwards.
    cfg = pair_settings
    seed = fault_seed(SEED + 1)
    print(f"\npg-failover: seed {seed} (rerun with VOTE_LEDGER_FAULT_SEED={seed})")
    work, publishing, halt = await started_ingest(cfg, services, seed, count=COUNT)
    stalled = 0
    try:
        # What the old primary had acknowledged, read just before it dies. Rows committed between this read and the
        # kill are not in it: the answers check below covers them (each answer names a committed row).
        acknowledged = await acknowledged_rows(cfg.pg_dsn)
        await asyncio.to_thread(postgres_standby.stop_primary, pair, say, "immediate")
        killed = time.monotonic()
        # The documented failover: stop the services, promote the standby, point every DSN at it, start them.
        for name in ("ledger", "projector"):  # both told at once, then each awaited (SIGKILL after 30 s)
            services.procs[name].send_signal(signal.SIGTERM)
        for name in ("ledger", "projector"):
            services.kill(name, signal.SIGTERM)
        stopped = time.monotonic() - killed
        promoted_in = time.monotonic()
        await asyncio.to_thread(postgres_standby.promote, pair, say)
        promoted_in = time.monotonic() - promoted_in
        database = cfg.pg_dsn.rsplit("/", 1)[-1]
        moved = on_pair(cfg, postgres_standby.standby_dsns(pair), database)
        services.settings = moved
        services.restart("ledger")
        services.restart("projector")
        repointed = time.monotonic() - killed
        took = await recovered(moved, work, publishing)
        if took is None:
            stalled += 1
            took = await recovered(moved, work, publishing, 120)
            assert took is not None, "ingest never resumed on the promoted standby"
            took += STALL_BOUND_S
        print(
            f"  primary killed with {len(acknowledged)} log rows acknowledged; promoted in {promoted_in:.2f} s, "
            f"services stopped in {stopped:.2f} s and repointed {repointed:.2f} s after the kill, "
            f"caught up {took:.2f} s after that"
        )
    finally:
        if not publishing.done():
            halt.set()
            await publishing
    on_new = await acknowledged_rows(moved.pg_dsn)
    missing = [p for p in acknowledged if p not in on_new]
    changed = [p for p, row in acknowledged.items() if p in on_new and on_new[p] != row]
    assert not missing, f"{len(missing)} acknowledged log rows are not on the promoted standby: {missing[:10]}"
    assert not changed, f"{len(changed)} acknowledged log rows differ on the promoted standby: {changed[:10]}"
    settle_s, outcome = await finish(moved, work, publishing, halt)  # audit verify: against ledger.heads too
    # Every row the ledger reported committed (answered), before the kill or after, is that row on the new primary.
    on_new = await acknowledged_rows(moved.pg_dsn)
    answered = await answered_rows(moved)
    not_there = sorted(p for p, event_id, hash_ in answered if on_new.get(p) != (event_id, hash_))
    assert not not_there, (
        f"{len(not_there)} answered log rows are missing or differ on the promoted standby: {not_there[:10]}"
    )
    record(
        "pg-failover",
        faults="PostgreSQL primary killed (immediate shutdown) mid-ingest; standby promoted, services repointed",
        cases=1,
        lost=outcome.lost + len(missing) + len(not_there),
        doubled=outcome.doubled,
        stalled=stalled,
        recovery_s=took,
        seed=seed,
        events=outcome.published,
        notes=f"{RATE}/s; {len(acknowledged)} rows read before the kill and the {len(answered)} rows answered on "
        "votes.decisions (before the kill and after) all on the promoted standby; "
        f"services stopped {stopped:.2f} s, promote {promoted_in:.2f} s, all repointed {repointed:.2f} s "
        "after the kill; "
        f"settled {settle_s:.2f} s after the last publish",
    )
    assert stalled == 0

"""Two projectors on one database: one writes, the other stands by; the checkpoint never regresses."""

import asyncio
import os
import random
import signal
import subprocess
import time

import asyncpg
import pytest

from projections.judge import Judge
from projections.replay import replay
from services.adapters.postgres import tally_store
from services.adapters.postgres.connect import PROJECTOR_ROLE, connect
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.tally_store import PROJECTION
from tests.conftest import free_port, settings_env
from tests.e2e.conftest import REPO, cli
from tests.factories import POSITIONS, cast, register_event, revoke, small_meeting
from tests.integration.helpers import log_row

pytestmark = pytest.mark.integration

CHECKPOINT = "SELECT coalesce(max(position), 0) FROM projection_checkpoints"


async def test_the_checkpoint_cannot_move_backwards_or_be_deleted_even_by_the_projector_role(pg_dsn):
    conn = await connect(pg_dsn, PROJECTOR_ROLE)
    try:
        await tally_store.save_checkpoint(conn, PROJECTION, 10)
        await tally_store.save_checkpoint(conn, PROJECTION, 10)  # the same position: a no-op, allowed
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="cannot move backwards from 10 to 9"):
            await tally_store.save_checkpoint(conn, PROJECTION, 9)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="cannot be deleted"):
            await conn.execute("DELETE FROM projection_checkpoints")
        await tally_store.bump_generation(conn, PROJECTION)  # what a rebuild does: allowed
        await tally_store.save_checkpoint(conn, PROJECTION, 11)
        assert await tally_store.checkpoint(conn, PROJECTION) == 11
        assert await tally_store.generation(conn, PROJECTION) == 1
    finally:
        await conn.close()


def random_votes(rng: random.Random, n: int, start: int) -> list:
    """Valid and invalid submissions over the small meeting's register (the judge decides each)."""
    numbers = [p.control_number for p in POSITIONS] + ["X-1"]
    out = []
    for i in range(n):
        number, hours = rng.choice(numbers), rng.uniform(1, 600)
        if rng.random() < 0.1:
            out.append(revoke(number, executed=hours, event_id=f"v{start + i}"))
            continue
        channel = "broker" if number.startswith("B") else rng.choice(["internet", "phone"])
        choice = rng.choice(["for", "against", "abstain"])
        out.append(
            cast(
                number,
                {"2": choice, "3": rng.choice(["for", "against"])},
                executed=hours,
                channel=channel,
                event_id=f"v{start + i}",
            )
        )
    return out


async def append_judged(conn, judge: Judge, events) -> tuple[int, list]:
    """Append events as the ledger would decide them; return the head and the accepted events."""
    rows, accepted = [], []
    for event in events:
        reason = judge.judge(event)
        rows.append(log_row(event, "accepted" if reason is None else "rejected", reason))
        if reason is None:
            accepted.append(event)
    async with conn.transaction():
        await log_append.lock_log(conn)
        head = await log_append.append(conn, rows)
    return head, accepted


def start_projector(settings, log_path):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [*cli(), "services", "run", "projector"],
        # Each its own /metrics port: two projectors on one host cannot share one.
        env={**os.environ, **settings_env(settings), "VOTE_LEDGER_PROJECTOR_METRICS_PORT": str(free_port())},
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def watch_checkpoint(dsn: str, seen: list[int], stop: asyncio.Event) -> None:
    """Read the checkpoint as fast as possible and keep every value seen."""
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            seen.append(await conn.fetchval(CHECKPOINT))
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def wait_for_line(logs, text: str, timeout: float = 60.0) -> int:
    """Wait until one of the logs holds a line with the text; return that log's index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, path in enumerate(logs):
            if path.exists() and text in path.read_text():
                return i
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log says {text!r}: {[p.read_text() for p in logs]}")


async def wait_checkpoint(dsn: str, head: int, timeout: float = 60.0) -> float:
    """Wait until the checkpoint reaches head; return the seconds it took."""
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while (value := await conn.fetchval(CHECKPOINT)) < head:
            assert time.monotonic() - started < timeout, f"checkpoint at {value}, expected {head}"
            await asyncio.sleep(0.02)
        return time.monotonic() - started
    finally:
        await conn.close()


async def test_two_projectors_race_one_leads_the_checkpoint_never_regresses_and_the_standby_takes_over(
    settings, tmp_path
):
    rng, judge = random.Random(9), Judge()
    owner = await asyncpg.connect(settings.pg_dsn)
    head, accepted = await append_judged(owner, judge, [small_meeting(), register_event()])
    logs = [tmp_path / "projector-a.log", tmp_path / "projector-b.log"]
    procs = [start_projector(settings, path) for path in logs]  # started together: they race for the lead
    seen, stop = [], asyncio.Event()
    watcher = asyncio.create_task(watch_checkpoint(settings.pg_dsn, seen, stop))
    try:
        standby = await wait_for_line(logs, "standing by")  # both are up: appends now meet both
        for batch in range(20):
            head, more = await append_judged(owner, judge, random_votes(rng, 100, batch * 100))
            accepted += more
            await asyncio.sleep(rng.uniform(0, 0.05))
        await wait_checkpoint(settings.pg_dsn, head)
        texts = [path.read_text() for path in logs]
        assert [i for i, text in enumerate(texts) if "standing by" in text] == [standby], texts
        active = 1 - standby  # only one stood by; the other leads
        assert (
            await owner.fetchval(  # pg_locks spans the cluster: other tests' databases hold theirs
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                tally_store.LEADER_LOCK & 0xFFFFFFFF,
            )
            == 1
        )

        procs[active].send_signal(signal.SIGKILL)  # the active projector dies mid-stream
        procs[active].wait()
        killed = time.monotonic()
        head, more = await append_judged(owner, judge, random_votes(rng, 500, 10_000))
        accepted += more
        await wait_checkpoint(settings.pg_dsn, head)
        takeover = time.monotonic() - killed
        assert "taking over" in logs[standby].read_text()
        print(f"standby took over and projected {len(more)} new rows {takeover:.2f} s after kill -9 of the active one")
    finally:
        stop.set()
        await watcher
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)

    assert seen and all(a <= b for a, b in zip(seen, seen[1:], strict=False)), "the checkpoint moved backwards"
    tally = replay(accepted).tallies["m1"]  # an independent fold of the accepted rows, in log order
    present = await owner.fetchval("SELECT present FROM tally_meetings WHERE meeting_id = 'm1'")
    buckets = {
        (r["item_id"], r["option"], r["nominee"]): r["shares"]
        for r in await owner.fetch("SELECT item_id, option, nominee, shares FROM tally_buckets WHERE meeting_id = 'm1'")
    }
    await owner.close()
    assert present == tally.present and buckets == dict(tally.buckets)

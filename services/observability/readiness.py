"""Readiness of each service (/readyz): connected to Kafka and PostgreSQL, and caught up within a bound."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from services.adapters.postgres import standby, tally_store
from services.adapters.postgres.log import reads as log_reads
from services.observability import metrics, outage
from services.settings import Settings

SYNC_CHECK_AFTER_S = 2.0  # a record unconsumed this long: ask whether commits wait for the standby (ms when it is up)
PROBE_TIMEOUT = 2.0  # seconds a probe waits for Kafka or PostgreSQL: Kubernetes' default probe timeout is 1-10 s


@dataclass
class Ready:
    """A readiness verdict: ok, else the one-line reason; detail is shown either way."""

    ok: bool
    reason: str = ""
    detail: dict = field(default_factory=dict)


class Backlog:
    """The age of the oldest record the ledger has not consumed yet, per partition, from high-water marks over time.

    Not "lag == 0 seen lately": a ledger keeping up with continuous ingest always has records fetched or
    in flight (lag > 0 at most instants), and that criterion called it not ready under steady load. A
    sample (t, high) says the records below ``high`` existed at t; once the consumer's position passes
    ``high`` they are all consumed. So the oldest unconsumed record is at least as old as the first
    sample whose high-water is still above the position: keeping up, that sample is the batch or probe
    before last (well under a second); falling behind, its age grows without bound. Sampled after every
    batch (services/runtime/ledger_app.py) and at every probe and scrape; the age is a lower bound, exact
    to the interval between samples. A partition with a backlog when first seen counts from then (the
    bound's grace after a start).
    """

    MAX_SAMPLES = 10_000  # per partition: a ledger hours behind keeps one sample in every few, not all

    def __init__(self) -> None:
        self.samples: dict[tuple[str, int], collections.deque[tuple[float, int]]] = {}

    def note(self, offsets: dict[tuple[str, int], tuple[int, int]], now: float | None = None) -> float:
        """Record (position, high-water) per partition; return the oldest unconsumed record's age in seconds."""
        now = time.monotonic() if now is None else now
        oldest = 0.0
        for tp in [tp for tp in self.samples if tp not in offsets]:
            del self.samples[tp]  # revoked: another ledger's now
        for tp, (position, high) in offsets.items():
            samples = self.samples.setdefault(tp, collections.deque())
            if high > position and (not samples or high > samples[-1][1]):
                if len(samples) >= self.MAX_SAMPLES:
                    samples.pop()  # the newest is replaced: the oldest, which sets the age, stays
                samples.append((now, high))
            while samples and samples[0][1] <= position:
                samples.popleft()  # every record that existed then is consumed
            if samples:
                oldest = max(oldest, now - samples[0][0])
        return oldest


async def database_answers(pool) -> str | None:
    """None when the pool gives a connection that answers within PROBE_TIMEOUT, else why not."""
    if pool is None:
        return "no PostgreSQL pool yet"
    acquired = False
    try:
        async with pool.acquire(timeout=PROBE_TIMEOUT) as conn:
            acquired = True
            await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer; never the DSN (asyncpg's messages omit it)
        return database_problem(pool, exc, acquired)
    return None


def database_problem(pool, exc: BaseException, acquired: bool) -> str:
    """Why a probe through the pool failed: every connection busy (no free one in time), or PostgreSQL itself.

    A timeout waiting for a connection while all max_size are open and none idle is the pool, not the
    server: saying "unreachable" then sent operators to a healthy database (the API under a load of reads).
    """
    if not acquired and isinstance(exc, TimeoutError) and pool.get_idle_size() == 0:
        size, most = pool.get_size(), pool.get_max_size()
        if size >= most:
            return f"PostgreSQL pool busy: all {most} connections in use for {PROBE_TIMEOUT:g} s"
    return f"PostgreSQL unreachable: {type(exc).__name__}"


async def ledger_ready(ledger, settings: Settings, backlog: Backlog) -> Ready:
    """Ledger: Kafka answers, PostgreSQL answers, and no record has waited unconsumed for ready_max_lag_s."""
    consumer = getattr(getattr(ledger, "subscriber", None), "consumer", None)
    if consumer is None or ledger.broker is None:
        return Ready(False, "the Kafka consumer has not started")
    try:
        kafka_ok = await asyncio.wait_for(ledger.broker.ping(timeout=PROBE_TIMEOUT), PROBE_TIMEOUT + 1)
    except Exception:  # noqa: BLE001 - a timeout or a closed client: not connected
        kafka_ok = False
    if not kafka_ok:
        return Ready(False, outage.kafka().reason() or "Kafka unreachable")
    problem = await database_answers(ledger.pool)
    if problem:
        # Commits stuck waiting for the synchronous standby hold the pool's connections: say that, not "busy".
        busy = problem.startswith("PostgreSQL pool busy")
        return Ready(False, (busy and await standby.ledger_commits_wait(settings, PROBE_TIMEOUT)) or problem)
    offsets = metrics.consumer_offsets(consumer)
    lags = metrics.lag_of(offsets)
    metrics.record_consumer_lag(lags)
    behind = sum(lags.values())
    seconds = backlog.note(offsets)
    detail = {"partitions": len(lags), "lag_records": behind, "oldest_unconsumed_s": round(seconds, 1)}
    busy = getattr(ledger, "_busy", None)  # held while a batch decides and commits
    if seconds > SYNC_CHECK_AFTER_S or (busy is not None and busy.locked()):
        # A consumed record may wait in a stuck COMMIT with no lag left to show it. Before this, the ledger
        # said "28 records behind" 30 s after its commits began to wait for a stopped standby (1,000 were
        # waiting), and nothing named the standby.
        waiting = await standby.ledger_commits_wait(settings, PROBE_TIMEOUT)
        if waiting:
            return Ready(False, waiting, detail)
    if seconds > settings.ready_max_lag_s:
        return Ready(
            False,
            f"{behind} records behind, the oldest waiting {seconds:.0f} s (bound {settings.ready_max_lag_s:g} s)",
            detail,
        )
    return Ready(True, detail=detail)


async def projector_ready(projector, settings: Settings, measured: metrics.ProjectorLag) -> Ready:
    """Projector: its connection is open and its lag, measured at least every second, is within the bound.

    A standby (another projector leads) is ready: it is connected and takes over when the leader goes.
    """
    conn = projector.conn
    if conn is None or conn.is_closed():
        return Ready(False, outage.postgres().reason() or "not connected to PostgreSQL")
    if not projector.leader:
        return Ready(True, detail={"role": "standby"})
    age = time.monotonic() - measured.at
    detail = {"role": "leader", "checkpoint": projector.position, "lag_positions": measured.positions}
    detail["lag_s"] = round(measured.seconds, 1)
    if age > settings.ready_max_lag_s:
        return Ready(False, f"lag not measured for {age:.0f} s (PostgreSQL slow or unreachable?)", detail)
    if measured.seconds > settings.ready_max_lag_s:
        return Ready(False, f"{measured.seconds:.0f} s behind the log (bound {settings.ready_max_lag_s:g} s)", detail)
    return Ready(True, detail=detail)


async def api_ready(pool, listening: bool, settings: Settings, listener: bool = True) -> Ready:
    """API: the pool answers, the notification listener is connected, the projector is within the bound.

    The API serves the projector's tables: when the projector lags, every tally it gives is old.
    ``listener``: whether the app runs a listener at all (an app without event streams has none to wait for).
    """
    if listener and not listening:
        gone = outage.postgres().reason()
        return Ready(
            False,
            f"the notification listener is not connected: {gone}"
            if gone
            else "the notification listener is not connected",
        )
    if pool is None:
        return Ready(False, "no PostgreSQL pool yet")
    acquired = False
    try:
        async with pool.acquire(timeout=PROBE_TIMEOUT) as conn:
            acquired = True
            checkpoint = await tally_store.checkpoint(conn, tally_store.PROJECTION)
            positions, seconds = await log_reads.lag(conn, checkpoint)
            # A hot standby serves too (README "Reading from a standby"): said, with its replay lag, not refused.
            role = await standby.database_role(conn)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Ready(False, database_problem(pool, exc, acquired))
    detail = {"checkpoint": checkpoint, "lag_positions": positions, "lag_s": round(seconds, 1), **role}
    if seconds > settings.ready_max_lag_s:
        return Ready(False, f"the projector is {seconds:.0f} s behind (bound {settings.ready_max_lag_s:g} s)", detail)
    return Ready(True, detail=detail)

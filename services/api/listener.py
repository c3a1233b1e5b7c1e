"""The API's one listening connection: the projector's checkpoint announcements, broadcast to every event stream.

One connection per API process, not one per stream: PostgreSQL delivers each notification to every
listening backend, so a hundred dashboards would otherwise cost a hundred idle backends. Streams
await the latest version (a broadcast of the newest value, never a queue: a slow stream skips to the
latest instead of replaying every checkpoint it missed).

On a hot standby (VOTE_LEDGER_PG_READER_DSN pointing at one) PostgreSQL refuses LISTEN during recovery,
and a NOTIFY on the primary is not replicated anyway: there the same connection polls the projection's
checkpoint and rebuild generation instead (POLL_S), and streams wake the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from services.adapters.postgres import standby, tally_store
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL, PROJECTION
from services.observability import outage
from services.runtime import failures
from services.runtime.retry import Backoff

log = logging.getLogger("vote_ledger.api.listener")

# The listener's backend as pg_stat_activity shows it (an operator, and the tests, can find it by name).
APPLICATION_NAME = "vote-ledger api listener"
# An idle connection whose peer vanished without a FIN (a cable, a NAT table) shows nothing until it is
# used: a round trip this often bounds how long streams could go deaf without anyone noticing.
HEALTH_S = 10.0
HEALTH_TIMEOUT_S = 5.0
# On a standby: how often the checkpoint is read. Per API process, not per stream: two round trips
# (pg_is_in_recovery(), then one primary-key row), measured on this machine's standby (2 cores, load 16)
# at 0.40 ms of the API's CPU and 0.21 ms of the backend's per poll: 1.2 ms a second, about 0.1 % of a
# core, idle or not. A push then waits 0.25 s on average for the poll, on top of the standby's replay
# and the streams' own coalescing (COALESCE_S).
POLL_S = 0.5

Version = tuple[int, int]  # (epoch, checkpoint): ordered; a later one means the tally may have changed


class ProjectedFeed:
    """The projector's latest checkpoint as announced on PROJECTED_CHANNEL, for every stream of the process to await.

    The version is (epoch, checkpoint). The epoch grows when the tables may have changed without the
    checkpoint moving: a rebuild announcing the position it swapped its rows in at, and every reconnection
    (announcements may have been missed while the connection was down, so streams re-read once).
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], backoff: Backoff | None = None) -> None:
        self._connect = connect
        self._backoff = backoff or Backoff(first=0.2, cap=5.0)
        self.epoch = 0
        self.position = 0
        self.heard_at = time.monotonic()  # when the current version was heard (the push-latency metric's start)
        self.connected = False  # /readyz: a stream cannot be live without it
        self.connects = 0  # sessions opened (the first and every reconnection)
        self.backend_pid: int | None = None
        self.closing = False  # the server is stopping: streams end themselves (close())
        self.standby = False  # the server is a hot standby: polled, not listened to (POLL_S)
        self._moved = asyncio.Event()

    @property
    def version(self) -> Version:
        """The current (epoch, checkpoint)."""
        return self.epoch, self.position

    async def wait_moved(self, seen: Version, timeout: float) -> Version:
        """The version as soon as it differs from ``seen``, or after ``timeout`` seconds (then maybe unchanged)."""
        if self.version == seen and timeout > 0 and not self.closing:
            moved = self._moved  # replaced at each announcement: every waiter of this one wakes
            try:
                async with asyncio.timeout(timeout):
                    await moved.wait()
            except TimeoutError:
                pass
        return self.version

    def close(self) -> None:
        """The server is stopping: wake every waiting stream, which then ends."""
        # An open stream never ends by itself: uvicorn's graceful shutdown waited its timeout (3 s), then
        # cancelled it and logged an ERROR traceback.
        self.closing = True
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def announce(self, position: int) -> None:
        """Take a checkpoint heard from the projector (or re-read): a later one moves, any other bumps the epoch."""
        if position > self.position:
            self.position = position
        else:  # the same or an older position again: the rows under it were replaced (a rebuild), or may have been
            self.epoch += 1
        self.heard_at = time.monotonic()
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            log.warning("ignored a %s notification with payload %r (not a log position)", channel, payload[:80])
            return
        self.announce(position)

    async def run(self) -> None:
        """Listen until cancelled: reconnect with bounded back-off, re-reading the checkpoint on each connection."""
        while True:
            gone = True  # the connection ended or could not be made: PostgreSQL's outage, not a bug here
            try:
                problem = await self._session() or "connection lost"
            except Exception as exc:  # noqa: BLE001 - whatever broke the session, streams need it back
                problem = f"{type(exc).__name__}: {exc}"
                gone = outage.of(exc, oserror=outage.POSTGRES) is not None  # PostgreSQL is all it touches
                if (reason := failures.cannot_go_on(exc)) is not None:
                    failures.give_up(reason)  # no schema, a refused login: `services run api` exits with this line
            delay = self._backoff.failed()
            if gone:  # said once (and counted) by the process's dependency, which says when it is back
                outage.postgres().failed(problem, "the API's tally notifications")
            (log.debug if gone else log.warning)(
                "tally notifications unavailable (%s); reconnecting in %.1f s", problem, delay
            )
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One listening (or, on a standby, polling) session: returns (or raises) when the connection is lost."""
        conn = await self._connect()
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.execute(f"SET application_name = '{APPLICATION_NAME}'")
            if await standby.in_recovery(conn):
                await self._poll(conn, lost)
                if lost.is_set():
                    return
                self.standby = False  # promoted: this same connection listens from now on
            await conn.add_listener(PROJECTED_CHANNEL, self._on_notification)
            # Listening first, then reading: a commit between the two is both read and heard (heard twice
            # is one redundant re-read), never missed.
            self.announce(await tally_store.checkpoint(conn, PROJECTION))
            self.connected, self.backend_pid = True, conn.get_server_pid()
            self.connects += 1
            self._backoff.reset()
            outage.postgres().ok()  # after an outage: one line saying how long it lasted
            log.info("listening for tally notifications (checkpoint %d)", self.position)
            while not lost.is_set():
                try:
                    async with asyncio.timeout(HEALTH_S):
                        await lost.wait()
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=HEALTH_TIMEOUT_S)
        finally:
            self.connected, self.backend_pid, self.standby = False, None, False
            if not conn.is_closed():
                conn.terminate()  # no graceful close: the connection is broken, or we are being cancelled

    async def _poll(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """On a standby: read the checkpoint every POLL_S; returns when it is promoted (then LISTEN works)."""
        checkpoint, generation = await tally_store.checkpoint_and_generation(conn, PROJECTION)
        self.announce(checkpoint)  # as a reconnection does: streams re-read once
        self.connected, self.backend_pid, self.standby = True, conn.get_server_pid(), True
        self.connects += 1
        self._backoff.reset()
        outage.postgres().ok()  # after an outage: one line saying how long it lasted
        log.info("the database is a hot standby: polling the tally checkpoint every %.1f s (at %d)", POLL_S, checkpoint)
        while not lost.is_set():
            await asyncio.sleep(POLL_S)
            async with asyncio.timeout(HEALTH_TIMEOUT_S):  # the poll is the health check too
                if not await standby.in_recovery(conn):
                    log.info("the database was promoted: listening for tally notifications instead of polling")
                    return
                now = await tally_store.checkpoint_and_generation(conn, PROJECTION)
            if now != (checkpoint, generation):
                # A later checkpoint moves the version; the same one with a new generation (a rebuild
                # replayed) bumps its epoch, as the rebuild's announcement does on the primary.
                checkpoint, generation = now
                self.announce(checkpoint)

"""The projector: follows the log (LISTEN/NOTIFY plus catch-up) and keeps the tally tables.

Each batch of log rows is folded in memory and written, with the checkpoint, in one transaction,
so the tables always equal a fold of exactly the log prefix their checkpoint names.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from events import decode_logged
from projections.replay import Projection
from services.config import Settings
from services.postgres import log_store, tally_store
from services.postgres.connect import PROJECTOR_ROLE, connect

log = logging.getLogger("vote_ledger.projector")

PROJECTION = "tally"
BATCH_ROWS = 20_000


async def refold_late(conn: asyncpg.Connection, projection: Projection, up_to: int) -> None:
    """Fold again, from their log rows, the control numbers a late-logged poll closure affects (R12)."""
    for meeting_id, numbers in projection.take_refolds().items():
        by_number: dict[str, list] = {n: [] for n in numbers}
        for row in await log_store.accepted_votes_of(conn, meeting_id, sorted(numbers), up_to):
            by_number[row["control_number"]].append(decode_logged(row["payload"]))
        for number, events in sorted(by_number.items()):
            projection.tallies[meeting_id].refold(number, events)


class Projector:
    """Keeps the tally projection up to date with the log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: asyncpg.Connection | None = None
        self.projection = Projection()
        self.position = 0
        self.generation = 0
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Connect, listen for appends and load the projection's state at its checkpoint."""
        self.conn = await connect(self.settings.pg_dsn, PROJECTOR_ROLE)
        await self.conn.add_listener(log_store.NOTIFY_CHANNEL, lambda *_: self._wake.set())
        await self.load()

    async def load(self) -> None:
        """Rebuild in-memory state: admin events up to the checkpoint, then the tally rows."""
        projection = Projection()
        async with self.conn.transaction(isolation="repeatable_read"):
            position = await tally_store.checkpoint(self.conn, PROJECTION)
            generation = await tally_store.generation(self.conn, PROJECTION)
            # Admin rows past the checkpoint are folded later, in order with the votes.
            for row in await log_store.admin_payloads(self.conn, up_to=position):
                projection.apply(decode_logged(row["payload"]))
            for meeting_id, tally in projection.tallies.items():
                loaded = await tally_store.load_tally(self.conn, tally.meeting)
                projection.tallies[meeting_id] = loaded
        self.projection, self.position, self.generation = projection, position, generation

    async def stop(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            await self.conn.close()

    async def catch_up(self) -> int:
        """Fold and commit every row after the checkpoint; return the rows processed."""
        processed = 0
        while True:
            rows = await log_store.read_after(self.conn, self.position, BATCH_ROWS)
            if not rows:
                return processed
            touched: dict[str, int] = {}  # meeting -> position of its last row in this batch
            for row in rows:
                touched[row["meeting_id"]] = row["position"]
            self.projection.apply_many([decode_logged(r["payload"]) for r in rows if r["decision"] == "accepted"])
            last = rows[-1]["position"]
            await refold_late(self.conn, self.projection, last)
            async with self.conn.transaction():
                await tally_store.lock(self.conn)
                if await tally_store.generation(self.conn, PROJECTION) != self.generation:
                    raise _Rebuilt()  # rolls back; run() reloads the rebuilt tables
                for meeting_id, meeting_position in sorted(touched.items()):
                    tally = self.projection.tallies.get(meeting_id)
                    if tally is not None:
                        await tally_store.save_changes(self.conn, tally, meeting_position)
                await tally_store.save_checkpoint(self.conn, PROJECTION, last)
            self.position = last
            processed += len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until ``stop`` is set; a notification wakes it, a timer catches up."""
        while not stop.is_set():
            self._wake.clear()
            try:
                processed = await self.catch_up()
            except _Rebuilt:
                log.info("the tally was rebuilt; reloading it")
                await self.load()
                continue
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.error("projection batch failed (%s); reconnecting", exc)
                await self._reconnect(stop)
                continue
            if processed:
                log.info("projected %d rows, at position %d", processed, self.position)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass  # periodic catch-up also covers a notification lost to a reconnect

    async def _reconnect(self, stop: asyncio.Event) -> None:
        """Reconnect and reload state, with backoff, until PostgreSQL answers or we are stopped."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self.stop()
            except Exception:  # noqa: BLE001 - the old connection may already be gone
                pass
            try:
                await self.start()
                return
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.error("PostgreSQL unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


class _Rebuilt(Exception):
    """The projection's tables were rebuilt since this projector loaded them."""

"""The projector: follows the log (LISTEN/NOTIFY plus catch-up) and keeps the tally tables.

Each batch of log rows is folded in memory and written, with the checkpoint, in one transaction,
so the tables always equal a fold of exactly the log prefix their checkpoint names. Meetings are
folded and written each on their own (a savepoint per meeting): one whose rows cannot be folded
or stored is recorded in projection_failures with the checkpoint, and skipped from then on,
while every other meeting moves on. One projector is active at a time (a session advisory lock);
another stands by and takes over when the active one's connection ends.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from events import logged_event
from projections.fold import Tally
from projections.judge import Judge
from projections.refusals import LastWords
from projections.replay import Projection
from services.adapters.postgres import tally_store
from services.adapters.postgres.connect import PROJECTOR_ROLE, connect_as
from services.adapters.postgres.log import admin as log_admin
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log.refold import refold_meeting
from services.adapters.postgres.tally_store import PROJECTION
from services.observability import logs, metrics, outage
from services.runtime import failures
from services.runtime.gc_pacing import Pacer
from services.runtime.retry import retry
from services.settings import Settings

log = logging.getLogger("vote_ledger.projector")

BATCH_ROWS = 20_000
STANDBY_POLL = 0.5  # seconds between a standby's attempts to take the lead: the takeover delay

# SQLSTATE classes that say the rows were wrong, not the database: data exception (22: e.g. a
# value out of bigint range, which asyncpg raises itself as 22000 "value out of int64 range" before
# sending it), integrity constraint violation (23) and program limit exceeded (54).
_DATA_CLASSES = ("22", "23", "54")


def is_outage(exc: BaseException) -> bool:
    """Whether an error is the database's or the connection's (retry), not a meeting's data."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] not in _DATA_CLASSES
    if isinstance(exc, asyncpg_base.DataError):
        return False  # asyncpg's client-side data errors (an argument it cannot convert)
    return isinstance(exc, _CONNECTION_ERRORS)


# The connection's own failures: an outage, retried. InternalClientError too: PostgreSQL stopping (pg_ctl stop -m
# fast) mid-query left asyncpg "cannot switch to state 12; another operation (2) is in progress" on the next query,
# which ended the projector (exit 1) in a measured 10 s outage instead of reconnecting.
_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg_base.InternalClientError, asyncio.TimeoutError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Projector:
    """Keeps the tally projection up to date with the log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: asyncpg.Connection | None = None
        self.projection = Projection()
        self.position = 0
        self.generation = 0
        self.leader = False
        # Meetings recorded in projection_failures: meeting -> first log position not projected.
        self.failed: dict[str, int] = {}
        # Per meeting, the ledger rows (R19) read and not yet checked against the fold.
        self.last_words: dict[str, LastWords] = {}
        self.batch_rows = BATCH_ROWS  # log rows read and committed at a time (a test makes a backlog take many)
        self._wake = asyncio.Event()
        self.gc = Pacer()  # the fold's state out of full collections: their pauses were the latency's tail

    async def start(self) -> None:
        """Connect and listen for appends; if no other projector is active, lead and load the state."""
        self.conn = await connect_as(self.settings, PROJECTOR_ROLE)
        await self.conn.add_listener(log_append.NOTIFY_CHANNEL, lambda *_: self._wake.set())
        self.leader = await tally_store.try_lead(self.conn)
        if self.leader:
            await self.load()

    async def load(self) -> None:
        """Rebuild in-memory state: admin events up to the checkpoint, then the tally rows."""
        async with self.conn.transaction(isolation="repeatable_read"):
            position = await tally_store.checkpoint(self.conn, PROJECTION)
            generation = await tally_store.generation(self.conn, PROJECTION)
            failed = await tally_store.failures(self.conn, PROJECTION)
            # Admin rows past the checkpoint are folded later, in order with the votes. A meeting
            # whose admin row fails is isolated (recorded below), not a reason to stop the others.
            rebuilt = await log_admin.load_judge(
                self.conn, Judge(proxy_books=False), up_to=position, isolate=True, skip=failed
            )  # substitutions never change the tally (R13): no proxy book
            broken = dict(rebuilt.broken)
            # No vote is folded yet: each scheduled meeting starts from an empty tally, as
            # Projection.apply(meeting.scheduled) would give, then loads its projected rows.
            projection = Projection(
                state=rebuilt.judge,
                tallies={meeting_id: Tally(meeting=meeting) for meeting_id, meeting in rebuilt.judge.meetings.items()},
            )
            for meeting_id, tally in list(projection.tallies.items()):
                try:
                    projection.tallies[meeting_id] = await tally_store.load_tally(self.conn, tally.meeting)
                except Exception as exc:  # noqa: BLE001
                    if is_outage(exc):
                        raise
                    broken[meeting_id] = (position + 1, _describe(exc))
                    _forget(projection, meeting_id)
        if broken:  # rows projected once that no longer load (e.g. after an upgrade): report, go on
            async with self.conn.transaction():
                for meeting_id, (at, error) in broken.items():
                    await tally_store.record_failure(self.conn, PROJECTION, meeting_id, at, error)
            self._report(broken)
            failed.update({m: at for m, (at, _) in broken.items()})
        self.projection, self.position, self.generation, self.failed = projection, position, generation, failed
        self.last_words = {}
        self.gc.settle()  # the loaded register and tallies are long-lived: frozen out of full collections
        for meeting_id, at in sorted(failed.items()):
            log.error(
                "meeting %s is not projected from log position %d on (see projection_failures;"
                " `projections rebuild --meeting %s` after a fix)",
                meeting_id,
                at,
                meeting_id,
                extra={"meeting_id": meeting_id, "position": at},
            )

    async def stop(self) -> None:
        """Close the connection (which releases the lead, if held)."""
        if self.conn is not None:
            await self.conn.close()

    async def catch_up(self) -> int:
        """Fold and commit every row after the checkpoint; return the rows processed.

        The lag (gauges and /readyz) is measured after each committed batch, not once caught up: under
        sustained ingest or a restart with a backlog the loop may not return for minutes, and a lag
        measured only at its end read 0 and "not measured" the whole time it mattered. Two primary-key
        probes (log_reads.lag) per batch of up to 20,000 rows.
        """
        processed = 0
        while True:
            rows = await log_reads.read_after(self.conn, self.position, self.batch_rows)
            if not rows:
                await metrics.measure_projector_lag(self.conn, self.position)
                return processed
            seconds = metrics.Stopwatch()
            last = rows[-1]["position"]
            by_meeting: dict[str, list] = {}  # a failed meeting's rows are skipped, never folded
            for row in rows:
                if row["meeting_id"] not in self.failed:
                    by_meeting.setdefault(row["meeting_id"], []).append(row)
            broken: dict[str, tuple[int, str]] = {}
            for meeting_id, mine in by_meeting.items():
                # Per meeting of a batch, not per row: a refold's or a failure's lines say which meeting, up to where.
                with logs.bind(meeting_id=meeting_id, position=mine[-1]["position"]):
                    try:
                        await self._fold(meeting_id, mine, last)
                    except Exception as exc:  # noqa: BLE001 - classified: an outage is retried, not blamed
                        if is_outage(exc):
                            raise
                        broken[meeting_id] = (mine[0]["position"], _describe(exc))
                        _forget(self.projection, meeting_id)
            async with self.conn.transaction():
                await tally_store.lock(self.conn)
                if await tally_store.generation(self.conn, PROJECTION) != self.generation:
                    raise _Rebuilt()  # rolls back; run() reloads the rebuilt tables
                for meeting_id, mine in sorted(by_meeting.items()):
                    tally = self.projection.tallies.get(meeting_id)
                    if tally is None or meeting_id in broken:
                        continue
                    try:
                        with logs.bind(meeting_id=meeting_id, position=mine[-1]["position"]):
                            async with self.conn.transaction():  # a savepoint: one meeting's rows at a time
                                await tally_store.save_changes(self.conn, tally, mine[-1]["position"])
                    except Exception as exc:  # noqa: BLE001
                        if is_outage(exc):
                            raise
                        broken[meeting_id] = (mine[0]["position"], _describe(exc))
                        _forget(self.projection, meeting_id)
                for meeting_id, (at, error) in sorted(broken.items()):
                    await tally_store.record_failure(self.conn, PROJECTION, meeting_id, at, error)
                await tally_store.save_checkpoint(self.conn, PROJECTION, last)
            self.failed.update({m: at for m, (at, _) in broken.items()})
            self._report(broken)
            self.position = last
            self.gc.settle()  # after the commit: what the batch folded in is long-lived, its rows are gone
            metrics.record_projected(len(rows), seconds(), last)
            await metrics.measure_projector_lag(self.conn, self.position)  # /readyz and the lag gauges, mid-backlog
            processed += len(rows)

    async def _fold(self, meeting_id: str, rows: list, last: int) -> None:
        """Fold one meeting's rows of a batch (and refold what a late poll closure affects)."""
        # The compact form when the row has one (migration 019), else its payload: log_reads.EVENT_COLUMNS.
        self.projection.apply_many(
            [logged_event(r["compact"], r["payload"]) for r in rows if r["decision"] == "accepted"]
        )
        numbers = self.projection.refolds.pop(meeting_id, None)
        if numbers:
            await refold_meeting(self.conn, self.projection, meeting_id, numbers, last)
        # R19: the ledger logged what its fold of the same rows refused (R17 `reject`) and withdrew (a recount
        # after a closure or cut-off change): this fold must say the same of each instruction's last row, or the
        # two disagree and the meeting's projection cannot be trusted. Checked once the ledger rows that follow
        # a batch's last row are read too (LastWords).
        words = self.last_words.setdefault(meeting_id, LastWords())
        for row in rows:
            words.see(row["position"], row["type"], row["decision"], row["reason"], row["payload"], row["compact"])
        if words.rows:
            problems = words.check(self.projection.tallies.get(meeting_id), rows[-1]["position"] == last)
            if problems:
                raise RefusalDisagrees("; ".join(problems))

    @staticmethod
    def _report(broken: dict[str, tuple[int, str]]) -> None:
        for meeting_id, (at, error) in sorted(broken.items()):
            log.error(
                "meeting %s failed at log position %d and is skipped from now on; other meetings go on"
                " (%s). After a fix: `vote-ledger projections rebuild --meeting %s`",
                meeting_id,
                at,
                error,
                meeting_id,
                extra={"meeting_id": meeting_id, "position": at},
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until ``stop`` is set; a notification wakes it, a timer catches up."""
        while not stop.is_set():
            self._wake.clear()
            try:
                if not self.leader:
                    await self._stand_by(stop)
                    continue
                processed = await self.catch_up()  # measures the lag after each batch and once caught up
            except _Rebuilt:
                log.info("the tally was rebuilt; reloading it")
                await self.load()
                continue
            except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
                if (reason := failures.cannot_go_on(exc)) is not None:
                    raise failures.CannotGoOn(reason) from exc  # a revoked privilege, a dropped table: exit
                # An outage is said once by the process's PostgreSQL dependency (retry() reports each attempt).
                # PostgreSQL is all the projector touches: a bare OSError or timeout is its outage.
                line = f"projection batch failed ({exc}); reconnecting"
                failures.report(exc, "the projector", log, line, oserror=outage.POSTGRES)
                await self._reconnect(stop)
                continue
            if processed:
                log.info(
                    "projected %d rows, at position %d", processed, self.position, extra={"position": self.position}
                )
            if not self._wake.is_set():
                self.gc.idle()  # caught up, nothing waiting: the rare full sweep costs no vote its pause
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass  # periodic catch-up also covers a notification lost to a reconnect

    async def _stand_by(self, stop: asyncio.Event) -> None:
        """Wait until no other projector is active, then take the lead and load the state."""
        log.warning("another projector is active on this database; standing by")
        while not stop.is_set():
            if await tally_store.try_lead(self.conn):
                self.leader = True
                log.warning("the active projector is gone; taking over")
                await self.load()
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=STANDBY_POLL)
            except TimeoutError:
                pass

    async def _reconnect(self, stop: asyncio.Event) -> None:
        """Reconnect and reload state, with backoff, until PostgreSQL answers or we are stopped."""

        async def attempt() -> None:
            self.leader = False  # the lead was the old session's; start() takes it again if free
            try:
                await self.stop()
            except Exception:  # noqa: BLE001 - the old connection may already be gone
                pass
            await self.start()

        errors = (asyncpg.PostgresError, *_CONNECTION_ERRORS)
        what = "the projector's reconnection"
        await retry(attempt, log=log, what=what, errors=errors, stop=stop, traceback=False, oserror=outage.POSTGRES)


def _forget(projection: Projection, meeting_id: str) -> None:
    """Drop a failed meeting's in-memory state: its later rows are skipped, its tables keep their rows."""
    projection.tallies.pop(meeting_id, None)
    projection.state.meetings.pop(meeting_id, None)
    projection.state.proxies.pop(meeting_id, None)
    projection.refolds.pop(meeting_id, None)
    projection.recounts.discard(meeting_id)


class RefusalDisagrees(Exception):
    """A refusal row of the ledger's is not what the projector's fold of the same rows refuses (R19)."""


class _Rebuilt(Exception):
    """The projection's tables were rebuilt since this projector loaded them."""

"""`projections rebuild`: replay a meeting from the log into the shadow tables, check them, swap them in.

A known weakening since issue 15: the second fold of the whole log (read again and settled every batch) is
gone, and with it the rebuild's own proof that voters' states do not depend on how rows are batched or when
contributions settle. That now rests on tests alone: the property test
tests/unit/test_rules.py::test_folding_in_batches_equals_folding_event_by_event and tests/unit/test_traffic.py
(test_a_replay_settling_once_at_the_end_equals_one_settling_every_batch, a 60,000-vote campaign); a fold
that broke it outside what they generate would go unnoticed here. The fold reads each row's compact form,
which the hash chain does not cover: `audit verify` (compact_mismatch) proves it is the payload's decoding.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg

from events import logged_event
from projections import tally_sums
from projections.fold import Tally
from projections.refusals import LastWords
from projections.replay import Projection
from services.adapters.postgres import tally_shadow, tally_store
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log.refold import refold_late
from services.adapters.postgres.tally_store import PROJECTION
from services.observability import logs
from services.read.errors import UnknownMeeting

log = logging.getLogger("vote_ledger.rebuild")

REPLAY_BATCH = 10_000  # rows per read: the batch size no longer changes the fold's cost (settle)


class RebuildRefused(RuntimeError):
    """The rebuild swapped nothing in: its shadow tables are missing, stale or disagree with the fold."""

    def __init__(self, meeting_id: str, problems: list[str]) -> None:
        super().__init__(f"rebuild of {meeting_id} refused, live tally untouched: " + "; ".join(problems))
        self.problems = problems


@dataclass
class _Fold:
    """One meeting folded from the log up to some position."""

    meeting_id: str
    projection: Projection = field(default_factory=Projection)
    rows: int = 0  # log rows read
    last: int = 0  # position of the meeting's last row folded: the tally's as_of_position
    at: Callable[[int], None] | None = None  # told the position reached after each batch (progress)
    refusals: LastWords | None = None  # given: the ledger's rows (R19) seen, to check against the fold

    @property
    def tally(self) -> Tally:
        """The meeting's tally; UnknownMeeting if no meeting.scheduled was folded."""
        tally = self.projection.tallies.get(self.meeting_id)
        if tally is None:
            raise UnknownMeeting(self.meeting_id)
        return tally


async def rebuild(
    conn: asyncpg.Connection, meeting_id: str, on_progress: Callable[[int, int | None], None] | None = None
) -> int:
    """Replay the meeting from the start of the log into shadow tables, verify them, swap them in.

    The replay and the check of the shadow rows against it run while readers and the live projector
    go on; only the swap (catching up with rows projected meanwhile, then copying the shadow rows over
    the live ones) holds the projection writers' lock, in one transaction, so readers see the old
    tally or the new one, never a mix. Returns the number of log rows replayed.
    ``on_progress(done, total)``: after each batch, in log positions up to the checkpoint, for a progress bar.
    """
    with logs.bind(meeting_id=meeting_id):  # every line of the rebuild, its library's included, names the meeting
        # Rebuilds of one meeting share its shadow rows: one at a time (a session lock: several transactions).
        await tally_shadow.lock_meeting(conn, meeting_id)
        try:
            columns = await _shadow_columns(conn, meeting_id)
            target = await tally_store.checkpoint(conn, PROJECTION)
            step = on_progress or (lambda done, total: None)
            fold = _Fold(meeting_id, at=lambda position: step(position, target), refusals=LastWords())
            started = time.perf_counter()
            await _replay(conn, fold, target)
            step(target, target)
            fold.at = None  # the catch-up under the lock is short: no more progress
            replayed = time.perf_counter()
            await _write_shadow(conn, fold, fresh=True)
            written = time.perf_counter()
            await _verify(conn, fold, target, touched=None)
            verified = time.perf_counter()
            async with conn.transaction():
                await tally_store.lock(conn)
                now = await tally_store.checkpoint(conn, PROJECTION)
                if now != target:  # the live projector went on: fold its rows in too
                    fold.tally.dirty_buckets.clear()
                    fold.tally.dirty_voters.clear()
                    await _replay(conn, fold, now)
                    touched = set(fold.tally.dirty_voters)
                    await _write_shadow(conn, fold, fresh=False)
                    await _verify(conn, fold, now, touched=touched)
                await tally_shadow.swap_in(conn, meeting_id, columns)
                # A meeting the projector had given up on (projection_failures) is whole again: the
                # projector, reloading for the new generation, follows it from the checkpoint on.
                if await tally_store.clear_failure(conn, PROJECTION, meeting_id):
                    log.warning(
                        "rebuilt %s: its projection failure is cleared; the projector follows it again",
                        meeting_id,
                        extra={"meeting_id": meeting_id},
                    )
                await tally_store.bump_generation(conn, PROJECTION)
                # Rows changed under an unchanged checkpoint: open event streams re-read (delivered at commit).
                await tally_store.notify_projected(conn, now)
            swapped = time.perf_counter()
            async with conn.transaction():  # the shadow rows served their purpose; a failed run keeps them
                await tally_shadow.in_shadow(conn)
                await tally_store.delete_meeting(conn, meeting_id)
            log.info(
                "rebuilt %s: %d rows replayed in %.2f s, written to the shadow tables in %.2f s, checked in %.2f s,"
                " swapped in %.2f s (the checkpoint moved by %d meanwhile), shadow rows removed in %.2f s",
                meeting_id,
                fold.rows,
                replayed - started,
                written - replayed,
                verified - written,
                swapped - verified,
                now - target,
                time.perf_counter() - swapped,
                extra={"meeting_id": meeting_id, "position": now},
            )
            return fold.rows
        finally:
            if not conn.is_closed():
                await tally_shadow.unlock_meeting(conn, meeting_id)


async def _shadow_columns(conn: asyncpg.Connection, meeting_id: str) -> dict[str, str]:
    """Each tally table's column list, once it is sure every shadow mirrors its live table."""
    columns = {}
    for table in tally_shadow.TABLES:
        live, shadow = await tally_shadow.table_columns(conn, table)
        if not shadow:
            raise RebuildRefused(meeting_id, [f"no {tally_shadow.SHADOW_SCHEMA}.{table}: run `vote-ledger db migrate`"])
        if live != shadow:
            # Copying would drop or mistype a column: a migration changed one table without the other.
            raise RebuildRefused(
                meeting_id,
                [f"{tally_shadow.SHADOW_SCHEMA}.{table} does not mirror public.{table} (see 007_least_privilege.sql)"],
            )
        columns[table] = ", ".join(f'"{name}"' for name, _, _ in live)
    return columns


async def replay_meeting(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> tuple[Tally, int]:
    """A meeting's tally folded from the start of the log up to a position, and the rows read."""
    fold = _Fold(meeting_id)
    await _replay(conn, fold, up_to)
    return fold.tally, fold.rows


async def _replay(conn: asyncpg.Connection, fold: _Fold, up_to: int) -> None:
    """Fold the meeting's log rows after fold.last up to a position, in batches; count contributions once.

    Each row is read and decoded once; a rebuild's fold also sees every row for its R19 check (refusals).
    """
    after = fold.last
    with _gc_paused():
        while rows := [
            r
            for r in await log_reads.read_after(conn, after, REPLAY_BATCH, meeting_id=fold.meeting_id)
            if r["position"] <= up_to
        ]:
            fold.projection.apply_many(
                [logged_event(r["compact"], r["payload"]) for r in rows if r["decision"] == "accepted"], settle=False
            )
            if fold.refusals is not None:
                for r in rows:
                    fold.refusals.see(r["position"], r["type"], r["decision"], r["reason"], r["payload"], r["compact"])
            fold.rows += len(rows)
            after = rows[-1]["position"]
            if fold.at is not None:
                fold.at(after)
        fold.projection.settle()
    if after != fold.last:
        fold.last = after
        await refold_late(conn, fold.projection, after)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a replay folds: it creates no cycles, but keeps the voters' latest
    instructions (dicts the GC tracks), and full collections walking them again and again cost a
    fifth of a million-row replay. Reference counting still frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _write_shadow(conn: asyncpg.Connection, fold: _Fold, fresh: bool) -> None:
    """Write the fold's rows to the shadow tables: all of them COPYed (fresh), or the changed ones as the projector."""
    tally = fold.tally
    async with conn.transaction():
        saved = await tally_shadow.search_path(conn)
        await tally_shadow.in_shadow(conn)
        if fresh:
            await tally_store.delete_meeting(conn, fold.meeting_id)
            await tally_shadow.copy_meeting(conn, tally, fold.last)
            tally.dirty_buckets.clear()
            tally.dirty_voters.clear()
        else:
            if tally.dirty_voters:
                # A refold can drop an over-vote rejection (R17); the writer only ever adds them.
                await tally_shadow.drop_rejections_of(conn, fold.meeting_id, sorted(tally.dirty_voters))
            await tally_store.save_changes(conn, tally, fold.last)
        await tally_shadow.restore_search_path(conn, saved)


async def _verify(conn: asyncpg.Connection, fold: _Fold, up_to: int, touched: set[str] | None) -> None:
    """Check the fold against the log and against itself, then the shadow rows against the fold.

    Until issue 15 a second fold of the whole log, read again and settled every batch, was the reference:
    it doubled the rebuild's cost. What it proved is checked here at a fraction of that: every row of the
    meeting up to the checkpoint was folded (counted in SQL); the fold's running sums equal its voters'
    final states summed afresh (projections.tally_sums: settling once or per batch changes only the
    bookkeeping this bypasses; that folding in other batches gives the same states is the property test
    test_folding_in_batches_equals_folding_event_by_event and test_traffic's 60,000-vote campaign); the
    ledger's refusal rows agree with the fold (R19); then every shadow row (or ``touched`` voters') is the fold's.
    """
    meeting_id, tally, problems = fold.meeting_id, fold.tally, []
    logged = await log_reads.meeting_row_count(conn, meeting_id, up_to)
    if logged != fold.rows:
        problems.append(f"{fold.rows:,} log rows folded, the log holds {logged:,} up to position {up_to:,}")
    problems += tally_sums.differences(tally)
    # R19: what the ledger logged as refused (and not withdrawn), this fold refuses. The checkpoint may end
    # on a row the ledger's rows follow: those are checked by the projector (and by the next rebuild).
    if fold.refusals is not None:
        problems += [f"refusal rows: {p}" for p in fold.refusals.check(tally, True) or []]
    row = await tally_shadow.meeting_row(conn, meeting_id)
    want = (tally.present, tally.present_count, tally.events_applied, fold.last)
    if row is None or row != want:
        problems.append(f"meeting row {row}, expected {want}")
    buckets = await tally_shadow.buckets(conn, meeting_id)
    for key in sorted(set(buckets) | set(tally.buckets)):
        if buckets.get(key, 0) != tally.buckets.get(key, 0):
            problems.append(f"bucket {'/'.join(key)}: {buckets.get(key, 0):,}, expected {tally.buckets.get(key, 0):,}")
    if await tally_shadow.rejections(conn, meeting_id) != {
        (e, i, tally.meeting.positions[n].nominee or "", n)
        for n, state in tally.voters.items()
        for e, i in state.overvote_rejected
    }:
        problems.append("over-vote rejections differ")
    count = await tally_shadow.voter_count(conn, meeting_id)
    if count != len(tally.voters):
        problems.append(f"{count:,} voters, expected {len(tally.voters):,}")
    async with conn.transaction():  # a cursor needs one
        only = None if touched is None else sorted(touched)
        async for voter in tally_shadow.voter_states(conn, meeting_id, only):
            # The text the writer stored (json keeps it as sent) against the fold's state encoded: 0.31-0.64 s
            # for 82,145 voters where decoding each stored state to compare structs took 0.61-0.82 s.
            state = tally.voters.get(voter["control_number"])
            if state is None or voter["state"] != tally_shadow.state_text(state):
                problems.append(f"voter {voter['control_number']}")
                if len(problems) >= 20:
                    break
    if problems:
        raise RebuildRefused(
            meeting_id, [*problems, f"shadow rows kept in {tally_shadow.SHADOW_SCHEMA} for inspection"]
        )

"""Read side and maintenance of the tally projection: the tally report and an online rebuild."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from events import MeetingScheduled, PositionsRecorded, decode_logged
from projections.fold import Tally, VoterState
from projections.outcomes import tally_report
from projections.overvotes import counted_totals
from projections.replay import Projection
from services.adapters.postgres import log_store, tally_store
from services.cli import UserError
from services.runtime.projector import PROJECTION, refold_late

log = logging.getLogger("vote_ledger.rebuild")

_chunk_decoder = msgspec.json.Decoder(PositionsRecorded)
_state_decoder = msgspec.json.Decoder(VoterState)
# Where rebuilds build (see 007_least_privilege.sql): the live tally tables' namesakes.
SHADOW_SCHEMA = "tally_shadow"
_TABLES = ("tally_meetings", "tally_buckets", "tally_voters", "tally_overvote_rejections")
# Any constant: with hashtext(meeting_id), the session lock of one meeting's rebuild.
_REBUILD_LOCK = 0x766F7465  # "vote"
REPLAY_BATCH = 10_000  # rows per read: the batch size no longer changes the fold's cost (settle)
_MEETING_ROWS = (
    "SELECT position, decision, payload FROM ledger_log WHERE meeting_id = $1"
    " AND position > $2 AND position <= $3 ORDER BY position"
)


class UnknownMeeting(LookupError):
    """No accepted meeting.scheduled with this id is in the log."""


async def require_logged(conn: asyncpg.Connection, meeting_id: str) -> None:
    """Raise UnknownMeeting unless the log holds at least one row of the meeting."""
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM ledger_log WHERE meeting_id = $1)", meeting_id):
        raise UnknownMeeting(meeting_id)


async def meeting_spec(conn: asyncpg.Connection, meeting_id: str) -> MeetingScheduled:
    """The meeting's accepted meeting.scheduled event, from the log."""
    payload = await conn.fetchval(
        "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'meeting.scheduled'"
        " AND decision = 'accepted' ORDER BY position LIMIT 1",
        meeting_id,
    )
    if payload is None:
        raise UnknownMeeting(meeting_id)
    return decode_logged(payload)


async def meeting_entitlements(conn: asyncpg.Connection, meeting_id: str) -> dict[str, int]:
    """Nominee entitlements from the meeting's accepted register chunks (R17)."""
    entitlements: dict[str, int] = {}
    for row in await conn.fetch(
        "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'positions.recorded'"
        " AND decision = 'accepted' ORDER BY position",
        meeting_id,
    ):
        for entitlement in _chunk_decoder.decode(row["payload"]).entitlements:
            entitlements[entitlement.nominee] = entitlement.shares
    return entitlements


async def read_counted(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """Everything a report needs from one consistent snapshot of the projection tables."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await read_counted_in_snapshot(conn, meeting_id)


class MeetingNotProjected(UserError):
    """The projector isolated this meeting (projection_failures): its tally tables are stale."""


async def read_counted_in_snapshot(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """As read_counted, inside the caller's REPEATABLE READ transaction (to read more at the same point)."""
    spec = await meeting_spec(conn, meeting_id)
    # A meeting the projector could not project keeps its rows as of before the failure: reporting
    # them as the tally would certify numbers that leave votes out (011_projector.sql).
    failed = await tally_store.failures(conn, PROJECTION)
    if meeting_id in failed:
        raise MeetingNotProjected(
            f"meeting {meeting_id!r} is not projected from log position {failed[meeting_id]:,} on (see `vote-ledger"
            f" status`): its tally would be stale; fix the cause, then `vote-ledger projections rebuild --meeting"
            f" {meeting_id}`, or count from the log itself with `vote-ledger tally --as-of`"
        )
    row = await conn.fetchrow("SELECT present FROM tally_meetings WHERE meeting_id = $1", meeting_id)
    position = await tally_store.checkpoint(conn, PROJECTION)
    buckets = {
        (b["item_id"], b["option"], b["nominee"]): b["shares"]
        for b in await conn.fetch(
            "SELECT item_id, option, nominee, shares FROM tally_buckets WHERE meeting_id = $1", meeting_id
        )
    }
    rejected: dict[tuple[str, str], list[str]] = {}
    for r in await conn.fetch(
        "SELECT nominee, item_id, event_id FROM tally_overvote_rejections WHERE meeting_id = $1 ORDER BY event_id",
        meeting_id,
    ):
        rejected.setdefault((r["nominee"], r["item_id"]), []).append(r["event_id"])
    entitlements = await meeting_entitlements(conn, meeting_id)
    totals, overvotes = counted_totals(spec, entitlements, buckets, rejected)
    present = row["present"] if row else 0
    return {"spec": spec, "present": present, "position": position, "totals": totals, "overvotes": overvotes}


async def read_tally(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md from the projection tables, consistent at one checkpoint."""
    counted = await read_counted(conn, meeting_id)
    return tally_report(counted["spec"], counted["present"], counted["totals"], as_of_position=counted["position"])


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

    @property
    def tally(self) -> Tally:
        """The meeting's tally; UnknownMeeting if no meeting.scheduled was folded."""
        tally = self.projection.tallies.get(self.meeting_id)
        if tally is None:
            raise UnknownMeeting(self.meeting_id)
        return tally


async def rebuild(conn: asyncpg.Connection, meeting_id: str) -> int:
    """Replay the meeting from the start of the log into shadow tables, verify them, swap them in.

    The replay and its verification against a second, independent fold run while readers and the
    live projector go on; only the swap (catching up with rows projected meanwhile, then copying
    the shadow rows over the live ones) holds the projection writers' lock, in one transaction, so
    readers see the old tally or the new one, never a mix. Returns the number of log rows replayed.
    """
    # Rebuilds of one meeting share its shadow rows: one at a time (a session lock: several transactions).
    await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _REBUILD_LOCK, meeting_id)
    try:
        columns = await _shadow_columns(conn, meeting_id)
        target = await tally_store.checkpoint(conn, PROJECTION)
        built, expected = _Fold(meeting_id), _Fold(meeting_id)
        started = time.perf_counter()
        await _replay(conn, built, target)
        await _write_shadow(conn, built, fresh=True)
        replayed = time.perf_counter()
        await _fold_again(conn, expected, target)
        await _verify(conn, expected, touched=None)
        verified = time.perf_counter()
        async with conn.transaction():
            await tally_store.lock(conn)
            now = await tally_store.checkpoint(conn, PROJECTION)
            if now != target:  # the live projector went on: fold its rows into both folds too
                for fold in (expected, built):
                    fold.tally.dirty_buckets.clear()
                    fold.tally.dirty_voters.clear()
                await _replay(conn, built, now)
                await _fold_again(conn, expected, now)
                touched = built.tally.dirty_voters | expected.tally.dirty_voters
                await _write_shadow(conn, built, fresh=False)
                await _verify(conn, expected, touched=touched)
            for table, names in columns.items():
                await conn.execute(f"DELETE FROM public.{table} WHERE meeting_id = $1", meeting_id)
                await conn.execute(
                    f"INSERT INTO public.{table} ({names}) SELECT {names}"
                    f" FROM {SHADOW_SCHEMA}.{table} WHERE meeting_id = $1",
                    meeting_id,
                )
            # A meeting the projector had given up on (projection_failures) is whole again: the
            # projector, reloading for the new generation, follows it from the checkpoint on.
            if await tally_store.clear_failure(conn, PROJECTION, meeting_id):
                log.warning("rebuilt %s: its projection failure is cleared; the projector follows it again", meeting_id)
            await tally_store.bump_generation(conn, PROJECTION)
        swapped = time.perf_counter()
        log.info(
            "rebuilt %s: %d rows replayed into the shadow tables in %.2f s, checked in %.2f s, swapped in"
            " %.2f s (the checkpoint moved by %d meanwhile)",
            meeting_id,
            built.rows,
            replayed - started,
            verified - replayed,
            swapped - verified,
            now - target,
        )
        async with conn.transaction():  # the shadow rows served their purpose; a failed run keeps them
            await _in_shadow(conn)
            await tally_store.delete_meeting(conn, meeting_id)
        return built.rows
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _REBUILD_LOCK, meeting_id)


async def _shadow_columns(conn: asyncpg.Connection, meeting_id: str) -> dict[str, str]:
    """Each tally table's column list, once it is sure every shadow mirrors its live table."""
    columns = {}
    for table in _TABLES:
        live, shadow = [
            sorted(
                tuple(r)
                for r in await conn.fetch(
                    "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
                    " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                    f"{schema}.{table}",
                )
            )
            for schema in ("public", SHADOW_SCHEMA)
        ]
        if not shadow:
            raise RebuildRefused(meeting_id, [f"no {SHADOW_SCHEMA}.{table}: run `vote-ledger db migrate`"])
        if live != shadow:
            # Copying would drop or mistype a column: a migration changed one table without the other.
            raise RebuildRefused(
                meeting_id, [f"{SHADOW_SCHEMA}.{table} does not mirror public.{table} (see 007_least_privilege.sql)"]
            )
        columns[table] = ", ".join(f'"{name}"' for name, _, _ in live)
    return columns


async def _in_shadow(conn: asyncpg.Connection) -> None:
    """Point this transaction's unqualified table names at the shadow tables."""
    # Only them, not public as well: a table without a shadow then fails loudly, it is not written live.
    await conn.execute("SELECT set_config('search_path', $1, true)", SHADOW_SCHEMA)


async def replay_meeting(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> tuple[Tally, int]:
    """A meeting's tally folded from the start of the log up to a position, and the rows read."""
    fold = _Fold(meeting_id)
    await _replay(conn, fold, up_to)
    return fold.tally, fold.rows


async def _replay(conn: asyncpg.Connection, fold: _Fold, up_to: int) -> None:
    """Fold the meeting's log rows after fold.last up to a position, in batches; count contributions once."""
    after = fold.last
    with _gc_paused():
        while rows := [
            r
            for r in await log_store.read_after(conn, after, REPLAY_BATCH, meeting_id=fold.meeting_id)
            if r["position"] <= up_to
        ]:
            fold.projection.apply_many(
                [decode_logged(r["payload"]) for r in rows if r["decision"] == "accepted"], settle=False
            )
            fold.rows += len(rows)
            after = rows[-1]["position"]
        fold.projection.settle()
    if after != fold.last:
        fold.last = after
        await refold_late(conn, fold.projection, after)


async def _fold_again(conn: asyncpg.Connection, fold: _Fold, up_to: int) -> None:
    """The check's fold: another read of the log (a cursor), folded in other batches than _replay's."""
    after = fold.last
    with _gc_paused():
        async with conn.transaction():  # a cursor needs one; rows up to a checkpoint never change
            cursor = await conn.cursor(_MEETING_ROWS, fold.meeting_id, after, up_to)
            # Batch bounds unlike _replay's (30,011 is prime), and settled every batch as the projector
            # does, not once at the end as _replay: a fold depending on either shows.
            while rows := await cursor.fetch(30_011):
                fold.projection.apply_many([decode_logged(r["payload"]) for r in rows if r["decision"] == "accepted"])
                fold.rows += len(rows)
                fold.last = rows[-1]["position"]
    if fold.last != after:
        await refold_late(conn, fold.projection, fold.last)


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
    """Write the fold's changed rows to the shadow tables with the projector's own writer."""
    tally = fold.tally
    async with conn.transaction():
        saved = await conn.fetchval("SELECT current_setting('search_path')")
        await _in_shadow(conn)
        if fresh:
            await tally_store.delete_meeting(conn, fold.meeting_id)
            tally.dirty_buckets.update(tally.buckets)
            tally.dirty_voters.update(tally.voters)
        elif tally.dirty_voters:
            # A refold can drop an over-vote rejection (R17); the writer only ever adds them.
            await conn.execute(
                "DELETE FROM tally_overvote_rejections WHERE meeting_id = $1 AND control_number = ANY($2::text[])",
                fold.meeting_id,
                sorted(tally.dirty_voters),
            )
        await tally_store.save_changes(conn, tally, fold.last)
        await conn.execute("SELECT set_config('search_path', $1, true)", saved)


async def _verify(conn: asyncpg.Connection, expected: _Fold, touched: set[str] | None) -> None:
    """Compare the shadow rows with a fold: everything, or (touched) the voters changed since the last check."""
    meeting_id, tally, problems = expected.meeting_id, expected.tally, []
    row = await conn.fetchrow(
        f"SELECT present, present_count, events_applied, as_of_position"
        f" FROM {SHADOW_SCHEMA}.tally_meetings WHERE meeting_id = $1",
        meeting_id,
    )
    want = (tally.present, tally.present_count, tally.events_applied, expected.last)
    if row is None or tuple(row) != want:
        problems.append(f"meeting row {None if row is None else tuple(row)}, expected {want}")
    buckets = {
        (b["item_id"], b["option"], b["nominee"]): b["shares"]
        for b in await conn.fetch(
            f"SELECT item_id, option, nominee, shares FROM {SHADOW_SCHEMA}.tally_buckets WHERE meeting_id = $1",
            meeting_id,
        )
    }
    for key in sorted(set(buckets) | set(tally.buckets)):
        if buckets.get(key, 0) != tally.buckets.get(key, 0):
            problems.append(f"bucket {'/'.join(key)}: {buckets.get(key, 0):,}, expected {tally.buckets.get(key, 0):,}")
    rejections = {
        tuple(r)
        for r in await conn.fetch(
            f"SELECT event_id, item_id, nominee, control_number FROM {SHADOW_SCHEMA}.tally_overvote_rejections"
            " WHERE meeting_id = $1",
            meeting_id,
        )
    }
    if rejections != {
        (e, i, tally.meeting.positions[n].nominee or "", n)
        for n, state in tally.voters.items()
        for e, i in state.overvote_rejected
    }:
        problems.append("over-vote rejections differ")
    count = await conn.fetchval(f"SELECT count(*) FROM {SHADOW_SCHEMA}.tally_voters WHERE meeting_id = $1", meeting_id)
    if count != len(tally.voters):
        problems.append(f"{count:,} voters, expected {len(tally.voters):,}")
    async with conn.transaction():  # a cursor needs one
        sql = f"SELECT control_number, state FROM {SHADOW_SCHEMA}.tally_voters WHERE meeting_id = $1"
        args = (meeting_id,) if touched is None else (meeting_id, sorted(touched))
        async for voter in conn.cursor(
            sql + ("" if touched is None else " AND control_number = ANY($2::text[])"), *args, prefetch=5_000
        ):
            if _state_decoder.decode(voter["state"]) != tally.voters.get(voter["control_number"]):
                problems.append(f"voter {voter['control_number']}")
                if len(problems) >= 20:
                    break
    if problems:
        raise RebuildRefused(meeting_id, [*problems, f"shadow rows kept in {SHADOW_SCHEMA} for inspection"])

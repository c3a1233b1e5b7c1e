"""The tally tables' shadows (schema tally_shadow, 007_least_privilege.sql), where `projections rebuild` builds.

A rebuild writes a meeting's rows there with the projector's own writer (tally_store.save_changes,
under ``in_shadow``), checks them, then swaps them over the live rows in one transaction.
"""

from __future__ import annotations

import asyncpg
import msgspec
from asyncpg.cursor import CursorFactory

from projections.fold import Tally, VoterState

SHADOW_SCHEMA = "tally_shadow"
TABLES = ("tally_meetings", "tally_buckets", "tally_voters", "tally_overvote_rejections")
# Any constant: with hashtext(meeting_id), the session lock of one meeting's rebuild.
_REBUILD_LOCK = 0x766F7465  # "vote"
# The projector's writer (tally_store.save_changes) encodes states with a default msgspec JSON encoder too:
# the shadow's rows are the text the projector would have written.
_state_encoder = msgspec.json.Encoder()


async def lock_meeting(conn: asyncpg.Connection, meeting_id: str) -> None:
    """Take the session lock of one meeting's rebuild: rebuilds of a meeting share its shadow rows."""
    await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _REBUILD_LOCK, meeting_id)


async def unlock_meeting(conn: asyncpg.Connection, meeting_id: str) -> None:
    """Release the lock lock_meeting took."""
    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _REBUILD_LOCK, meeting_id)


async def table_columns(
    conn: asyncpg.Connection, table: str
) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str, bool]]]:
    """(name, type, not null) of a table's columns, sorted: the live table's, then its shadow's (empty if none)."""
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
    return live, shadow


async def swap_in(conn: asyncpg.Connection, meeting_id: str, columns: dict[str, str]) -> None:
    """Replace the meeting's live rows by its shadow rows, table by table (call it under the writers' lock)."""
    for table, names in columns.items():
        await conn.execute(f"DELETE FROM public.{table} WHERE meeting_id = $1", meeting_id)
        await conn.execute(
            f"INSERT INTO public.{table} ({names}) SELECT {names} FROM {SHADOW_SCHEMA}.{table} WHERE meeting_id = $1",
            meeting_id,
        )


def state_text(state: VoterState) -> str:
    """A voter's state as the tally_voters.state text both writers store (``json`` keeps the text as sent)."""
    return _state_encoder.encode(state).decode()


async def copy_meeting(conn: asyncpg.Connection, tally: Tally, as_of_position: int) -> None:
    """Write a whole meeting into its (emptied) shadow rows, COPYing buckets, refusals and voters.

    A rebuild writes every row of the meeting at once: COPY took 2.5-3.8 s where the projector's
    upsert of the same 82,000 voters (unnest ... ON CONFLICT, built for a batch's few changed rows)
    took 4.6-6.1 s (300k-row bench log, same session). The rows are the ones save_changes would write.
    """
    meeting_id = tally.meeting.meeting_id
    await conn.execute(
        f"INSERT INTO {SHADOW_SCHEMA}.tally_meetings (meeting_id, present, present_count, events_applied,"
        " as_of_position) VALUES ($1, $2, $3, $4, $5)",
        meeting_id,
        tally.present,
        tally.present_count,
        tally.events_applied,
        as_of_position,
    )
    numbers = sorted(tally.voters)
    refused: dict[str, tuple[str, str, str, str, str]] = {}  # by event id, the first kept: as ON CONFLICT DO NOTHING
    for n in numbers:
        for event_id, item_id in tally.voters[n].overvote_rejected:
            refused.setdefault(event_id, (meeting_id, event_id, item_id, tally.meeting.positions[n].nominee or "", n))
    copies = (
        (
            "tally_buckets",
            ["meeting_id", "item_id", "option", "nominee", "shares"],
            [(meeting_id, *key, shares) for key, shares in sorted(tally.buckets.items()) if shares],
        ),
        (
            "tally_overvote_rejections",
            ["meeting_id", "event_id", "item_id", "nominee", "control_number"],
            list(refused.values()),
        ),
        (
            "tally_voters",
            ["meeting_id", "control_number", "state"],
            [(meeting_id, n, state_text(tally.voters[n])) for n in numbers],
        ),
    )
    for table, columns, records in copies:
        if records:
            await conn.copy_records_to_table(table, schema_name=SHADOW_SCHEMA, columns=columns, records=records)


async def in_shadow(conn: asyncpg.Connection) -> None:
    """Point this transaction's unqualified table names at the shadow tables."""
    # Only them, not public as well: a table without a shadow then fails loudly, it is not written live.
    await conn.execute("SELECT set_config('search_path', $1, true)", SHADOW_SCHEMA)


async def search_path(conn: asyncpg.Connection) -> str:
    """This transaction's search_path, to restore after in_shadow."""
    return await conn.fetchval("SELECT current_setting('search_path')")


async def restore_search_path(conn: asyncpg.Connection, saved: str) -> None:
    """Set this transaction's search_path back to what search_path returned."""
    await conn.execute("SELECT set_config('search_path', $1, true)", saved)


async def drop_rejections_of(conn: asyncpg.Connection, meeting_id: str, control_numbers: list[str]) -> None:
    """Delete these voters' over-vote rejections from the tables in the search path (the shadow's)."""
    await conn.execute(
        "DELETE FROM tally_overvote_rejections WHERE meeting_id = $1 AND control_number = ANY($2::text[])",
        meeting_id,
        control_numbers,
    )


async def meeting_row(conn: asyncpg.Connection, meeting_id: str) -> tuple[int, int, int, int] | None:
    """The shadow's (present, present_count, events_applied, as_of_position) of the meeting; None if absent."""
    row = await conn.fetchrow(
        f"SELECT present, present_count, events_applied, as_of_position"
        f" FROM {SHADOW_SCHEMA}.tally_meetings WHERE meeting_id = $1",
        meeting_id,
    )
    return None if row is None else tuple(row)


async def buckets(conn: asyncpg.Connection, meeting_id: str) -> dict[tuple[str, str, str], int]:
    """The shadow's shares per (item, option, nominee) of the meeting."""
    rows = await conn.fetch(
        f"SELECT item_id, option, nominee, shares FROM {SHADOW_SCHEMA}.tally_buckets WHERE meeting_id = $1",
        meeting_id,
    )
    return {(b["item_id"], b["option"], b["nominee"]): b["shares"] for b in rows}


async def rejections(conn: asyncpg.Connection, meeting_id: str) -> set[tuple[str, str, str, str]]:
    """The shadow's (event_id, item_id, nominee, control_number) over-vote rejections of the meeting."""
    return {
        tuple(r)
        for r in await conn.fetch(
            f"SELECT event_id, item_id, nominee, control_number FROM {SHADOW_SCHEMA}.tally_overvote_rejections"
            " WHERE meeting_id = $1",
            meeting_id,
        )
    }


async def voter_count(conn: asyncpg.Connection, meeting_id: str) -> int:
    """How many voters of the meeting the shadow holds."""
    return await conn.fetchval(f"SELECT count(*) FROM {SHADOW_SCHEMA}.tally_voters WHERE meeting_id = $1", meeting_id)


def voter_states(conn: asyncpg.Connection, meeting_id: str, only: list[str] | None = None) -> CursorFactory:
    """(control_number, state) of the shadow's voters of the meeting (``only`` these, if given); in a transaction."""
    sql = f"SELECT control_number, state FROM {SHADOW_SCHEMA}.tally_voters WHERE meeting_id = $1"
    if only is None:
        return conn.cursor(sql, meeting_id, prefetch=5_000)
    return conn.cursor(sql + " AND control_number = ANY($2::text[])", meeting_id, only, prefetch=5_000)

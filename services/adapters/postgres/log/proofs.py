"""The rows the meetings' Merkle trees are built from (projections/merkle.py, projections/receipts.py).

A meeting's tree has a leaf per row in position order, its data the row's chain hash: the published
heads keep a frontier per meeting fed from ``hashes_between``; a proof reads a meeting's hashes
(``meeting_hashes``) and the few rows it proves in full (``CHAIN_COLUMNS``).
"""

from __future__ import annotations

import asyncpg
from asyncpg.cursor import CursorFactory

# A row read with CHAIN_COLUMNS becomes a ChainRow as `audit verify` makes one: the same function.
from services.adapters.postgres.log.verify import chain_row as chain_row

# Every column the chain hash covers (v1-v3), and the control number lineage needs.
CHAIN_COLUMNS = (
    "position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload, hash,"
    " chain_version, recorded_at, source_topic, source_partition, source_offset, appended_at, control_number"
)


# The types of projections.receipts.MEETING_RULES_TYPES as an SQL list (meeting_rules_rows).
RULES_TYPES_SQL = (
    "('meeting.scheduled', 'polls.closed', 'meeting.adjourned', 'meeting.cutoff_changed', 'meeting.corrected')"
)


def hashes_between(conn: asyncpg.Connection, after: int, up_to: int) -> CursorFactory:
    """(meeting_id, hash) of every row in (after, up_to], streamed in position order: a primary key range scan.

    Call it in a transaction. A starting ledger reads the whole log this way to rebuild its frontiers.
    """
    return conn.cursor(
        "SELECT meeting_id, hash FROM ledger_log WHERE position > $1 AND position <= $2 ORDER BY position",
        after,
        up_to,
        prefetch=10_000,
    )


def meeting_hashes(conn: asyncpg.Connection, meeting_id: str, rows: int | None = None) -> CursorFactory:
    """(position, hash) of the meeting's first ``rows`` rows (all if None), streamed in position order.

    Call it in a transaction. Index (meeting_id, position), then the heap for the hash.
    """
    return conn.cursor(
        "SELECT position, hash FROM ledger_log WHERE meeting_id = $1 ORDER BY position LIMIT $2",
        meeting_id,
        rows,
        prefetch=10_000,
    )


async def rows_of_event(conn: asyncpg.Connection, event_id: str, meeting_id: str | None) -> list[asyncpg.Record]:
    """Every row logged under an event id (accepted at most once per meeting, and rejections), in log order."""
    return await conn.fetch(
        f"SELECT {CHAIN_COLUMNS} FROM ledger_log WHERE event_id = $1 AND ($2::text IS NULL OR meeting_id = $2)"
        " ORDER BY position",
        event_id,
        meeting_id,
    )


async def control_number_rows(
    conn: asyncpg.Connection, meeting_id: str, control_number: str, up_to: int
) -> list[asyncpg.Record]:
    """Every row of one control number up to a position, in log order, with every column its hash covers."""
    return await conn.fetch(
        f"SELECT {CHAIN_COLUMNS} FROM ledger_log WHERE meeting_id = $1 AND control_number = $2 AND position <= $3"
        " ORDER BY position",
        meeting_id,
        control_number,
        up_to,
    )


async def meeting_rules_rows(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """The meeting's accepted rows a receipt carries (projections.receipts.MEETING_RULES_TYPES) up to a position.

    In log order: meeting.scheduled, polls.closed and the amendments (cut-offs, corrections, adjournments).
    """
    # Literal types, all within ledger_log_admin_rows' predicate (migration 016), so the planner sees that
    # index serves; tests/unit/test_receipts.py checks they are MEETING_RULES_TYPES.
    return await conn.fetch(
        f"SELECT {CHAIN_COLUMNS} FROM ledger_log WHERE type IN {RULES_TYPES_SQL}"
        " AND meeting_id = $1 AND decision = 'accepted' AND position <= $2 ORDER BY position",
        meeting_id,
        up_to,
    )

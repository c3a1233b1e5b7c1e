"""The log rows the ledger's refusal fold (projections.refusals.RefusalFold) is kept from: `reject` meetings only."""

from __future__ import annotations

import asyncpg

from events import JUDGE_TAGS, VoteReinstated, decode_logged
from services.adapters.postgres.log.reads import EVENT_COLUMNS

# What the fold reads back: the rows a judge is rebuilt from (meeting administration, substitutions), the
# submissions it counts, and the ledger's own rows (R19): the refusals logged and their withdrawals, which
# say what is in force. A channel's vote.refused or vote.reinstated is rejected reserved_type, never these.
_FOLDED_TYPES = [*JUDGE_TAGS, "vote.cast", "vote.revoked"]


async def folded_rows(conn: asyncpg.Connection, meeting_ids: list[str], after: int) -> list[asyncpg.Record]:
    """(position, payload) of the rows the refusal fold takes for these meetings, after a position, in log order.

    One range probe of ledger_log_meeting_position per meeting: a ledger alone on the log finds none
    past its own last append, so the per-batch cost is one round trip, and only with `reject` meetings.
    """
    if not meeting_ids:
        return []
    return await conn.fetch(
        "SELECT l.position, l.payload FROM unnest($1::text[]) AS m(id) CROSS JOIN LATERAL"
        " (SELECT position, payload FROM ledger_log WHERE meeting_id = m.id AND position > $2"
        " AND ((decision = 'accepted' AND type = ANY($3::text[])) OR " + _LEDGER_ROWS + ")) AS l"
        " ORDER BY l.position",
        meeting_ids,
        after,
        _FOLDED_TYPES,
    )


# The ledger's rows (projections.refusals.is_ledger_row): a refusal is rejected over_entitlement, its
# withdrawal accepted; neither came from Kafka.
_LEDGER_ROWS = (
    "(source_topic IS NULL AND ((type = 'vote.refused' AND decision = 'rejected' AND reason = 'over_entitlement')"
    " OR (type = 'vote.reinstated' AND decision = 'accepted')))"
)


async def refusal_payloads(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[str]:
    """The payloads of a meeting's refusal rows in force up to a position, in log order (none withdrawn since)."""
    rows = await conn.fetch(
        "SELECT type, payload FROM ledger_log WHERE meeting_id = $1 AND position <= $2 AND "
        + _LEDGER_ROWS
        + " ORDER BY position",
        meeting_id,
        up_to,
    )
    in_force: dict[str, str] = {}  # refused row's event id -> its payload
    for row in rows:
        event = decode_logged(row["payload"])
        if isinstance(event, VoteReinstated):
            in_force.pop(event.withdrawn_event_id, None)
        else:
            in_force[event.event_id] = row["payload"]
    return list(in_force.values())


async def accepted_submissions(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """EVENT_COLUMNS of a meeting's accepted votes and revocations up to a position, in log order: a recount's."""
    return await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM ledger_log WHERE meeting_id = $1 AND position <= $2 AND decision = 'accepted'"
        " AND type IN ('vote.cast', 'vote.revoked') ORDER BY position",
        meeting_id,
        up_to,
    )

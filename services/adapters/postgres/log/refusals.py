"""The log rows the ledger's refusal fold (projections.refusals.RefusalFold) is kept from: `reject` meetings only."""

from __future__ import annotations

import asyncpg

from events import JUDGE_TAGS

# What the fold reads back: the rows a judge is rebuilt from (meeting administration, substitutions) and
# the submissions it counts. Refusal rows are rejected, so never among them.
_FOLDED_TYPES = [*JUDGE_TAGS, "vote.cast", "vote.revoked"]


async def folded_rows(conn: asyncpg.Connection, meeting_ids: list[str], after: int) -> list[asyncpg.Record]:
    """(position, payload) of these meetings' accepted rows the refusal fold takes, after a position, in log order.

    One range probe of ledger_log_meeting_position per meeting: a ledger alone on the log finds none
    past its own last append, so the per-batch cost is one round trip, and only with `reject` meetings.
    """
    if not meeting_ids:
        return []
    return await conn.fetch(
        "SELECT l.position, l.payload FROM unnest($1::text[]) AS m(id) CROSS JOIN LATERAL"
        " (SELECT position, payload FROM ledger_log WHERE meeting_id = m.id AND position > $2"
        " AND decision = 'accepted' AND type = ANY($3::text[])) AS l ORDER BY l.position",
        meeting_ids,
        after,
        _FOLDED_TYPES,
    )


async def refusal_payloads(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[str]:
    """The payloads of a meeting's refusal rows (the ledger's: over_entitlement, no Kafka source) up to a position."""
    return [
        r["payload"]
        for r in await conn.fetch(
            "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND position <= $2 AND type = 'vote.refused'"
            " AND decision = 'rejected' AND reason = 'over_entitlement' AND source_topic IS NULL ORDER BY position",
            meeting_id,
            up_to,
        )
    ]

"""Read side of the reports: the final report with its log digest, over-votes, rejections."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from events import decode_logged
from projections.digest import LogDigest
from projections.overvotes import with_refusals
from projections.report import final_report
from services.adapters.postgres.log import heads as log_heads
from services.adapters.postgres.log import history as log_history
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log import refusals as log_refusals
from services.read.meeting import require_logged
from services.read.tallies import read_counted, read_counted_in_snapshot

CHUNK_ROWS = 10_000


async def log_digest(conn: asyncpg.Connection, meeting_id: str, position: int, chunk: int = CHUNK_ROWS) -> str:
    """SHA-256 over the meeting's log rows up to ``position``, streamed (call it in a transaction)."""
    digest = LogDigest(up_to=position)
    cursor = await log_reads.digest_rows(conn, meeting_id, position)
    while rows := await cursor.fetch(chunk):
        digest.update(rows)
    return digest.hexdigest()


async def read_final_report(conn: asyncpg.Connection, meeting_id: str, preliminary: bool = False) -> dict[str, Any]:
    """The final report, its tally, register and digest read at the same checkpoint in one snapshot.

    Whether a report of an incomplete register may be given is the caller's decision (report final
    refuses it unless asked for a preliminary one); the report always says how complete it is.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        counted = await read_counted_in_snapshot(conn, meeting_id)
        # The projector commits its checkpoint only after reading every row below it, and positions
        # are gapless, so the log prefix hashed here is exactly the one the tally folded.
        digest = await log_digest(conn, meeting_id, counted["position"])
        heads = await log_heads.meeting_heads(conn, [meeting_id], counted["position"])
    # Where the meeting's chain stood at the tally's position (no hash before chaining began).
    chain = f"{heads[0]['position']}:{bytes(heads[0]['hash']).hex()}" if heads and heads[0]["hash"] else None
    report = final_report(
        counted["spec"],  # as amended at the tally's position (services/read/amendments.py)
        counted["present"],
        counted["totals"],
        counted["overvotes"],
        counted["position"],
        digest,
        chain,
        register=counted["register"],
        preliminary=preliminary,
    )
    if counted["meeting"]["amended"]:  # an unamended meeting's report is unchanged
        report["as_amended"] = {k: counted["meeting"][k] for k in ("original_meeting_at", "amendments")}
    return report


async def over_vote_report(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """Each nominee over its entitlement on an item (R17): voted and counted per option, refused ids."""
    counted = await read_counted(conn, meeting_id)
    over_votes = [dataclasses.asdict(o) for o in counted["overvotes"]]
    if counted["spec"].overvote_policy == "reject":  # the attempted totals, from the ledger's refusal rows (R19)
        payloads = await log_refusals.refusal_payloads(conn, meeting_id, counted["position"])
        over_votes = with_refusals(over_votes, [decode_logged(p) for p in payloads])
    return {
        "meeting_id": meeting_id,
        "as_of_position": counted["position"],
        "policy": counted["spec"].overvote_policy,
        "over_votes": over_votes,
        "register": counted["register"].as_dict(),  # an incomplete register: entitlements may be missing too
    }


async def rejection_report(conn: asyncpg.Connection, meeting_id: str, examples: int = 3) -> dict[str, Any]:
    """Rejected rows of a meeting per reason code, with the first ``examples`` of each; parked count."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_logged(conn, meeting_id)
        head = await log_reads.head(conn)
        counts = await log_history.rejection_counts(conn, meeting_id)
        rows = await log_history.rejection_examples(conn, meeting_id, examples)
        # Parked messages could not be decoded, so nothing says which meeting they belong to.
        parked = await log_history.parked_count(conn)
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_reason.setdefault(r["reason"], []).append(
            {
                "position": r["position"],
                "event_id": r["event_id"],
                "control_number": r["control_number"],
                "channel": r["channel"],
                "received_at": r["received_at"].isoformat() if r["received_at"] else None,
            }
        )
    return {
        "meeting_id": meeting_id,
        "as_of_position": head,
        "rejected": sum(r["n"] for r in counts),
        "reasons": [
            {"reason": r["reason"], "count": r["n"], "examples": by_reason.get(r["reason"], [])} for r in counts
        ],
        "parked_overall": parked,
    }

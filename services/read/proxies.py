"""Read side of R13: who holds each proxy (from the log) and what they vote (from the tally projection)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from events import VoteCast, decode
from projections.fold import VoterState, effective
from projections.judge import Judge
from projections.meeting import Meeting
from projections.proxies import Link, ProxyBook
from services.adapters.postgres import tally_store
from services.read.tallies import UnknownMeeting
from services.runtime.projector import PROJECTION

_voter_decoder = msgspec.json.Decoder(VoterState)


async def read_proxies(conn: asyncpg.Connection, meeting_id: str, as_of: datetime | None = None) -> dict[str, Any]:
    """The proxy report of a meeting at ``as_of`` (None: now), read in one consistent snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        judge = Judge()
        # Literal types so the planner can use the partial index ledger_log_admin_rows.
        for row in await conn.fetch(
            "SELECT payload FROM ledger_log WHERE type IN ('meeting.scheduled', 'positions.recorded',"
            " 'polls.closed', 'proxy.substituted') AND decision = 'accepted' AND meeting_id = $1"
            " ORDER BY position",
            meeting_id,
        ):
            judge.apply_accepted(decode(row["payload"]))
        if meeting_id not in judge.meetings:
            raise UnknownMeeting(meeting_id)
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")
        checkpoint = await tally_store.checkpoint(conn, PROJECTION)
        voters = await conn.fetch("SELECT control_number, state FROM tally_voters WHERE meeting_id = $1", meeting_id)
    instructions = ((v["control_number"], effective(_voter_decoder.decode(v["state"]))) for v in voters)
    report = proxy_report(judge.meetings[meeting_id], judge.proxies[meeting_id], instructions, as_of)
    report["log_position"], report["votes_as_of_position"] = head, checkpoint
    return report


def proxy_report(
    meeting: Meeting,
    book: ProxyBook,
    instructions: Iterable[tuple[str, VoteCast | None]],
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Join the holders at ``as_of`` with the effective instructions: what each holder votes."""
    default, exceptions = book.holder_sets(as_of)
    groups: Counter[frozenset[str]] = Counter()
    group_shares: Counter[frozenset[str]] = Counter()
    for control_number, vote in instructions:
        position = meeting.positions.get(control_number)
        # A ballot at the meeting is the holder voting in person, not through a proxy (R6).
        if vote is None or vote.channel == "in_person" or position is None:
            continue
        holders = exceptions.get(control_number, default)
        groups[holders] += 1
        group_shares[holders] += vote.shares if vote.shares is not None else position.shares  # R2
    per_holder: dict[str, list[int]] = {}
    for holders, count in groups.items():
        for holder in holders:  # each joint holder may vote the proxy alone, so each counts it
            totals = per_holder.setdefault(holder, [0, 0])
            totals[0] += count
            totals[1] += group_shares[holders]
    holdings = book.holdings(as_of)
    rows = []
    for holder in set(holdings) | set(per_holder):
        held = holdings.get(holder)
        count, shares = per_holder.get(holder, (0, 0))
        rows.append(
            {
                "holder": holder,
                "holds_since": held.since.isoformat() if held and held.since else None,
                "appointed_by": list(held.appointed_by) if held else [],
                "control_numbers": count,
                "shares": shares,
            }
        )
    rows.sort(key=lambda r: (-r["shares"], -r["control_numbers"], r["holder"]))
    links = book.links(as_of)
    return {
        "meeting_id": meeting.meeting_id,
        "as_of": as_of.isoformat() if as_of else None,
        "named_proxies": list(book.named_proxies),
        "holders": rows,
        "joint_holdings": sorted(
            ({"holders": sorted(h), "control_numbers": n, "shares": group_shares[h]} for h, n in groups.items()),
            key=lambda g: (-g["shares"], g["holders"]),
        ),
        "proxies_voted": {"control_numbers": sum(groups.values()), "shares": sum(group_shares.values())},
        "substitutions": [_link(link) for link in links],
        "chains": {named: [link.event_id for link in chain] for named, chain in book.chains(as_of).items()},
    }


def _link(link: Link) -> dict[str, Any]:
    return {
        "proxy_holder": link.proxy_holder,
        "substitute": link.substitute,
        "executed_at": link.executed_at.isoformat(),
        "event_id": link.event_id,
        "control_numbers": list(link.control_numbers) if link.control_numbers is not None else None,
        "effective": link.effective,
        "lineage": sorted(link.lineage),
    }

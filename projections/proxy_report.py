"""The proxy report of R13: who holds each proxy at a time, and what each holder votes. Pure, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from events import VoteCast
from projections.meeting import Meeting
from projections.proxies import Link, ProxyBook


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
    rows: list[dict[str, Any]] = []
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
        # R13 decided over the set in R5 order: accepted substitutions that changed nothing, with why.
        "without_effect": sum(not link.effective for link in links),
        "chains": {named: [link.event_id for link in chain] for named, chain in book.chains(as_of).items()},
    }


def _link(link: Link) -> dict[str, Any]:
    """One substitution link as plain data."""
    return {
        "proxy_holder": link.proxy_holder,
        "substitute": link.substitute,
        "executed_at": link.executed_at.isoformat(),
        "event_id": link.event_id,
        "control_numbers": list(link.control_numbers) if link.control_numbers is not None else None,
        "effective": link.effective,
        "why": link.why,  # None: it did all it named; else why it had no effect, or only part of it
        "not_held": list(link.not_held),
        "lineage": sorted(link.lineage),
    }

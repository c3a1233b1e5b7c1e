"""Over-votes (R17): nominees voting more shares on an item than their DTC entitlement. Pure.

Under `prorate` (the default) each such nominee's votes on the item are reduced proportionally to
its entitlement in whole shares by the largest-remainder method (ties to the option listed first);
under `reject` the rules engine already refused the instruction that caused the excess
(projections.fold), so counted equals voted and the report lists the refused instructions, with the
totals each would have taken the nominee to (the ledger's vote.refused rows, R19: with_refusals).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events import MeetingScheduled, VoteRefused
from projections.contribution import BROKER_NON_VOTE, REGISTERED

Buckets = Mapping[tuple[str, str, str], int]


@dataclass(frozen=True)
class OverVote:
    """One nominee over its entitlement on one item: what it voted and what is counted."""

    nominee: str
    item_id: str
    entitlement: int
    voted: dict[str, int]
    counted: dict[str, int]
    policy: str
    rejected: list[str] = field(default_factory=list)  # event ids refused under `reject`


def prorate(votes: Mapping[str, int], options: list[str], limit: int) -> dict[str, int]:
    """Scale votes down to ``limit`` shares in total: floors, then largest remainders."""
    total = sum(votes.values())
    if total <= limit:
        return dict(votes)
    counted = {o: votes[o] * limit // total for o in votes}
    remainders = sorted(votes, key=lambda o: (-(votes[o] * limit % total), options.index(o)))
    for option in remainders[: limit - sum(counted.values())]:
        counted[option] += 1
    return counted


def counted_totals(
    spec: MeetingScheduled,
    entitlements: Mapping[str, int],
    buckets: Buckets,
    rejected: Mapping[tuple[str, str], list[str]] | None = None,
) -> tuple[dict[str, dict[str, int]], list[OverVote]]:
    """Per-item totals after R17, and the over-vote report (voted vs counted, per nominee)."""
    per_nominee: dict[tuple[str, str], dict[str, int]] = {}
    totals: dict[str, dict[str, int]] = {item.id: {} for item in spec.items}
    for (item_id, option, nominee), shares in buckets.items():
        if option == BROKER_NON_VOTE or nominee == REGISTERED:
            per_item = totals.setdefault(item_id, {})
            per_item[option] = per_item.get(option, 0) + shares
        else:
            per_nominee.setdefault((item_id, nominee), {})[option] = shares
    options = {item.id: item.options for item in spec.items}
    report: list[OverVote] = []
    for (item_id, nominee), unordered in sorted(per_nominee.items()):
        # The item's option order, not the buckets' (their SQL has no ORDER BY; heap order follows
        # the update history, so two runs of the same votes listed "for" and "against" swapped).
        votes = dict(sorted(unordered.items(), key=lambda kv: _rank(options[item_id], kv[0])))
        limit = entitlements.get(nominee)
        voted = sum(votes.values())
        counted = votes
        if limit is not None and voted > limit and spec.overvote_policy == "prorate":
            counted = prorate(votes, options[item_id], limit)
            report.append(OverVote(nominee, item_id, limit, dict(votes), counted, "prorate"))
        for option, shares in counted.items():
            per_item = totals.setdefault(item_id, {})
            per_item[option] = per_item.get(option, 0) + shares
    for (nominee, item_id), event_ids in sorted((rejected or {}).items()):
        limit = entitlements.get(nominee, 0)
        unordered = per_nominee.get((item_id, nominee), {})
        votes = dict(sorted(unordered.items(), key=lambda kv: _rank(options.get(item_id, []), kv[0])))
        report.append(OverVote(nominee, item_id, limit, dict(votes), dict(votes), "reject", list(event_ids)))
    return totals, report


def _rank(options: list[str], option: str) -> tuple[int, str]:
    """Sort key: the option's place on the ballot (an option not listed goes last, by name)."""
    return (options.index(option), "") if option in options else (len(options), option)


def with_refusals(over_votes: list[dict[str, Any]], refusals: Iterable[VoteRefused]) -> list[dict[str, Any]]:
    """The over-vote report's `reject` entries with what was attempted, from the log's refusal rows (R17, R19).

    Each entry gains ``refusals`` (per refused instruction, in log order: the nominee's votes on the item
    with it, ``attempted``, and without it, ``counted``) and ``attempted``: the largest of those totals, what
    the nominee's instructions tried to vote (``counted`` is what counts). `prorate` entries are left as they
    are: there, ``voted`` already is what was attempted.
    """
    by_item: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for refusal in refusals:
        by_item.setdefault((refusal.nominee, refusal.item), []).append(
            {
                "event_id": refusal.refused_event_id,
                "control_number": refusal.control_number,
                "attempted": refusal.attempted,
                "counted": refusal.counted,
            }
        )
    out = []
    for entry in over_votes:
        if entry["policy"] == "reject":
            mine = by_item.get((entry["nominee"], entry["item_id"]), [])
            entry = {**entry, "attempted": max((r["attempted"] for r in mine), default=None), "refusals": mine}
        out.append(entry)
    return out

"""What `meeting show` prints: a meeting's summary, its synthetic register and simulated campaign."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from events import MeetingScheduled, Position, ProxySubstituted, VoteRevoked
from services.read.renderings import meeting_summary as meeting_summary  # shared with the API

if TYPE_CHECKING:
    from services.devtools.demo.spec import SimulationSpec


def describe(
    meeting: MeetingScheduled, positions: list[Position], entitlements: dict[str, int], sim: SimulationSpec
) -> dict[str, Any]:
    """A summary of a spec: the meeting, register composition per kind and nominee, the campaign."""
    from services.devtools.demo.register import nominee_books
    from services.devtools.demo.traffic import generate

    kinds: Counter = Counter()
    shares: Counter = Counter()
    for p in positions:
        kind = "joint" if len(p.holders) > 1 else p.kind
        kinds[kind] += 1
        shares[kind] += p.shares
    counts = Counter(p.nominee for p in positions if p.kind == "beneficial")
    books = nominee_books(positions)
    nominees = {
        name: {
            "positions": counts[name],
            "books": books.get(name, 0),
            "entitlement": ent,
            "books_exceed_entitlement": books.get(name, 0) > ent,
        }
        for name, ent in entitlements.items()
    }
    campaign: Counter = Counter()
    for event in generate(meeting, positions, sim):
        if isinstance(event, (VoteRevoked, ProxySubstituted)):
            campaign[type(event).__name__] += 1
        else:
            campaign["discretionary" if event.discretionary else event.channel] += 1
    total = sum(p.shares for p in positions)
    return {
        **meeting_summary(meeting),
        "register": {
            "positions": len(positions),
            "shares": total,
            "sums_to_outstanding": total == meeting.outstanding,
            "by_kind": {k: {"positions": kinds[k], "shares": shares[k]} for k in sorted(kinds)},
            "nominees": nominees,
        },
        "campaign": {
            "events": sum(campaign.values()),
            "seed": sim.seed,
            "turnout": sim.turnout,
            "by_kind": dict(sorted(campaign.items())),
        },
    }


def meeting_lines(s: dict[str, Any]) -> list[str]:
    """The meeting summary's lines: ids, dates, shares, cut-offs, proxies, items, the declared register."""
    lines = [
        f"{s['meeting_id']}: {s['company']}, {s['title']}",
        f"  meeting {s['meeting_at']} ({s['timezone']}), record date {s['record_date']}",
        f"  outstanding {s['outstanding']:,}; quorum requires {s['quorum_required']:,}",
        f"  cut-offs: internet {s['cutoffs']['internet']}, phone {s['cutoffs']['phone']}",
        f"  named proxies: {', '.join(s['named_proxies'])}; over-vote policy {s['overvote_policy']}",
        "  items:",
    ]
    for i in s["items"]:
        routine = "routine" if i["routine"] else "non-routine"
        lines.append(
            f"    {i['id']:>4}  {i['title']}  [{i['standard']}, {routine}, "
            f"{'/'.join(i['options'])}, board: {i['recommendation']}]"
        )
    declared = s["declared_register"]
    if declared is not None:
        lines.append(
            f"  declared register: {declared['chunks']} chunks, {declared['positions']:,} positions, "
            f"{declared['shares']:,} shares"
        )
    return lines


def text(s: dict[str, Any]) -> str:
    """A simulation's summary as text: the meeting, its synthetic register's composition, the campaign."""
    lines = meeting_lines(s)
    r = s["register"]
    lines.append(
        f"  register: {r['positions']:,} positions, {r['shares']:,} shares "
        f"({'sums to' if r['sums_to_outstanding'] else 'DOES NOT sum to'} outstanding)"
    )
    for kind, v in r["by_kind"].items():
        lines.append(f"    {kind:<10} {v['positions']:>7,} positions {v['shares']:>14,} shares")
    for name, v in r["nominees"].items():
        flag = "  books exceed entitlement (R17 over-vote risk)" if v["books_exceed_entitlement"] else ""
        lines.append(
            f"    {name:<22} {v['positions']:>6,} positions, books {v['books']:>12,}, "
            f"entitlement {v['entitlement']:>12,}{flag}"
        )
    c = s["campaign"]
    lines.append(
        f"  simulated campaign (seed {c['seed']}, turnout {c['turnout']}): {c['events']:,} events: "
        + ", ".join(f"{k} {v:,}" for k, v in c["by_kind"].items())
    )
    return "\n".join(lines)

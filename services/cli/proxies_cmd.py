"""`vote-ledger proxies`: who holds and votes each proxy, and the chain of substitutions (R13)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.common import add_format, parse_timestamp, show


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `proxies` command."""
    p = sub.add_parser(
        "proxies",
        help="show who holds and votes the proxies",
        description="Show each current proxy holder (named proxies and substitutes, R13), how many control"
        " numbers and shares of voted proxies it holds, and the chain of substitutions. Every accepted"
        " substitution is listed; one whose holder held none of what it named at its executed_at (in date"
        " order, R5, whatever order they arrived in) is marked as having no effect, with why.",
    )
    p.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    p.add_argument(
        "--as-of",
        type=parse_timestamp,
        metavar="TIMESTAMP",
        help="RFC 3339 time with offset, e.g. 2023-12-14T20:00:00+08:00: only substitutions executed"
        " at or before it count; the control numbers and shares are still those of the"
        " current effective instructions",
    )
    add_format(p)
    p.set_defaults(func=_proxies)


def _proxies(args: argparse.Namespace) -> int:
    from services.read.proxies import read_proxies

    return show(
        args.meeting,
        lambda conn: read_proxies(conn, args.meeting, args.as_of),
        lambda report: (json.dumps(report, indent=2) if args.format == "json" else render(report)) + "\n",
    )


def render(report: dict[str, Any]) -> str:
    """A readable table of holders, then each named proxy's chain of substitutions."""
    when = f"as of {report['as_of']}" if report["as_of"] else "now"
    voted = report["proxies_voted"]
    rows = report["holders"]
    name = max([len(r["holder"]) + 2 for r in rows] + [24])
    by = max([len(", ".join(r["appointed_by"])) + 2 for r in rows] + [24])
    lines = [
        f"Proxies of meeting {report['meeting_id']}, {when}  (substitutions to log position"
        f" {report['log_position']}; votes to projected position {report['votes_as_of_position']})",
        f"Named proxies: {', '.join(report['named_proxies'])} (each may act alone)",
        "",
        f"{'Holder':<{name}}{'Holds since':<28}{'Appointed by':<{by}}{'Control numbers':>16}{'Shares':>16}",
    ]
    for row in rows:
        lines.append(
            f"{row['holder']:<{name}}{row['holds_since'] or 'named proxy':<28}"
            f"{', '.join(row['appointed_by']) or '-':<{by}}{row['control_numbers']:>16,}{row['shares']:>16,}"
        )
    lines += [
        f"Proxies voted: {voted['control_numbers']:,} control numbers, {voted['shares']:,} shares"
        " (a proxy held jointly counts for each joint holder).",
        "",
        "Substitution chain",
    ]
    by_id = {link["event_id"]: link for link in report["substitutions"]}
    for named, chain in report["chains"].items():
        lines.append(f"  {named}")
        lines += [f"    {_describe(by_id[event_id])}" for event_id in chain] or ["    (no substitution)"]
    orphans = [link for link in report["substitutions"] if not link["lineage"]]
    if orphans:
        lines.append("  outside every chain (the holder held no proxy when it acted, in date order)")
        lines += [f"    {_describe(link)}" for link in orphans]
    if report["without_effect"]:
        lines.append(
            f"{report['without_effect']:,} accepted substitution(s) had no effect (R13, decided in date order)."
        )
    return "\n".join(lines)


def _describe(link: dict[str, Any]) -> str:
    scope = "all proxies held" if link["control_numbers"] is None else ", ".join(link["control_numbers"])
    if link["why"] is None:
        note = ""
    else:
        note = f"  [{'partly' if link['effective'] else 'no effect'}: {link['why']}]"
    return f"{link['executed_at']}  {link['proxy_holder']} -> {link['substitute']}: {scope}{note}"

"""`vote-ledger tally`: the current quorum and per-item tally, as a table or domain.md's JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from services.cli import UserError
from services.cli.common import pg_dsn, run
from services.postgres.connect import READER_ROLE, connect
from services.tallies import UnknownMeeting, read_tally


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `tally` command."""
    t = sub.add_parser("tally", help="show quorum and tallies",
                       description="Show a meeting's quorum and per-item tallies from the projection.")
    t.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    t.add_argument("--json", action="store_true", help="print the tally JSON (domain.md contract)")
    t.add_argument("--watch", type=float, metavar="SECONDS",
                   help="refresh the table every SECONDS until interrupted")
    t.set_defaults(func=_tally)


def _tally(args: argparse.Namespace) -> int:
    async def go() -> int:
        conn = await connect(pg_dsn(), READER_ROLE)
        try:
            while True:
                try:
                    report = await read_tally(conn, args.meeting)
                except UnknownMeeting:
                    raise UserError(f"no meeting {args.meeting!r} in the log (was it loaded?)") from None
                if args.json:
                    print(json.dumps(report, indent=2))
                else:
                    if args.watch:
                        sys.stdout.write("\x1b[H\x1b[2J")  # clear the screen between refreshes
                    print(render(report))
                if not args.watch:
                    return 0
                await asyncio.sleep(args.watch)
        finally:
            await conn.close()

    return run(go())


def _pct(part: int, whole: int) -> str:
    """A percentage with two decimals from exact integers (display only)."""
    if whole == 0:
        return "-"
    hundredths = (part * 10000 + whole // 2) // whole
    return f"{hundredths // 100}.{hundredths % 100:02d} %"


def render(report: dict[str, Any]) -> str:
    """A readable table of a tally report."""
    q = report["quorum"]
    lines = [
        f"Meeting {report['meeting_id']}  (log position {report['as_of_position']})",
        f"Quorum: present {q['present']:,} of {report['outstanding']:,} shares ({_pct(q['present'], report['outstanding'])});"
        f" required {q['required']:,}: {'MET' if q['met'] else 'NOT MET'}",
        "",
        f"{'Item':<6}{'For / 1y':>14}{'Against / 2y':>14}{'3y':>12}{'Abstain':>12}{'Broker non-votes':>18}  Outcome",
    ]
    for item_id, c in report["items"].items():
        if "1y" in c:
            cols = (c["1y"], c["2y"], c["3y"], c["abstain"])
            row = f"{item_id:<6}{cols[0]:>14,}{cols[1]:>14,}{cols[2]:>12,}{cols[3]:>12,}"
        else:
            row = f"{item_id:<6}{c.get('for', 0):>14,}{c.get('against', 0):>14,}{'':>12}{c.get('abstain', 0):>12,}"
        lines.append(f"{row}{c['broker_non_votes']:>18,}  {c['outcome']}")
    return "\n".join(lines)

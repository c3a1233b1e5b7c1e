"""`vote-ledger meeting list`: the meetings the log holds (the same read as the API's GET /v1/meetings)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.common import add_format, run
from services.settings import settings


def add_list(actions: argparse._SubParsersAction) -> None:
    """Add `meeting list`."""
    lister = actions.add_parser(
        "list",
        help="the meetings in the log (as amended)",
        description="Every meeting the log holds (an accepted meeting.scheduled), in the order it was scheduled,"
        " with its date as amended; read as the reader role (VOTE_LEDGER_PG_READER_DSN).",
    )
    add_format(lister)
    lister.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.meeting import list_meetings

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            report = await list_meetings(conn)
        finally:
            await conn.close()
        print(json.dumps(report, indent=2) if args.format == "json" else render(report))
        return 0

    return run(go())


def render(report: dict[str, Any]) -> str:
    """One line per meeting: id, date, company and title, shares outstanding."""
    from projections.printable import escaped

    lines = [f"{'Meeting':<28}{'Meeting at':<27}{'Outstanding':>16}  Company, title"]
    for m in report["meetings"]:
        amended = " (amended)" if m["amended"] else ""
        # Administration's text escaped: a newline or ESC in a title would forge lines.
        lines.append(
            f"{m['meeting_id']:<28}{m['meeting_at']:<27}{m['outstanding']:>16,}  "
            f"{escaped(m['company'])}, {escaped(m['title'])}{amended}"
        )
    lines.append(f"{len(report['meetings'])} meeting(s) up to log position {report['as_of_position']:,}")
    return "\n".join(lines)

"""`vote-ledger meeting show --meeting ID`: a meeting as the log holds it (the read behind GET /v1/meetings/{id})."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.common import show
from services.cli.meeting_show import meeting_lines


def show_logged(args: argparse.Namespace) -> int:
    """Print the logged meeting's summary as amended, with its register so far (read as the reader role)."""
    from services.read.meeting import read_meeting

    def render(summary: dict[str, Any]) -> str:
        return (json.dumps(summary, indent=2) if args.format == "json" else text(summary)) + "\n"

    return show(args.meeting, lambda conn: read_meeting(conn, args.meeting), render)


def text(summary: dict[str, Any]) -> str:
    """The meeting's lines as for a file, its register so far, the amendments in force, and the log position."""
    from projections.printable import escaped

    # Administration's text escaped: a newline or ESC in a title would forge lines (as `meeting list`).
    safe = {
        **summary,
        "company": escaped(summary["company"]),
        "title": escaped(summary["title"]),
        "items": [{**item, "title": escaped(item["title"])} for item in summary["items"]],
    }
    lines = meeting_lines(safe)
    r = summary["register"]
    state = "complete" if r["complete"] else f"INCOMPLETE, {r['chunks_missing']} chunk(s) missing"
    lines.append(
        f"  register logged: {r['chunks_recorded']}/{r['chunks_expected']} chunks, {r['positions']:,} positions,"
        f" {r['shares']:,} shares ({state})"
    )
    if "meeting" in summary:  # amendments in force
        lines.append(f"  amended: {escaped(json.dumps(summary['meeting'], sort_keys=True))}")
    lines.append(f"  as of log position {summary['as_of_position']:,}")
    return "\n".join(lines)

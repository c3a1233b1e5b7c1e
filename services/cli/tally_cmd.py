"""`vote-ledger tally [diff]`: quorum and per-item tally (now or as of a past point), and what changed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from projections.amendments import render_lines
from projections.completeness import summary
from projections.printable import escaped
from projections.report import percent
from services.cli import UserError
from services.cli.common import add_format, not_projected, positive_number, run
from services.read.export_file import BadExport
from services.read.offline import tally_from_file
from services.read.renderings import tally_csv
from services.settings import settings

_AS_OF_HELP = (
    "a log position (a plain integer) or an RFC 3339 time with offset, compared with when the"
    " ledger recorded each row (its recorded_at, under the hash chain)"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `tally` command and its `diff` action."""
    t = sub.add_parser(
        "tally",
        help="show quorum and tallies, now or as of a past point; diff two points",
        usage="%(prog)s --meeting ID [--format table|json|csv] [--json] [--watch SECONDS]"
        " [--as-of POSITION|TIMESTAMP]\n"
        "       %(prog)s --file EXPORT [--meeting ID] [--format table|json|csv] [--json] [--as-of POSITION]\n"
        "       %(prog)s diff --meeting ID [--format table|json] [--json] FROM TO",
        description="Show a meeting's quorum and per-item tallies from the projection, or"
        " replayed from the log as of a past position or time (--as-of);"
        " `tally diff` shows what changed between two points.",
    )
    # Not required here, so that `tally diff --meeting ID ...` parses; _tally checks it.
    t.add_argument("--meeting", metavar="ID", help="meeting id, e.g. cbak-2023-agm (required)")
    add_format(
        t,
        ("table", "json", "csv"),
        help="output format: table (default), json (the tally JSON of docs/wire-contract.md),"
        " or csv (one row per item)",
    )
    t.add_argument(
        "--file",
        type=Path,
        metavar="EXPORT",
        help="replay an export (vote-ledger export) offline instead of reading PostgreSQL, refusing one"
        " that does not verify against its manifest; --as-of then takes a log position",
    )
    t.add_argument(
        "--watch", type=positive_number(), metavar="SECONDS", help="refresh the table every SECONDS until interrupted"
    )
    t.add_argument(
        "--as-of",
        type=position_or_time,
        metavar="POSITION|TIMESTAMP",
        help=f"replay the log up to {_AS_OF_HELP}, e.g. 18233 or 2023-12-14T20:00:00+08:00",
    )
    t.set_defaults(func=_tally)
    actions = t.add_subparsers(dest="tally_action", metavar="ACTION")
    d = actions.add_parser(
        "diff",
        prog=f"{t.prog} diff",
        help="what changed between two points of the log",
        description="Per-item change of every column and of the shares present between FROM and TO, and"
        " each control number whose contribution changed, with its change and the events"
        " logged in between that caused it (replayed from the log).",
    )
    d.add_argument("--meeting", dest="diff_meeting", metavar="ID", help="meeting id, e.g. cbak-2023-agm (required)")
    d.add_argument("start", type=position_or_time, metavar="FROM", help=_AS_OF_HELP)
    d.add_argument("end", type=position_or_time, metavar="TO", help=_AS_OF_HELP)
    # Its own dest: the subcommand's default would overwrite `tally --json diff ...`'s choice.
    add_format(d, dest="diff_format")
    d.set_defaults(func=_diff)


def _tally_file(args: argparse.Namespace) -> int:
    """The tally replayed from an export alone: no Kafka, no PostgreSQL."""
    if args.as_of is not None and not isinstance(args.as_of, int):
        raise UserError("tally --file: --as-of takes a log position (the export's rows carry positions)")
    try:
        report = tally_from_file(args.file, args.as_of)
    except BadExport as exc:
        raise UserError(str(exc)) from None
    if args.meeting and args.meeting != report["meeting_id"]:
        raise UserError(f"{args.file} holds meeting {report['meeting_id']}, not {args.meeting}")
    print(_renderer(args.format)(report))
    return 0


def position_or_time(text: str) -> int | datetime:
    """A plain integer is a log position; anything else must be an RFC 3339 timestamp (services.read.time_travel)."""
    from services.read.time_travel import parse_as_of

    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tally(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _tally_file(args)
    if not args.meeting:
        raise UserError("tally: --meeting is required")
    if args.as_of is not None and args.watch:
        raise UserError("tally: --as-of shows a fixed point of the log; it cannot be watched")

    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.errors import MeetingNotProjected, UnknownMeeting
    from services.read.tallies import read_tally
    from services.read.time_travel import tally_as_of

    render = _renderer(args.format)

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)

        async def read() -> dict[str, Any]:
            try:
                if args.as_of is not None:
                    return await tally_as_of(conn, args.meeting, args.as_of)
                return await read_tally(conn, args.meeting)
            except UnknownMeeting:
                when = f" by {args.as_of}" if args.as_of is not None else ""
                raise UserError(f"no meeting {args.meeting!r} in the log{when} (was it loaded?)") from None
            except MeetingNotProjected as exc:
                raise not_projected(exc) from None

        try:
            if not args.watch:
                print(render(await read()))
                return 0
            await _watch(read, args.watch, render, redraw=args.format == "table")
            return 0
        finally:
            await conn.close()

    return run(go())


async def _watch(
    read: Callable[[], Awaitable[dict[str, Any]]],
    seconds: float,
    render: Callable[[dict[str, Any]], str],
    redraw: bool,
) -> None:
    """Refresh until interrupted: the table redrawn in place (Rich) on a terminal; else each refresh printed.

    JSON and CSV, or a table going to a pipe or a file, are a stream of snapshots a program reads:
    no cursor movement in them.
    """
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    if not (redraw and console.is_terminal):
        while True:
            print(render(await read()), flush=True)
            await asyncio.sleep(seconds)
    # Text, not markup: a meeting id or an outcome with [brackets] is printed as it is.
    with Live(console=console, auto_refresh=False) as live:
        while True:
            live.update(Text(render(await read())), refresh=True)
            await asyncio.sleep(seconds)


def _diff(args: argparse.Namespace) -> int:
    meeting = args.diff_meeting or args.meeting  # `tally --meeting ID diff FROM TO` reads naturally too
    if not meeting:
        raise UserError("tally diff: --meeting is required")

    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.errors import UnknownMeeting
    from services.read.time_travel import tally_diff

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            change = await tally_diff(conn, meeting, args.start, args.end)
        except UnknownMeeting:
            raise UserError(f"no meeting {meeting!r} in the log by then (was it loaded?)") from None
        finally:
            await conn.close()
        as_json = "json" in (args.diff_format, args.format)  # `tally --json diff ...` reads naturally too
        print(json.dumps(change, indent=2) if as_json else render_diff(change))
        return 0

    return run(go())


def _percent(part: int, whole: int) -> str:
    """The table's quorum percentage: the final report's (projections.report.percent) with its unit.

    A meeting always has shares outstanding; "-" keeps the table printable should one have none.
    """
    return f"{percent(part, whole)} %" if whole > 0 else "-"


def render(report: dict[str, Any]) -> str:
    """A readable table of a tally report."""
    q = report["quorum"]
    lines = [
        f"Meeting {report['meeting_id']}  (log position {report['as_of_position']})",
        f"Quorum: present {q['present']:,} of {report['outstanding']:,} shares"
        f" ({_percent(q['present'], report['outstanding'])});"
        f" required {q['required']:,}: {'MET' if q['met'] else 'NOT MET'}",
        *_register_line(report),
        # As amended at that point; administration's text escaped (a newline or ESC would forge lines).
        *(escaped(line) for line in (render_lines(report["meeting"]) if "meeting" in report else ())),
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


def _renderer(form: str) -> Callable[[dict[str, Any]], str]:
    """The format's renderer; CSV has no room for the register, so an incomplete one is said on stderr."""
    render = _RENDERERS[form]
    if form != "csv":
        return render

    def csv_and_warning(report: dict[str, Any]) -> str:
        for line in _register_line(report):
            print(f"vote-ledger: warning: {line}", file=sys.stderr)
        return render(report)

    return csv_and_warning


def _register_line(report: dict[str, Any]) -> list[str]:
    """The register's line, only when it is incomplete: a complete register's table stays as it was."""
    register = report.get("register")
    if register is None or register["complete"]:
        return []
    return [f"REGISTER {summary(register)}: the tally counts only the positions recorded"]


def _changes(columns: dict[str, int]) -> str:
    return ", ".join(f"{column} {shares:+,}" for column, shares in columns.items())


def render_diff(change: dict[str, Any]) -> str:
    """A readable account of a tally diff: items that changed, then the control numbers behind them."""
    present, met = change["quorum"]["present"], change["quorum"]["met"]
    yes_no = {True: "met", False: "not met"}
    lines = [
        f"Meeting {change['meeting_id']}: from log position {change['from_position']} to {change['to_position']}",
        f"Quorum: present {present['from']:,} -> {present['to']:,} ({present['delta']:+,});"
        f" {yes_no[met['from']]} -> {yes_no[met['to']]}",
        "",
    ]
    for item_id, columns in change["items"].items():
        outcome = columns["outcome"]
        moved = {c: v for c, v in columns.items() if c != "outcome" and v}
        if moved or outcome["from"] != outcome["to"]:
            lines.append(
                f"Item {item_id:<6}{_changes(moved) or 'no change in shares'}"
                f"   outcome {outcome['from']} -> {outcome['to']}"
            )
    if len(lines) == 3:
        lines.append("No item changed.")
    numbers = change["control_numbers"]
    lines += ["", f"Control numbers whose contribution changed: {len(numbers)}"]
    for c in numbers:
        items = "; ".join(f"{item_id}: {_changes(cols)}" for item_id, cols in c["items"].items())
        events = ", ".join(f"#{e['position']} {e['type']} {e['event_id']}" for e in c["events"])
        lines.append(f"  {c['control_number']}  present {c['present']:+,}  {items}")
        lines.append(f"      caused by {events or '-'}")
    for item_id, columns in change["overvote_adjustment"].items():
        lines.append(f"R17 proration on item {item_id} (nominees over their entitlement): {_changes(columns)}")
    return "\n".join(lines)


_RENDERERS = {"table": render, "json": lambda report: json.dumps(report, indent=2), "csv": tally_csv}

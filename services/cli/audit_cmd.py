"""`vote-ledger audit history | events | verify`: how each vote changed, the log filtered, and proof.

Each action is a small register function plus a handler, so more (e.g. `audit verify`) slot in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from services.audit import CHANNELS, DECISIONS, read_events, read_history
from services.cli import UserError
from services.cli.common import parse_timestamp, show
from services.export import BadExport
from services.offline import verify_file
from services.config import settings
from services.postgres.connect import READER_ROLE, connect_as
from services.verify import verify_meeting


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `audit` command and its actions."""
    a = sub.add_parser("audit", help="vote lineage of a control number; filtered log events; verify the log",
                       description="Audit the log: what became of every submission of a control number,"
                                   " and the log rows matching filters.")
    actions = a.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    _register_history(actions)
    _register_events(actions)
    _add_verify(actions)


def _register_history(actions: argparse._SubParsersAction) -> None:
    h = actions.add_parser(
        "history", help="every submission of a control number and what became of it",
        description="Every log row of a control number in log order: the ledger's decision and reason code,"
                    " and for each accepted instruction whether it counts (or fills routine items, R10) or"
                    " which rule and event superseded it (R5, R6, R7, R10, R12, R17).")
    h.add_argument("--meeting", required=True, metavar="ID", help="meeting id, e.g. cbak-2023-agm")
    h.add_argument("--control-number", required=True, metavar="C", help="the control number on the card or form")
    h.add_argument("--json", action="store_true", help="print the history as JSON")
    h.set_defaults(func=_history)


def _history(args: argparse.Namespace) -> int:
    return _print(lambda conn: read_history(conn, args.meeting, args.control_number), args, render_history)


def _register_events(actions: argparse._SubParsersAction) -> None:
    e = actions.add_parser(
        "events", help="a meeting's log rows matching filters",
        description="A meeting's log rows in log order, filtered by channel, submitter, time received"
                    " (FROM inclusive, TO exclusive; RFC 3339 with offset), decision and reason code.")
    e.add_argument("--meeting", required=True, metavar="ID", help="meeting id, e.g. cbak-2023-agm")
    e.add_argument("--channel", choices=CHANNELS, help="the submission's channel")
    e.add_argument("--submitted-by", metavar="NAME",
                   help="the submitting system or person (payload field submitted_by)")
    e.add_argument("--from", dest="received_from", type=parse_timestamp, metavar="TIMESTAMP",
                   help="received at or after this time")
    e.add_argument("--to", dest="received_to", type=parse_timestamp, metavar="TIMESTAMP",
                   help="received before this time")
    e.add_argument("--decision", choices=DECISIONS)
    e.add_argument("--reason", metavar="CODE", help="reason code of rejected rows, e.g. cutoff_passed")
    e.add_argument("--limit", type=_limit, default=100, metavar="N", help="at most N rows (default 100)")
    e.add_argument("--json", action="store_true", help="print the rows as JSON")
    e.set_defaults(func=_events)


def _events(args: argparse.Namespace) -> int:
    return _print(lambda conn: read_events(
        conn, args.meeting, channel=args.channel, submitted_by=args.submitted_by,
        received_from=args.received_from, received_to=args.received_to, decision=args.decision,
        reason=args.reason, limit=args.limit), args, render_events)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _print(read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]], args: argparse.Namespace,
           render: Callable[[dict[str, Any]], str]) -> int:
    """Read a report as the reader role and print it as JSON or as text."""
    return show(args.meeting, read, lambda report: (json.dumps(report, indent=2) if args.json else render(report)) + "\n")


def _describe(row: dict[str, Any]) -> str:
    """What became of a row, in words."""
    status = row["status"]
    by = f" by #{row['by']['position']} {row['by']['event_id']}" if row["by"] else ""
    if status == "superseded":
        items = f" on item {', '.join(row['items'])}" if row["items"] else ""
        return f"superseded {row['rule']}{by}{items}"
    if status == "fills":
        return f"fills {', '.join(row['items'])} (R10)"
    if status == "revokes":
        voids = ", ".join(f"#{v['position']}" for v in row["voids"])
        return f"revokes {voids or 'nothing'} (R7)"
    if status == "rejected":
        return f"rejected: {row['reason']}"
    return status or "-"


def render_history(report: dict[str, Any]) -> str:
    """A readable table of a control number's rows and what became of each."""
    reg = report["register"]
    held = (f"{reg['kind']}, {reg['shares']:,} shares" + (f" via {reg['nominee']}" if reg["nominee"] else "")
            if reg else "not on the record-date register")
    counts, fills = report["counts"], report["fills"]
    counting = f"#{counts['position']} {counts['event_id']}" if counts else "nothing (not present)"
    lines = [
        f"Control number {report['control_number']} of meeting {report['meeting_id']}: {held}"
        f"  (log position {report['log_position']})",
        f"Counts: {counting}",
        *([f"Fills its routine items: #{fills['position']} {fills['event_id']} (R10)"] if fills else []),
        "",
        f"{'Pos':>8}  {'Event id':<20}{'Type':<13}{'Channel':<11}{'Executed at':<27}{'Received at':<27}Status",
    ]
    for row in report["rows"]:
        lines.append(f"{row['position']:>8}  {row['event_id'][:19]:<20}{row['type']:<13}{row['channel'] or '-':<11}"
                     f"{row['executed_at'] or '-':<27}{row['received_at'] or '-':<27}{_describe(row)}")
    if not report["rows"]:
        lines.append("(no submission of this control number in the log)")
    return "\n".join(lines)


def render_events(report: dict[str, Any]) -> str:
    """A readable table of filtered log rows."""
    lines = [f"{'Pos':>8}  {'Event id':<20}{'Type':<19}{'Control number':<22}{'Channel':<11}"
             f"{'Submitted by':<18}{'Received at':<27}Decision"]
    for r in report["events"]:
        decision = r["decision"] if r["reason"] is None else f"{r['decision']}: {r['reason']}"
        lines.append(f"{r['position']:>8}  {r['event_id'][:19]:<20}{r['type']:<19}{r['control_number'] or '-':<22}"
                     f"{r['channel'] or '-':<11}{(r['submitted_by'] or '-')[:17]:<18}{r['received_at'] or '-':<27}"
                     f"{decision}")
    more = " (more match: raise --limit)" if report["truncated"] else ""
    lines.append(f"{len(report['events'])} row(s) of meeting {report['meeting_id']}"
                 f" up to log position {report['log_position']}{more}")
    return "\n".join(lines)


def _add_verify(actions: argparse._SubParsersAction) -> None:
    v = actions.add_parser(
        "verify", help="recompute the hash chain and the tally; exit 1 at the first mismatch",
        description="Online (--meeting): recompute the meeting's hash chain, check that log positions are gapless,"
                    " refold the tally from scratch and compare it with the projection. Offline (--file): check an"
                    " export's chain and manifest with no services. Exits 1 naming the first position that does"
                    " not match; 0 when everything holds.")
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--meeting", help="meeting id (reads PostgreSQL)")
    source.add_argument("--file", type=Path, help="an export written by `vote-ledger export` (no services needed)")
    v.add_argument("--expect-hash", metavar="HEX",
                   help="a final hash published earlier (export manifest, report): the chain must still end on it")
    v.add_argument("--json", action="store_true", help="print the verification as JSON")
    v.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        try:
            result = verify_file(args.file, args.expect_hash)
        except BadExport as exc:
            raise UserError(str(exc)) from None
        report = result.as_dict()
    else:
        async def go():
            conn = await connect_as(settings(), READER_ROLE)
            try:
                return await verify_meeting(conn, args.meeting, args.expect_hash)
            finally:
                await conn.close()
        result = asyncio.run(go())
        report = result.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_verification(report))
    return 0 if result.ok else 1


def render_verification(report: dict) -> str:
    """A readable verdict: what was checked and the first thing that does not hold."""
    lines = [f"meeting {report['meeting_id']}: {report['rows']:,} log rows, final hash {report['final_hash']}"]
    brk = report.get("chain_break")
    if brk:
        lines.append(f"FAIL hash chain: position {brk['position']} {brk['problem']}: {brk['detail']}")
    else:
        lines.append("ok   hash chain")
    if report.get("first_missing_position") is not None:
        lines.append(f"FAIL positions: position {report['first_missing_position']} is missing from the log")
    for problem in report.get("problems", []):
        lines.append(f"FAIL {problem}")
    if report.get("anchor_mismatch"):
        lines.append("FAIL the chain no longer ends on the expected hash: rows removed from the end, or re-hashed")
    mismatches = report.get("tally_mismatches")
    if mismatches is not None:
        if mismatches:
            lines.append(f"FAIL tally at checkpoint {report['checkpoint']}: " + "; ".join(mismatches[:5]))
        else:
            lines.append(f"ok   tally recomputed from scratch equals the projection at position {report['checkpoint']}")
    lines.append("VERIFIED" if report["ok"] else "NOT VERIFIED")
    return "\n".join(lines)

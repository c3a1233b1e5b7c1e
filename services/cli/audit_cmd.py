"""`vote-ledger audit history | events | verify`: how each vote changed, the log filtered, and proof.

Each action is a small register function plus a handler; `audit verify` lives in audit_verify.py.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

# The filters' choices come from the vocabulary modules, so parsing imports no PostgreSQL client.
from events.schema import CHANNELS
from projections.amendments import render_lines
from projections.log_row import DECISIONS
from projections.printable import escaped
from services.cli.audit_proof_cmd import add_proofs
from services.cli.audit_verify import add_verify
from services.cli.common import add_format, parse_timestamp, show, whole_number

if TYPE_CHECKING:
    import asyncpg


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `audit` command and its actions."""
    a = sub.add_parser(
        "audit",
        help="vote lineage of a control number; filtered log events; verify the log; holders' receipts",
        description="Audit the log: what became of every submission of a control number,"
        " and the log rows matching filters.",
    )
    actions = a.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    _register_history(actions)
    _register_events(actions)
    add_verify(actions)
    add_proofs(actions)


def _register_history(actions: argparse._SubParsersAction) -> None:
    h = actions.add_parser(
        "history",
        help="every submission of a control number and what became of it",
        description="Every log row of a control number in log order: the ledger's decision and reason code,"
        " and for each accepted instruction whether it counts (or fills routine items, R10) or"
        " which rule and event superseded it (R5, R6, R7, R10, R12, R17).",
    )
    h.add_argument("--meeting", required=True, metavar="ID", help="meeting id, e.g. cbak-2023-agm")
    h.add_argument("--control-number", required=True, metavar="C", help="the control number on the card or form")
    add_format(h)
    h.set_defaults(func=_history)


def _history(args: argparse.Namespace) -> int:
    from services.read.audit import read_history

    return _print(lambda conn: read_history(conn, args.meeting, args.control_number), args, render_history)


def _register_events(actions: argparse._SubParsersAction) -> None:
    e = actions.add_parser(
        "events",
        help="a meeting's log rows matching filters",
        description="A meeting's log rows in log order, filtered by channel, submitter, time received"
        " (FROM inclusive, TO exclusive; RFC 3339 with offset), decision and reason code.",
    )
    e.add_argument("--meeting", required=True, metavar="ID", help="meeting id, e.g. cbak-2023-agm")
    e.add_argument("--channel", choices=CHANNELS, help="the submission's channel")
    e.add_argument(
        "--submitted-by", metavar="NAME", help="the submitting system or person (payload field submitted_by)"
    )
    e.add_argument(
        "--from", dest="received_from", type=parse_timestamp, metavar="TIMESTAMP", help="received at or after this time"
    )
    e.add_argument(
        "--to", dest="received_to", type=parse_timestamp, metavar="TIMESTAMP", help="received before this time"
    )
    e.add_argument("--decision", choices=DECISIONS, help="the ledger's decision on the row")
    e.add_argument("--reason", metavar="CODE", help="reason code of rejected rows, e.g. cutoff_passed")
    e.add_argument("--limit", type=whole_number(1), default=100, metavar="N", help="at most N rows (default 100)")
    add_format(e)
    e.set_defaults(func=_events)


def _events(args: argparse.Namespace) -> int:
    from services.read.audit import read_events

    return _print(
        lambda conn: read_events(
            conn,
            args.meeting,
            channel=args.channel,
            submitted_by=args.submitted_by,
            received_from=args.received_from,
            received_to=args.received_to,
            decision=args.decision,
            reason=args.reason,
            limit=args.limit,
        ),
        args,
        render_events,
    )


def _print(
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
    args: argparse.Namespace,
    render: Callable[[dict[str, Any]], str],
) -> int:
    """Read a report as the reader role and print it as JSON or as text."""
    return show(
        args.meeting,
        read,
        lambda report: (json.dumps(report, indent=2) if args.format == "json" else render(report)) + "\n",
    )


def _describe(row: dict[str, Any]) -> str:
    """What became of a row, in words (per item too, when items closed at different times: R12)."""
    from projections.lineage import describe_per_item

    per_item = describe_per_item(row.get("per_item", []))
    return _describe_status(row) + (f"; {per_item}" if per_item else "")


def _describe_status(row: dict[str, Any]) -> str:
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
    if status == "attends":
        return "attends: present (R14), revokes nothing (R6)"
    return status or "-"


def _counting(report: dict[str, Any]) -> str:
    """The header's "Counts:" as the tally counts the holder (R6 attendance, R12 per item, R14)."""

    def ref(r: dict[str, Any]) -> str:
        return f"#{r['position']} {r['event_id']}"

    counts, attends = report["counts"], report.get("attends")
    on_items = report.get("counts_on_items", [])
    parts = [ref(counts)] if counts else []
    parts += [f"on item {entry['item']}: {ref(entry)} (R12 per item)" for entry in on_items]
    if on_items and not counts:
        parts.append("nothing on the other items")
    if attends:
        # R6: attending revokes nothing; with nothing counting, the holder is present and votes nothing (R14).
        parts.append(f"attends {ref(attends)}: present" + ("" if counts or on_items else ", votes nothing"))
    return "; ".join(parts) if parts else "nothing (not present)"


def render_history(report: dict[str, Any]) -> str:
    """A readable table of a control number's rows and what became of each."""
    reg = report["register"]
    held = (
        f"{reg['kind']}, {reg['shares']:,} shares" + (f" via {reg['nominee']}" if reg["nominee"] else "")
        if reg
        else "not on the record-date register"
    )
    fills = report["fills"]
    counting = _counting(report)
    lines = [
        f"Control number {report['control_number']} of meeting {report['meeting_id']}: {held}"
        f"  (log position {report['log_position']})",
        f"Counts: {counting}",
        *([f"Fills its routine items: #{fills['position']} {fills['event_id']} (R10)"] if fills else []),
        # The meeting as amended by then; administration's text escaped (a newline or ESC would forge lines).
        *(escaped(line) for line in (render_lines(report["meeting"]) if "meeting" in report else [])),
        "",
        f"{'Pos':>8}  {'Event id':<20}{'Type':<13}{'Channel':<11}{'Executed at':<27}{'Received at':<27}Status",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['position']:>8}  {row['event_id'][:19]:<20}{row['type']:<13}{row['channel'] or '-':<11}"
            f"{row['executed_at'] or '-':<27}{row['received_at'] or '-':<27}{_describe(row)}"
        )
    if not report["rows"]:
        lines.append("(no submission of this control number in the log)")
    return "\n".join(lines)


def render_events(report: dict[str, Any]) -> str:
    """A readable table of filtered log rows."""
    lines = [
        f"{'Pos':>8}  {'Event id':<20}{'Type':<19}{'Control number':<22}{'Channel':<11}"
        f"{'Submitted by':<18}{'Received at':<27}Decision"
    ]
    for r in report["events"]:
        decision = r["decision"] if r["reason"] is None else f"{r['decision']}: {r['reason']}"
        lines.append(
            f"{r['position']:>8}  {r['event_id'][:19]:<20}{r['type']:<19}{r['control_number'] or '-':<22}"
            f"{r['channel'] or '-':<11}{(r['submitted_by'] or '-')[:17]:<18}{r['received_at'] or '-':<27}"
            f"{decision}"
        )
    more = " (more match: raise --limit)" if report["truncated"] else ""
    lines.append(
        f"{len(report['events'])} row(s) of meeting {report['meeting_id']}"
        f" up to log position {report['log_position']}{more}"
    )
    return "\n".join(lines)

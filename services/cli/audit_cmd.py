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
from services.chain_heads import HeadsUnavailable, read_heads
from services.cli.common import parse_timestamp, show
from services.config import settings
from services.export import BadExport
from services.offline import verify_file
from services.postgres.connect import READER_ROLE, connect_as, role_dsn
from services.tallies import UnknownMeeting
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
        description="Online (--meeting): recompute the meeting's hash chain and the parked messages' chain, check"
                    " that log positions are gapless, check the log against every chain head the ledger published"
                    " on ledger.heads (read from Kafka), refold the tally from scratch and compare it with the"
                    " projection. Offline (--file): check an export's chains and manifest with no services."
                    " Exits 1 naming the first position or head that does not match; 0 when everything holds;"
                    " 2 when there is nothing to verify (an unknown meeting, an empty export).")
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--meeting", help="meeting id (reads PostgreSQL)")
    source.add_argument("--file", type=Path, help="an export written by `vote-ledger export` (no services needed)")
    v.add_argument("--expect-hash", metavar="HEX",
                   help="a final hash published earlier (export manifest, report): the chain must still end on it;"
                        " or POSITION:HEX (a report footer's chain value, a head from ledger.heads)")
    v.add_argument("--no-heads", action="store_true",
                   help="online, when Kafka is not reachable: do not check the published chain heads (the output"
                        " says so; an edit re-hashed to the end of the chain then goes unnoticed)")
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
        result = asyncio.run(_verify_online(args.meeting, args.expect_hash, args.no_heads))
        report = result.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_verification(report))
    return 0 if result.ok else 1


async def _verify_online(meeting_id: str, expect_hash: str | None, no_heads: bool):
    """Read the published heads first (a later head may name rows our snapshot lacks), then verify."""
    cfg = settings()
    role_dsn(cfg, READER_ROLE)  # fail before reading the heads
    heads = None
    if not no_heads:
        if not cfg.kafka_bootstrap:
            raise UserError("VOTE_LEDGER_KAFKA_BOOTSTRAP is not set, so the published chain heads cannot be read;"
                            " set it, or pass --no-heads to verify without them")
        try:
            heads = await read_heads(cfg)
        except HeadsUnavailable as exc:
            raise UserError(f"{exc}: the published chain heads cannot be checked;"
                            " pass --no-heads to verify without them") from None
    conn = await connect_as(cfg, READER_ROLE)
    try:
        result = await verify_meeting(conn, meeting_id, expect_hash, heads)
    except UnknownMeeting:
        raise UserError(f"no row of meeting {meeting_id!r} in the log" + (
            " (published heads not checked): an unknown meeting, or every row of it was deleted" if no_heads else
            " and no chain head published for it: an unknown meeting, nothing to verify")) from None
    finally:
        await conn.close()
    if no_heads:
        result.heads_skipped = "--no-heads"
    result.heads_topic = cfg.heads_topic
    return result


def render_verification(report: dict) -> str:
    """A readable verdict: what was checked and the first thing that does not hold."""
    lines = [f"meeting {report['meeting_id']}: {report['rows']:,} log rows, final hash {report['final_hash']}"]
    brk = report.get("chain_break")
    v1 = report.get("chain_v1_rows") or 0
    if brk:
        lines.append(f"FAIL hash chain: position {brk['position']} {brk['problem']}: {brk['detail']}")
    else:
        covered = "rows, decisions, payloads" + (", recorded_at and Kafka source" if v1 < report["rows"] else "")
        lines.append(f"ok   hash chain ({covered})")
    if v1:
        lines.append(f"note {v1:,} row(s) logged before migration 010 are under chain v1:"
                     " their recorded_at and Kafka source are not covered")
    lines += _render_parked(report.get("parked"))
    lines += _render_heads(report)
    if report.get("first_missing_position") is not None:
        lines.append(f"FAIL positions: position {report['first_missing_position']} is missing from the log")
    for problem in report.get("problems", []):
        lines.append(f"FAIL {problem}")
    if report.get("anchor_mismatch"):
        lines.append("FAIL the chain no longer ends on the expected hash: rows removed from the end, or re-hashed")
    mismatches = report.get("tally_mismatches")
    if report.get("tally_compared") is False:
        lines.append(f"note tally not compared: the projection has not reached the meeting"
                     f" (checkpoint {report['checkpoint']})")
    elif mismatches is not None:
        if mismatches:
            lines.append(f"FAIL tally at checkpoint {report['checkpoint']}: " + "; ".join(mismatches[:5]))
        else:
            lines.append(f"ok   tally recomputed from scratch equals the projection at position {report['checkpoint']}")
    if not report["ok"]:
        lines.append("NOT VERIFIED")
    elif report.get("heads") is None:
        lines.append("VERIFIED, except against the published chain heads (not checked)")
    else:
        lines.append("VERIFIED")
    return "\n".join(lines)


def _render_parked(parked: dict | None) -> list[str]:
    """The parked messages' chain, or that the export predates it."""
    if parked is None:
        return ["note parked messages: not in this export (format v1)"]
    lines = []
    brk = parked["chain_break"]
    if brk:
        lines.append(f"FAIL parked messages' chain: id {brk['position']} {brk['problem']}: {brk['detail']}")
    else:
        lines.append(f"ok   parked messages' chain: {parked['rows']:,} message(s), final hash {parked['final_hash']}")
    if parked["not_chained"]:
        lines.append(f"note {parked['not_chained']:,} message(s) parked before migration 010 are on no chain:"
                     " not covered")
    return lines


def _render_heads(report: dict) -> list[str]:
    """The published chain heads: checked (and which failed), or plainly not."""
    heads, topic = report.get("heads"), report.get("heads_topic") or "ledger.heads"
    if heads is None:
        why = report.get("heads_skipped") or "offline"
        anchor = ("anchor it with --expect-hash POSITION:HEX taken from a published head or report"
                  if why == "offline" else "an edit re-hashed to the end of the chain, or rows cut from its end,"
                                           " would go unnoticed")
        return [f"SKIP published chain heads: NOT CHECKED ({why}); {anchor}"]
    lines = []
    for name, label, at in (("meeting", "meeting's", "position"), ("parked", "parked messages'", "id")):
        found = heads[name]
        for failure in found["failures"]:
            lines.append(f"FAIL published head of the {label} chain at {at} {failure['position']}"
                         f" ({failure['rows']:,} rows, published {failure['published_at']}): {failure['detail']}")
        latest = found["latest"]
        if latest is None:
            lines.append(f"{'WARN' if name == 'meeting' else 'ok  '} published heads of the {label} chain: none on"
                         f" {topic}" + (": nothing outside the database anchors it yet" if name == "meeting" else ""))
        elif not found["failures"]:
            lines.append(f"ok   published heads of the {label} chain: all {found['checked']:,} on {topic} hold, the latest"
                         f" at {at} {latest['position']} ({latest['rows']:,} rows, published {latest['published_at']})")
    return lines

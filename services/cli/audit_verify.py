"""`vote-ledger audit verify`: the chains, the published heads and the tally, online or from an export."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from projections.completeness import summary
from services.cli import UserError
from services.cli.common import add_format, add_quiet
from services.cli.progress import OnProgress, progress_bar
from services.read.export_file import BadExport
from services.read.offline import verify_file
from services.settings import settings


def add_verify(actions: argparse._SubParsersAction) -> None:
    """Add `audit verify` to the audit command's actions."""
    v = actions.add_parser(
        "verify",
        help="recompute the hash chain and the tally; exit 1 at the first mismatch",
        description="Online (--meeting): recompute the meeting's hash chain and the parked messages' chain, check"
        " that log positions are gapless, check the log against every chain head the ledger published"
        " on ledger.heads (read from Kafka), refold the tally from scratch and compare it with the"
        " projection. Offline (--file): check an export's chains and manifest with no services."
        " Exits 1 naming the first position or head that does not match; 0 when everything holds;"
        " 2 when there is nothing to verify (an unknown meeting, an empty export); 3 when everything holds"
        " but the meeting's register is incomplete (VERIFIED is about the log; the results are not final).",
    )
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--meeting", help="meeting id (reads PostgreSQL)")
    source.add_argument("--file", type=Path, help="an export written by `vote-ledger export` (no services needed)")
    v.add_argument(
        "--expect-hash",
        metavar="HEX",
        help="a final hash published earlier (export manifest, report): the chain must still end on it;"
        " or POSITION:HEX (a report footer's chain value, a head from ledger.heads)",
    )
    v.add_argument(
        "--no-heads",
        action="store_true",
        help="online, when Kafka is not reachable: do not check the published chain heads (the output"
        " says so; an edit re-hashed to the end of the chain then goes unnoticed)",
    )
    add_format(v)
    add_quiet(v)
    v.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        try:
            with progress_bar(f"verifying {args.file.name}", quiet=args.quiet) as on_progress:
                result = verify_file(args.file, args.expect_hash, on_progress=on_progress)
        except BadExport as exc:
            raise UserError(str(exc)) from None
        report = result.as_dict()
    else:
        with progress_bar(f"verifying {args.meeting}", unit="positions", quiet=args.quiet) as on_progress:
            result = asyncio.run(_verify_online(args.meeting, args.expect_hash, args.no_heads, on_progress))
        report = result.as_dict()
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render_verification(report))
    if not result.ok:
        return 1
    # The log holds together, but a final report of it would leave positions out (docs/rules.md,
    # "Register completeness"): not 0, so `audit verify && certify` stops; not 1, which means tampering.
    return INCOMPLETE_REGISTER if register_incomplete(report) else 0


INCOMPLETE_REGISTER = 3  # audit verify's exit code: verified, but the register is incomplete


def register_incomplete(report: dict) -> bool:
    """Whether a verification found the meeting's register incomplete (or no register at all)."""
    register = report.get("register")
    return register is None or not register["complete"]


async def _verify_online(meeting_id: str, expect_hash: str | None, no_heads: bool, on_progress: OnProgress):
    """Read the published heads first (a later head may name rows our snapshot lacks), then verify."""
    from services.adapters.postgres.connect import READER_ROLE, connect_as, role_dsn
    from services.read.errors import UnknownMeeting
    from services.read.verify import verify_meeting
    from services.runtime.chain_heads import HeadsUnavailable, read_heads

    cfg = settings()
    role_dsn(cfg, READER_ROLE)  # fail before reading the heads
    heads = None
    if not no_heads:
        if not cfg.kafka_bootstrap:
            raise UserError(
                "VOTE_LEDGER_KAFKA_BOOTSTRAP is not set, so the published chain heads cannot be read;"
                " set it, or pass --no-heads to verify without them"
            )
        try:
            heads = await read_heads(cfg)
        except HeadsUnavailable as exc:
            raise UserError(
                f"{exc}; the published chain heads cannot be checked: pass --no-heads to verify without them"
            ) from None
    conn = await connect_as(cfg, READER_ROLE)
    try:
        result = await verify_meeting(conn, meeting_id, expect_hash, heads, on_progress)
    except UnknownMeeting:
        raise UserError(
            f"no row of meeting {meeting_id!r} in the log"
            + (
                " (published heads not checked): an unknown meeting, or every row of it was deleted"
                if no_heads
                else " and no chain head published for it: an unknown meeting, nothing to verify"
            )
        ) from None
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
        lines.append(
            f"note {v1:,} row(s) logged before migration 010 are under chain v1:"
            " their recorded_at and Kafka source are not covered"
        )
    lines += _render_parked(report.get("parked"))
    lines += _render_heads(report)
    if report.get("first_missing_position") is not None:
        lines.append(f"FAIL positions: position {report['first_missing_position']} is missing from the log")
    for problem in report.get("problems", []):
        lines.append(f"FAIL {problem}")
    if report.get("misjudged"):  # a row the rules decide otherwise: forged, or a signature or key edited
        lines.append(f"FAIL decision: {report['misjudged']['detail']}")
    if compact := report.get("compact_mismatch"):  # what the folds read is not the payload: the tally may not be
        lines.append(
            f"FAIL compact_mismatch: row {compact['position']}'s compact form is not its payload's decoding"
            f" ({compact['rows']:,} row(s)); the projection and replays read it"
        )
    if report.get("rows_without_compact"):
        lines.append(
            f"note {report['rows_without_compact']:,} row(s) logged before migration 019 have no compact form:"
            " the folds decode their payload"
        )
    if report.get("rows_other_compact_format"):
        lines.append(
            f"note {report['rows_other_compact_format']:,} row(s) hold a compact form of another format than this"
            " version's: the folds decode their payload"
        )
    if report.get("anchor_mismatch"):
        lines.append("FAIL the chain no longer ends on the expected hash: rows removed from the end, or re-hashed")
    mismatches = report.get("tally_mismatches")
    if report.get("tally_compared") is False:
        lines.append(
            f"note tally not compared: the projection has not reached the meeting (checkpoint {report['checkpoint']})"
        )
    elif mismatches is not None:
        if mismatches:
            lines.append(f"FAIL tally at checkpoint {report['checkpoint']}: " + "; ".join(mismatches[:5]))
        else:
            lines.append(f"ok   tally recomputed from scratch equals the projection at position {report['checkpoint']}")
    register = report.get("register")
    if register is None:
        lines.append("WARN register: the meeting was never scheduled in this log, so it has no register")
    elif register["complete"]:
        lines.append(f"ok   register {summary(register)}")
    else:
        lines.append(f"WARN REGISTER {summary(register)}")
    if not report["ok"]:
        lines.append("NOT VERIFIED")
    elif report.get("heads") is None:
        lines.append("VERIFIED, except against the published chain heads (not checked)")
    else:
        lines.append("VERIFIED")
    if report["ok"] and register_incomplete(report):
        lines.append("REGISTER INCOMPLETE: the log holds together, but its results are not final (exit 3)")
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
        lines.append(
            f"note {parked['not_chained']:,} message(s) parked before migration 010 are on no chain: not covered"
        )
    return lines


def _render_heads(report: dict) -> list[str]:
    """The published chain heads: checked (and which failed), or plainly not."""
    heads, topic = report.get("heads"), report.get("heads_topic") or "ledger.heads"
    if heads is None:
        why = report.get("heads_skipped") or "offline"
        anchor = (
            "anchor it with --expect-hash POSITION:HEX taken from a published head or report"
            if why == "offline"
            else "an edit re-hashed to the end of the chain, or rows cut from its end, would go unnoticed"
        )
        return [f"SKIP published chain heads: NOT CHECKED ({why}); {anchor}"]
    lines = []
    for name, label, at in (("meeting", "meeting's", "position"), ("parked", "parked messages'", "id")):
        found = heads[name]
        for failure in found["failures"]:
            lines.append(
                f"FAIL published head of the {label} chain at {at} {failure['position']}"
                f" ({failure['rows']:,} rows, published {failure['published_at']}): {failure['detail']}"
            )
        latest = found["latest"]
        if latest is None:
            lines.append(
                f"{'WARN' if name == 'meeting' else 'ok  '} published heads of the {label} chain: none on"
                f" {topic}" + (": nothing outside the database anchors it yet" if name == "meeting" else "")
            )
        elif not found["failures"]:
            lines.append(
                f"ok   published heads of the {label} chain: all {found['checked']:,} on {topic} hold, the latest"
                f" at {at} {latest['position']} ({latest['rows']:,} rows, published {latest['published_at']})"
            )
    return lines

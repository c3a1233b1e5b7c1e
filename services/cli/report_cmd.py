"""`vote-ledger report final | overvotes | rejections`: the certified results and what was set aside."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from projections.completeness import summary
from projections.report import render_csv, render_json, render_markdown
from services.cli import UserError, campaign_cmd
from services.cli.common import add_format, show, whole_number
from services.read.export_file import BadExport
from services.read.offline import final_report_from_file
from services.read.renderings import final_report_refusal

# Markdown and CSV end with a newline already; JSON gets one like every other command's output.
_FINAL_RENDERERS = {"md": render_markdown, "json": lambda r: render_json(r) + "\n", "csv": render_csv}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` command and its three reports."""
    r = sub.add_parser(
        "report",
        help="final report (Form 8-K Item 5.07), over-votes, rejections",
        description="Print a meeting's reports from the log and the tally projection.",
    )
    reports = r.add_subparsers(dest="report", required=True, metavar="REPORT")

    f = reports.add_parser(
        "final",
        help="the final voting results, after Form 8-K Item 5.07",
        description="Per item For / Against / Abstain / Broker non-votes (frequency: 1 / 2 / 3 years /"
        " Abstain / Broker non-votes) and the outcome, shares present and the quorum"
        " percentage; Markdown and JSON also give the log position and the SHA-256 digest"
        " of the meeting's log rows the numbers were computed at.",
    )
    source = f.add_mutually_exclusive_group(required=True)
    source.add_argument("--meeting", help="meeting id, e.g. cbak-2023-agm")
    source.add_argument(
        "--file",
        type=Path,
        help="an export (vote-ledger export): replay it offline, no services;"
        " refused if it does not verify against its manifest",
    )
    add_format(
        f,
        tuple(_FINAL_RENDERERS),
        default="md",
        help="md (default), json, or csv (one row per item, no position/digest)",
    )
    f.add_argument(
        "--preliminary",
        action="store_true",
        help="a preliminary report, titled PRELIMINARY (md and json): the only report given while the meeting's"
        " register is incomplete (without it, report final refuses an incomplete register)",
    )
    f.set_defaults(func=_final)

    o = reports.add_parser(
        "overvotes",
        help="nominees over their DTC entitlement on an item (R17)",
        description="Each nominee whose votes on an item exceed its entitlement: entitlement, voted and"
        " counted shares per option, the policy, and under `reject` the refused event ids.",
    )
    o.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    add_format(o)
    o.set_defaults(func=_overvotes)

    j = reports.add_parser(
        "rejections",
        help="rejected submissions per reason code, with examples; parked messages",
        description="Count a meeting's rejected log rows per reason code, with the first examples of each"
        " (position, event id, control number, channel, received at), and the parked"
        " (undecodable) messages of all meetings.",
    )
    j.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    add_format(j)
    j.add_argument(
        "--examples", type=whole_number(0), default=3, metavar="N", help="examples per reason code (default 3)"
    )
    j.set_defaults(func=_rejections)
    campaign_cmd.register(reports)  # timeline, campaign, call-list


def _final(args: argparse.Namespace) -> int:
    if args.preliminary and args.format == "csv":
        raise UserError("report final --preliminary: CSV has no title to say PRELIMINARY in; use --format md or json")
    if args.file is not None:
        try:
            report = final_report_from_file(args.file, preliminary=args.preliminary)
        except BadExport as exc:
            raise UserError(str(exc)) from None
        sys.stdout.write(_FINAL_RENDERERS[args.format](_final_or_refused(report)))
        return 0
    from services.read.reports import read_final_report

    render = _FINAL_RENDERERS[args.format]
    return show(
        args.meeting,
        lambda conn: read_final_report(conn, args.meeting, args.preliminary),
        lambda report: render(_final_or_refused(report)),
    )


def _final_or_refused(report: dict[str, Any]) -> dict[str, Any]:
    """The report, unless its register is incomplete and it was not asked for as preliminary: then UserError."""
    refusal = final_report_refusal(report)
    if refusal is not None:
        raise UserError(f"{refusal}; pass --preliminary for a report titled PRELIMINARY")
    return report


def _overvotes(args: argparse.Namespace) -> int:
    from services.read.reports import over_vote_report

    render = _json if args.format == "json" else lambda r: render_overvotes(r) + "\n"
    return show(args.meeting, lambda conn: over_vote_report(conn, args.meeting), render)


def _rejections(args: argparse.Namespace) -> int:
    from services.read.reports import rejection_report

    render = _json if args.format == "json" else lambda r: render_rejections(r) + "\n"
    return show(args.meeting, lambda conn: rejection_report(conn, args.meeting, args.examples), render)


def _json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def render_overvotes(report: dict[str, Any]) -> str:
    """A readable over-vote report: one block per nominee and item."""
    lines = [
        f"Over-votes of meeting {report['meeting_id']}  (policy {report['policy']},"
        f" log position {report['as_of_position']})"
    ]
    if report.get("register") is not None and not report["register"]["complete"]:
        lines.append(f"REGISTER {summary(report['register'])}: entitlements not recorded are not checked")
    if not report["over_votes"]:
        return "\n".join(lines + ["No nominee voted more than its entitlement on any item."])
    for o in report["over_votes"]:
        voted = sum(o["voted"].values())
        lines += [
            "",
            f"{o['nominee']}  item {o['item_id']}: entitlement {o['entitlement']:,}, voted {voted:,} ({o['policy']})",
        ]
        lines += [
            f"  {option:<10}voted {shares:>14,}   counted {o['counted'].get(option, 0):>14,}"
            for option, shares in o["voted"].items()
        ]
        if o["rejected"]:
            lines.append("  refused instructions: " + ", ".join(o["rejected"]))
        if o.get("attempted") is not None:  # `reject`: what the refused instructions tried (R17, R19)
            lines.append(f"  attempted {o['attempted']:,}, counted {voted:,} (the refused instructions do not count)")
            lines += [
                f"  refused {r['event_id']}: attempted {r['attempted']:,}, counted {r['counted']:,}"
                f" (control number {r['control_number']})"
                for r in o["refusals"]
            ]
    return "\n".join(lines)


def render_rejections(report: dict[str, Any]) -> str:
    """A readable rejection report: count per reason code, then its examples."""
    lines = [
        f"Rejections of meeting {report['meeting_id']}  (log position {report['as_of_position']}):"
        f" {report['rejected']:,} rejected; parked messages (all meetings): {report['parked_overall']:,}"
    ]
    for reason in report["reasons"]:
        lines += ["", f"{reason['reason']:<28}{reason['count']:>10,}"]
        lines += [
            f"  #{e['position']:<10} {e['event_id']:<38} {e['control_number'] or '-':<22}"
            f" {e['channel'] or '-':<10} {e['received_at'] or '-'}"
            for e in reason["examples"]
        ]
    return "\n".join(lines)

"""`vote-ledger report timeline | campaign | call-list`: the dashboard's series and the proxy solicitor's view."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli import UserError
from services.cli.common import add_format, show, whole_number


def register(reports: argparse._SubParsersAction) -> None:
    """Add the three reports to `report`'s subcommands (called by services.cli.report_cmd)."""
    t = reports.add_parser(
        "timeline",
        help="submissions, rejections by reason and shares present per time bucket",
        description="Per time bucket of the log's recorded_at: accepted submissions, rejected rows by reason code,"
        " other rows, and the shares present at the bucket's end; the log head and the meeting's chain head.",
    )
    t.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    t.add_argument(
        "--bucket-s",
        type=whole_number(1, 604_800),
        default=None,
        metavar="N",
        help="bucket width in seconds (default: a width giving at most 300 buckets)",
    )
    add_format(t)
    t.set_defaults(func=_timeline)

    c = reports.add_parser(
        "campaign",
        help="turnout by channel and nominee, and the forecast at the polls' close",
        description="Shares present by channel and by nominee (DTC participant), and the projection of final"
        " turnout, quorum and each item's outcome with its interval (method: docs/campaign.md).",
    )
    c.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    add_format(c)
    c.set_defaults(func=_campaign)

    cl = reports.add_parser(
        "call-list",
        help="the largest positions whose holders have not instructed yet",
        description="The largest positions not present, or present only by their nominee's discretionary vote"
        " (R10): control number, holders, shares, nominee.",
    )
    cl.add_argument("--meeting", required=True, help="meeting id, e.g. cbak-2023-agm")
    cl.add_argument("--limit", type=whole_number(1, 100_000), default=50, metavar="N", help="positions (default 50)")
    add_format(cl)
    cl.set_defaults(func=_call_list)


def _json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def _timeline(args: argparse.Namespace) -> int:
    from services.read.timeline import TooManyBuckets, read_timeline

    async def read(conn: Any) -> dict[str, Any]:
        try:
            return await read_timeline(conn, args.meeting, args.bucket_s)
        except TooManyBuckets as exc:
            raise UserError(f"report timeline: {exc}") from None

    return show(args.meeting, read, _json if args.format == "json" else lambda r: render_timeline(r) + "\n")


def _campaign(args: argparse.Namespace) -> int:
    from services.read.campaign import read_campaign

    render = _json if args.format == "json" else lambda r: render_campaign(r) + "\n"
    return show(args.meeting, lambda conn: read_campaign(conn, args.meeting), render)


def _call_list(args: argparse.Namespace) -> int:
    from services.read.campaign import call_list

    render = _json if args.format == "json" else lambda r: render_call_list(r) + "\n"
    return show(args.meeting, lambda conn: call_list(conn, args.meeting, args.limit), render)


def render_timeline(report: dict[str, Any]) -> str:
    """One line per bucket: start, accepted, rejected (by reason), other rows, position, shares present."""
    head = report["chain_head"]
    lines = [
        f"Timeline of meeting {report['meeting_id']}  (log position {report['as_of_position']},"
        f" {report['rows']:,} rows, buckets of {report['bucket_s']:,} s)",
        f"Chain head: {head['position']}:{head['hash']}" if head else "Chain head: none",
        f"{'start':<26}{'accepted':>10}{'rejected':>10}{'other':>7}{'position':>10}{'present':>14}  reasons",
    ]
    for b in report["buckets"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in b["rejected"].items())
        lines.append(
            f"{b['start']:<26}{b['accepted']:>10,}{sum(b['rejected'].values()):>10,}{b['other']:>7,}"
            f"{b['position']:>10}{b['present']:>14,}  {reasons}"
        )
    return "\n".join(lines)


def render_campaign(report: dict[str, Any]) -> str:
    """Turnout by channel and by nominee, then the forecast with its interval."""
    lines = [
        f"Campaign of meeting {report['meeting_id']}  (log position {report['as_of_position']}):"
        f" present {report['present']:,} of {report['outstanding']:,}",
        "",
        f"{'channel':<12}{'present':>14}{'% out':>8}{'holders':>9}{'broker discretion':>19}",
    ]
    lines += [
        f"{c['channel']:<12}{c['present']:>14,}{c['percent_of_outstanding']:>8}{c['control_numbers']:>9,}"
        f"{c['discretionary']:>19,}"
        for c in report["by_channel"]
    ]
    lines += ["", f"{'nominee':<26}{'shares':>14}{'present':>14}{'%':>8}{'entitlement':>14}"]
    lines += [
        f"{n['nominee'] or 'registered holders':<26}{n['shares']:>14,}{n['present']:>14,}{n['percent_of_shares']:>8}"
        f"{'' if n['entitlement'] is None else format(n['entitlement'], ','):>14}"
        for n in report["by_nominee"]
    ]
    f = report["forecast"]
    lines += ["", f"Forecast ({f['status']}) at the polls' close {f['polls_close']}, as of {f['as_of_time']}:"]
    if f["status"] != "projected":
        lines.append("  no projection: " + ("the polls are closed" if f["status"] == "final" else "too early"))
        return "\n".join(lines)
    t, q = f["turnout"], f["quorum"]
    lines += [
        f"  turnout {t['projected']:,} ({t['projected_percent']} %), 90 % interval {t['low']:,} to {t['high']:,}",
        f"  quorum {q['required']:,}: {'met' if q['projected_met'] else 'NOT met'}"
        f" (probability {q['met_probability']})",
        f"  elapsed {f['elapsed_fraction']:.0%} of the campaign;"
        f" broker votes assumed at {f['broker_rate_assumed']:.0%}",
        "",
        f"  {'item':<8}{'outcome':<14}{'prob.':>6}{'margin':>14}{'interval':>30}",
    ]
    lines += [
        f"  {item_id:<8}{i['outcome']:<14}{i['outcome_probability']:>6}{i['margin']:>14,}"
        f"{format(i['margin_low'], ',') + ' to ' + format(i['margin_high'], ','):>30}"
        for item_id, i in f["items"].items()
    ]
    return "\n".join(lines)


def render_call_list(report: dict[str, Any]) -> str:
    """The call list: largest first."""
    lines = [
        f"Call list of meeting {report['meeting_id']}  (log position {report['as_of_position']}):"
        f" the {report['limit']} largest positions without an instruction",
        f"{'control number':<22}{'shares':>14}  {'status':<17}{'nominee':<26}holders",
    ]
    lines += [
        f"{p['control_number']:<22}{p['shares']:>14,}  {p['status']:<17}{p['nominee'] or '-':<26}"
        f"{'; '.join(p['holders']) or '(not disclosed)'}"
        for p in report["positions"]
    ]
    return "\n".join(lines)

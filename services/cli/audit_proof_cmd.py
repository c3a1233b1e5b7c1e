"""`vote-ledger audit prove | receipt | consistency`: holders' receipts and proofs between heads (docs/receipts.md).

`prove` reads the live log (reader role) or an export; `receipt` is offline: it needs the bundle
alone, no database and no Kafka. `consistency` is in audit_consistency_cmd.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from services.cli import UserError
from services.cli.common import add_format, whole_number
from services.settings import settings

MAX_BUNDLE = 16 * 1024 * 1024  # a receipt holds a few rows and O(log n) hashes each: kilobytes


def add_proofs(actions: argparse._SubParsersAction) -> None:
    """Add `audit prove`, `audit receipt` and `audit consistency` to the audit command's actions."""
    from services.cli.audit_consistency_cmd import register_consistency

    _register_prove(actions)
    _register_receipt(actions)
    register_consistency(actions)


def hex_root(text: str) -> str:
    """An argparse type: a SHA-256 hash (a Merkle root, a row hash), 64 hex digits."""
    root = text.strip().lower()
    if len(root) != 64 or any(c not in "0123456789abcdef" for c in root):
        raise argparse.ArgumentTypeError(f"not a hash of 64 hex digits: {text!r}")
    return root


def _register_prove(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "prove",
        help="a receipt bundle: an event's log row proven in its meeting's Merkle tree",
        description="Write a receipt bundle for the row logged under EVENT_ID (its accepted row; with none, its"
        " only rejected row; --row-hash or --position picks any one): the row (every field its hash"
        " covers), the previous row's hash, its audit path to a head of the meeting's Merkle tree, and"
        " when the row was accepted the same for the control number's other rows and the meeting's own rows,"
        " so `audit receipt` can say offline whether the submission counts (a rejected row is proven alone:"
        " it counts nothing, and shows no other row of the holder). Against the latest head published on"
        " ledger.heads by default (the tree at the log's end when no published head reaches the row,"
        " or Kafka cannot be read: the output says so), or the tree of the meeting's first N rows.",
    )
    p.add_argument("event_id", metavar="EVENT_ID", help="the event id the channel gave the submission")
    p.add_argument("--meeting", metavar="ID", help="meeting id, needed only if the event id is accepted in several")
    p.add_argument(
        "--head-size",
        type=whole_number(1),
        metavar="N",
        help="prove against the tree of the meeting's first N rows (a head the holder holds) instead",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--row-hash",
        type=hex_root,
        metavar="HEX",
        help="prove the row under EVENT_ID with this hash (the hash in the ledger's answer on votes.decisions)",
    )
    which.add_argument(
        "--position",
        type=whole_number(1, 2**63 - 1),
        metavar="N",
        help="prove the row under EVENT_ID at this log position",
    )
    p.add_argument("--file", type=Path, metavar="EXPORT", help="read an export (vote-ledger export) instead of the log")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the bundle here (default: standard output)")
    add_format(p, help="how to print what was proven when --out is given: table (default) or json")
    p.set_defaults(func=_prove)


def _prove(args: argparse.Namespace) -> int:
    from projections.receipts import encode_bundle
    from services.read.export_file import BadExport
    from services.read.proofs import ProofError, prove_event_file

    try:
        if args.file is not None:
            proven = prove_event_file(args.file, args.event_id, args.head_size, args.row_hash, args.position)
            if args.meeting is not None and proven.bundle.meeting_id != args.meeting:
                raise UserError(f"{args.file} is an export of meeting {proven.bundle.meeting_id}, not {args.meeting}")
        else:
            proven = run_proof(lambda conn, heads: _prove_online(conn, heads, args), args.head_size is None)
    except (ProofError, BadExport) as exc:
        raise UserError(str(exc)) from None
    summary = proven.as_dict()
    bundle = encode_bundle(proven.bundle)
    if args.out is None:
        sys.stdout.buffer.write(bundle)
        sys.stderr.write(render_proven(summary) + "\n")
        return 0
    args.out.write_bytes(bundle)
    print(json.dumps({**summary, "out": str(args.out)}, indent=2) if args.format == "json" else render_proven(summary))
    if args.format != "json":
        head = summary["head"]
        print(
            f"Written to {args.out}; check it with: vote-ledger audit receipt {args.out}"
            f" --head-size {head['tree_size']} --root {head['merkle_root']}"
        )
    return 0


async def _prove_online(conn, heads, args: argparse.Namespace):
    from services.read.proofs import prove_event

    return await prove_event(conn, args.event_id, args.meeting, args.head_size, heads, args.row_hash, args.position)


def run_proof(prove, want_heads: bool):
    """Read the published heads (if wanted and reachable), then prove on a reader-role connection."""
    from services.adapters.postgres.connect import READER_ROLE, connect_as, role_dsn
    from services.runtime.chain_heads import HeadsUnavailable, read_heads

    cfg = settings()
    role_dsn(cfg, READER_ROLE)  # a missing DSN says so before Kafka is tried

    async def go():
        heads, unread = None, None
        if want_heads and cfg.kafka_bootstrap:
            try:
                heads = await read_heads(cfg)
            except HeadsUnavailable as exc:
                unread = f"the published heads could not be read ({exc}): against the tree at the log's end"
        elif want_heads:
            unread = "VOTE_LEDGER_KAFKA_BOOTSTRAP is not set, so no published head was read: against the log's end"
        conn = await connect_as(cfg, READER_ROLE)
        try:
            proven = await prove(conn, heads)
        finally:
            await conn.close()
        if unread is not None:
            proven.notes = [unread]
        return proven

    return asyncio.run(go())


def render_proven(summary: dict[str, Any]) -> str:
    """What a proof is about and against which head, in a few lines."""
    head = summary["head"]
    source = (
        f"published on ledger.heads at {head['published_at']}"
        if summary["head_source"] == "published"
        else "computed from the log, not a published head"
    )
    lines = []
    if "event_id" in summary:
        decision = summary["decision"] + (f": {summary['reason']}" if summary["reason"] else "")
        lines.append(
            f"Receipt for event {summary['event_id']} of meeting {summary['meeting_id']}: position"
            f" {summary['position']}, leaf {summary['leaf_index']} of {head['tree_size']:,}, {decision}"
            f" ({summary['rows_proven']} row(s) proven)"
        )
    else:
        old = summary["old"]
        lines.append(
            f"Consistency of meeting {summary['meeting_id']}: tree of {old['tree_size']:,} rows"
            f" (root {old['merkle_root']}) -> tree of {head['tree_size']:,} rows"
        )
    lines.append(f"Head: {head['tree_size']:,} rows, root {head['merkle_root']} ({source})")
    lines += [f"note {note}" for note in summary["notes"]]
    return "\n".join(lines)


def _register_receipt(actions: argparse._SubParsersAction) -> None:
    r = actions.add_parser(
        "receipt",
        help="check a receipt bundle offline: VALID or INVALID, and whether the submission counts",
        description="Check a bundle written by `audit prove`, with no database and no Kafka: recompute the"
        " submission's row hash from its fields (what was logged is what was submitted), the root from"
        " its audit path, and compare it with the bundle's head, or with the head pinned by --head-size"
        " and --root (take them from a head the ledger published, not from the bundle). Then say what"
        " became of the submission among the control number's rows (as `audit history`). Exits 1 when"
        " the bundle is INVALID.",
    )
    r.add_argument("bundle", metavar="BUNDLE", type=Path, help="the receipt bundle (JSON) written by audit prove")
    r.add_argument("--head-size", type=whole_number(1), metavar="N", help="the pinned head's tree size (with --root)")
    r.add_argument("--root", type=hex_root, metavar="HEX", help="the pinned head's Merkle root (with --head-size)")
    r.add_argument(
        "--row-hash",
        type=hex_root,
        metavar="HEX",
        help="the row hash in the ledger's answer on votes.decisions: the bundle's row must hash to it",
    )
    add_format(r)
    r.set_defaults(func=_receipt)


def read_bundle(path: Path) -> bytes:
    """A bundle's bytes; a one-line UserError for a file that is missing, not regular or over MAX_BUNDLE."""
    from services.files import read_regular

    try:
        return read_regular(path, MAX_BUNDLE, "bundle written by vote-ledger audit")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def pin(size: int | None, root: str | None, what: str) -> tuple[int, str] | None:
    if (size is None) != (root is None):
        raise UserError(f"pin the {what} with both its size and its root, or neither")
    return None if size is None or root is None else (size, root)


def _receipt(args: argparse.Namespace) -> int:
    from projections.receipt_check import check_receipt
    from projections.receipts import BadBundle, decode_receipt

    pinned = pin(args.head_size, args.root, "head")
    try:
        receipt = decode_receipt(read_bundle(args.bundle))
    except BadBundle as exc:
        raise UserError(f"{args.bundle}: {exc}") from None
    check = check_receipt(receipt, pinned, args.row_hash)
    report = {**check.as_dict(), "pinned": pinned is not None, "row_hash_pinned": args.row_hash is not None}
    print(json.dumps(report, indent=2) if args.format == "json" else render_receipt(report, check))
    return 0 if check.valid else 1


def render_receipt(report: dict[str, Any], check) -> str:
    """The verdict in words: VALID or INVALID, the decision, what became of the submission."""
    from projections.receipt_check import describe

    head = report["head"]
    verdict = "VALID" if report["valid"] else "INVALID"
    lines = [
        f"{verdict} receipt: event {report['event_id']} of meeting {report['meeting_id']}, log position"
        f" {report['position']}, in the tree of {head['tree_size']:,} rows with root {head['merkle_root']}"
    ]
    for problem in report["problems"]:
        lines.append(f"FAIL {problem}")
    if report["valid"]:
        answered = ", the hash the ledger's answer gave" if report["row_hash_pinned"] else ""
        lines.append(f"ok   the logged row's fields hash to {report['row_hash']}{answered}")
        lines.append("ok   its audit path (hashes of other rows, never their contents) leads to that root")
        if report["pinned"]:
            lines.append("ok   that is the head you pinned")
        else:
            published = f" (the bundle says it was published at {head['published_at']})" if head["published_at"] else ""
            lines.append(
                f"note no head pinned{published}: compare the size and root above with a head the ledger published,"
                " or pass them with --head-size and --root"
            )
        lines.append(f"Logged: {report['payload']}")
        decision = report["decision"] + (f" ({report['reason']})" if report["reason"] else "")
        lines.append(f"Decision: {decision}")
        lines.append(describe(check))
        lines += [f"note {note}" for note in report["notes"]]
    return "\n".join(lines)

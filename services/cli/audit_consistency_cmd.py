"""`vote-ledger audit consistency`: prove (or --check offline) that a later head of a meeting's tree extends an earlier.

From the live log (reader role, heads from Kafka) or an export; `--check` needs the bundle alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.cli import UserError
from services.cli.audit_proof_cmd import hex_root, pin, read_bundle, run_proof
from services.cli.common import add_format, whole_number


def register_consistency(actions: argparse._SubParsersAction) -> None:
    """Add `audit consistency` to the audit command's actions."""
    c = actions.add_parser(
        "consistency",
        help="prove (or --check offline) that a later head of a meeting's tree extends an earlier one",
        description="Prove that the meeting's tree now (the latest published head, or --new-size N rows)"
        " extends the tree of --old-size rows with root --old-root: no row before that head was rewritten"
        " or removed since. From the live log (--meeting) or an export (--file). --check BUNDLE checks a"
        " proof written with --out offline (pin its heads with the --old-/--new- flags). Exits 1 when it"
        " does not hold.",
    )
    c.add_argument("--meeting", metavar="ID", help="meeting id (reads PostgreSQL, and its heads from Kafka)")
    c.add_argument("--file", type=Path, metavar="EXPORT", help="an export written by vote-ledger export")
    c.add_argument("--check", type=Path, metavar="BUNDLE", help="check a consistency bundle offline instead")
    c.add_argument("--old-size", type=whole_number(1), metavar="N", help="the earlier head's tree size")
    c.add_argument("--old-root", type=hex_root, metavar="HEX", help="the earlier head's Merkle root")
    c.add_argument("--new-size", type=whole_number(1), metavar="N", help="the later head's tree size (default: latest)")
    c.add_argument("--new-root", type=hex_root, metavar="HEX", help="with --check: the later head's root to pin")
    c.add_argument("--out", type=Path, metavar="FILE", help="write the consistency bundle here")
    add_format(c)
    c.set_defaults(func=_consistency)


def _consistency(args: argparse.Namespace) -> int:
    from projections.receipt_check import check_consistency
    from projections.receipts import BadBundle, decode_consistency, encode_bundle
    from services.read.consistency import prove_consistency_file
    from services.read.export_file import BadExport
    from services.read.proof_trees import ProofError

    sources = [name for name in ("meeting", "file", "check") if getattr(args, name) is not None]
    if len(sources) != 1:
        raise UserError("give exactly one of --meeting, --file and --check")
    if args.check is not None:
        try:
            bundle = decode_consistency(read_bundle(args.check))
        except BadBundle as exc:
            raise UserError(f"{args.check}: {exc}") from None
        old = pin(args.old_size, args.old_root, "old head")
        new = pin(args.new_size, args.new_root, "new head")
        problems = check_consistency(bundle, old, new)
        report = {"meeting_id": bundle.meeting_id, "old": _head(bundle.old), "new": _head(bundle.new)}
        report |= {"consistent": not problems, "problems": problems}
        report["notes"] = [
            f"the {name} head is the bundle's: compare it with a head you hold, or pin it with --{name}-size"
            f" and --{name}-root"
            for name, held in (("old", old), ("new", new))
            if held is None
        ]
    else:
        if args.old_size is None or args.old_root is None:
            raise UserError("--old-size and --old-root are needed: the head to prove the log extends")
        if args.new_root is not None:
            raise UserError("--new-root pins a head with --check only")
        try:
            if args.file is not None:
                proven = prove_consistency_file(args.file, args.old_size, args.old_root, args.new_size)
            else:
                proven = run_proof(lambda conn, heads: _consistency_online(conn, heads, args), args.new_size is None)
        except (ProofError, BadExport) as exc:
            raise UserError(str(exc)) from None
        bundle = proven.bundle
        problems = check_consistency(bundle)
        report = {**proven.as_dict(), "old": _head(bundle.old), "new": _head(bundle.new)}
        report |= {"consistent": not problems, "problems": problems}
        if args.out is not None:
            args.out.write_bytes(encode_bundle(bundle))
            report["out"] = str(args.out)
    print(json.dumps(report, indent=2) if args.format == "json" else render_consistency(report))
    return 0 if report["consistent"] else 1


async def _consistency_online(conn, heads, args: argparse.Namespace):
    from services.read.consistency import prove_consistency

    return await prove_consistency(conn, args.meeting, args.old_size, args.old_root, args.new_size, heads)


def _head(head) -> dict[str, Any]:
    return {"tree_size": head.tree_size, "merkle_root": head.merkle_root, "published_at": head.published_at}


def render_consistency(report: dict[str, Any]) -> str:
    """The verdict: CONSISTENT or NOT CONSISTENT, between which heads."""
    old, new = report["old"], report["new"]
    source = ""
    if "head_source" in report:
        source = (
            f" (published at {new['published_at']})"
            if report["head_source"] == "published"
            else " (computed from the log, not a published head)"
        )
    lines = [
        f"meeting {report['meeting_id']}: tree of {old['tree_size']:,} rows, root {old['merkle_root']}",
        f"  -> tree of {new['tree_size']:,} rows, root {new['merkle_root']}{source}",
    ]
    lines += [f"note {note}" for note in report.get("notes", [])]
    for problem in report["problems"]:
        lines.append(f"FAIL {problem}")
    if report.get("old_root_now") not in (None, old["merkle_root"]):
        lines.append(f"FAIL the log's first {old['tree_size']:,} rows now hash to {report['old_root_now']}")
    if report.get("out"):
        lines.append(
            f"Written to {report['out']}; check it offline with: vote-ledger audit consistency --check {report['out']}"
        )
    lines.append("CONSISTENT" if report["consistent"] else "NOT CONSISTENT")
    return "\n".join(lines)

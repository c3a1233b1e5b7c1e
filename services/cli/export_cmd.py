"""`vote-ledger export`: a self-contained file of a meeting's log for offline audit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.cli import UserError
from services.cli.common import add_format, add_quiet, run
from services.cli.progress import progress_bar
from services.read.export_file import manifest_dict
from services.settings import settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    e = sub.add_parser(
        "export",
        help="write a meeting's log to a self-contained file",
        description="Write every log row of a meeting (payloads exactly as stored, with the hash chain) and a"
        " manifest (counts, final hash, the projector position, software version) to a zip file."
        " `audit verify --file`, `tally --file` and `report final --file` then work with no Kafka"
        " and no PostgreSQL.",
    )
    e.add_argument("--meeting", required=True, help="meeting id")
    e.add_argument("--out", required=True, type=Path, help="the file to write (zip)")
    add_format(
        e,
        ("json", "table"),
        default="json",
        help="how to print the manifest of the export written: json (default) or table",
    )
    add_quiet(e)
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.export import UnknownMeetingExport, export_meeting

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            with progress_bar(f"exporting {args.meeting}", unit="positions", quiet=args.quiet) as on_progress:
                manifest = await export_meeting(conn, args.meeting, args.out, on_progress)
        except UnknownMeetingExport:
            raise UserError(f"no row of meeting {args.meeting!r} in the log: nothing to export") from None
        finally:
            await conn.close()
        described = manifest_dict(manifest)
        print(json.dumps(described, indent=2) if args.format == "json" else render_manifest(described))
        return 0

    return run(go())


def render_manifest(manifest: dict[str, Any]) -> str:
    """The manifest as aligned name / value lines (the software as name version)."""
    values = {**manifest, "software": " ".join(manifest["software"].values())}
    width = max(map(len, values))
    return "\n".join(f"{name:<{width}}  {'-' if value is None else value}" for name, value in values.items())

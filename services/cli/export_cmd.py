"""`vote-ledger export`: a self-contained file of a meeting's log for offline audit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.adapters.postgres.connect import READER_ROLE, connect_as
from services.cli import UserError
from services.cli.common import run
from services.read.export import UnknownMeetingExport, export_meeting
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
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            manifest = await export_meeting(conn, args.meeting, args.out)
        except UnknownMeetingExport:
            raise UserError(f"no row of meeting {args.meeting!r} in the log: nothing to export") from None
        finally:
            await conn.close()
        print(json.dumps(manifest_dict(manifest), indent=2))
        return 0

    return run(go())

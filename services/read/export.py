"""Self-contained exports of a meeting's log, written from PostgreSQL (the format: services/read/export_file.py)."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec

from services.adapters.postgres import tally_store
from services.adapters.postgres.log import export as log_export
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.tally_store import PROJECTION
from services.read.export_file import (
    FORMAT,
    FORMAT_VERSION,
    LOG_MEMBER,
    MANIFEST_MEMBER,
    PARKED_MEMBER,
    ExportParked,
    ExportRow,
    Manifest,
    row_encoder,
    software_version,
)


class UnknownMeetingExport(LookupError):
    """No row of the meeting is in the log: there is nothing to export."""


async def export_meeting(
    conn: asyncpg.Connection,
    meeting_id: str,
    out: Path,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Manifest:
    """Write the meeting's export to ``out`` from one consistent snapshot; return its manifest.

    Raises UnknownMeetingExport (writing nothing) if the log holds no row of the meeting.
    ``on_progress(position, of)``: called now and then with the log position reached and the
    projector's checkpoint (or beyond), for a progress bar.
    """
    if not await log_reads.meeting_logged(conn, meeting_id):
        raise UnknownMeetingExport(meeting_id)
    digest, parked_digest = hashlib.sha256(), hashlib.sha256()
    counts = {"accepted": 0, "rejected": 0}
    first = last = final_hash = parked_hash = None
    parked_rows = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            as_of = await tally_store.checkpoint(conn, PROJECTION)
            with archive.open(LOG_MEMBER, "w", force_zip64=True) as log:
                async for r in log_export.meeting_rows(conn, meeting_id):
                    row = ExportRow(
                        r["position"],
                        r["prev_position"],
                        r["meeting_id"],
                        r["event_id"],
                        r["type"],
                        r["decision"],
                        r["reason"],
                        r["payload"],
                        r["hash"],
                        r["recorded_at"].isoformat(),
                        r["chain_version"],
                        r["source_topic"],
                        r["source_partition"],
                        r["source_offset"],
                        None if r["appended_at"] is None else r["appended_at"].isoformat(),
                    )
                    line = row_encoder.encode(row) + b"\n"
                    log.write(line)
                    digest.update(line)
                    counts[row.decision] += 1
                    first = row.position if first is None else first
                    last, final_hash = row.position, row.hash
                    if on_progress is not None and (counts["accepted"] + counts["rejected"]) % 10_000 == 0:
                        on_progress(row.position, max(row.position, as_of))
            if on_progress is not None and last is not None:  # every row of it written: a full bar
                on_progress(last, last)
            with archive.open(PARKED_MEMBER, "w", force_zip64=True) as parked:
                async for r in log_export.parked_rows(conn):
                    line = (
                        row_encoder.encode(ExportParked(**{**dict(r), "parked_at": r["parked_at"].isoformat()})) + b"\n"
                    )
                    parked.write(line)
                    parked_digest.update(line)
                    parked_rows += 1
                    parked_hash = r["hash"] or parked_hash
        manifest = Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            meeting_id=meeting_id,
            rows=sum(counts.values()),
            accepted=counts["accepted"],
            rejected=counts["rejected"],
            first_position=first,
            last_position=last,
            as_of_position=as_of,
            final_hash=final_hash,
            log_sha256=digest.hexdigest(),
            software={"name": "vote-ledger", "version": software_version()},
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            parked_rows=parked_rows,
            parked_final_hash=parked_hash,
            parked_sha256=parked_digest.hexdigest(),
        )
        archive.writestr(MANIFEST_MEMBER, msgspec.json.format(msgspec.json.encode(manifest), indent=2))
    return manifest

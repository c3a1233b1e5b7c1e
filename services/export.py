"""Self-contained exports of a meeting's log, for auditors who trust no running service.

An export is a zip holding ``log.jsonl`` (every log row of the meeting, in position order, with its
hash-chain columns and the payload exactly as stored) and ``manifest.json`` (counts, the final
hash, the projector position the live reports were at, the SHA-256 of log.jsonl, the software).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from services.postgres import tally_store
from services.projector import PROJECTION

FORMAT = "vote-ledger-export"
FORMAT_VERSION = 1
LOG_MEMBER, MANIFEST_MEMBER = "log.jsonl", "manifest.json"


class ExportRow(msgspec.Struct, gc=False):
    """One log row as exported."""

    position: int
    prev_position: int | None
    meeting_id: str
    event_id: str
    type: str
    decision: str
    reason: str | None
    payload: str
    hash: str | None
    recorded_at: str


class Manifest(msgspec.Struct):
    """What an export holds and the values that anchor it."""

    format: str
    format_version: int
    meeting_id: str
    rows: int
    accepted: int
    rejected: int
    first_position: int | None
    last_position: int | None
    as_of_position: int
    final_hash: str | None
    log_sha256: str
    software: dict[str, str]
    exported_at: str


class BadExport(ValueError):
    """The file is not a vote-ledger export, or its manifest does not describe its log."""


_row_encoder = msgspec.json.Encoder()
_row_decoder = msgspec.json.Decoder(ExportRow)

_ROWS = ("SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload,"
         " encode(hash, 'hex') AS hash, recorded_at FROM ledger_log WHERE meeting_id = $1 ORDER BY position")


def software_version() -> str:
    """The installed vote-ledger version."""
    try:
        return version("vote-ledger")
    except PackageNotFoundError:
        return "unknown"


async def export_meeting(conn: asyncpg.Connection, meeting_id: str, out: Path) -> Manifest:
    """Write the meeting's export to ``out`` from one consistent snapshot; return its manifest."""
    digest = hashlib.sha256()
    counts = {"accepted": 0, "rejected": 0}
    first = last = final_hash = None
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            as_of = await tally_store.checkpoint(conn, PROJECTION)
            with archive.open(LOG_MEMBER, "w", force_zip64=True) as log:
                async for r in conn.cursor(_ROWS, meeting_id, prefetch=5000):
                    row = ExportRow(r["position"], r["prev_position"], r["meeting_id"], r["event_id"], r["type"],
                                    r["decision"], r["reason"], r["payload"], r["hash"], r["recorded_at"].isoformat())
                    line = _row_encoder.encode(row) + b"\n"
                    log.write(line)
                    digest.update(line)
                    counts[row.decision] += 1
                    first = row.position if first is None else first
                    last, final_hash = row.position, row.hash
        manifest = Manifest(
            format=FORMAT, format_version=FORMAT_VERSION, meeting_id=meeting_id, rows=sum(counts.values()),
            accepted=counts["accepted"], rejected=counts["rejected"], first_position=first, last_position=last,
            as_of_position=as_of, final_hash=final_hash, log_sha256=digest.hexdigest(),
            software={"name": "vote-ledger", "version": software_version()},
            exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        archive.writestr(MANIFEST_MEMBER, msgspec.json.format(msgspec.json.encode(manifest), indent=2))
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The export's manifest; BadExport if the file is not an export."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = msgspec.json.decode(archive.read(MANIFEST_MEMBER), type=Manifest)
    except (zipfile.BadZipFile, KeyError, msgspec.DecodeError, OSError) as exc:
        raise BadExport(f"{path}: not a vote-ledger export ({exc})") from None
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise BadExport(f"{path}: format {manifest.format} v{manifest.format_version} is not supported")
    return manifest


def read_rows(path: Path) -> Iterator[tuple[ExportRow, bytes]]:
    """Each exported row with its exact line bytes, streamed in file order."""
    with zipfile.ZipFile(path) as archive, archive.open(LOG_MEMBER) as log:
        for line in log:
            yield _row_decoder.decode(line), line


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain data."""
    return msgspec.to_builtins(manifest)

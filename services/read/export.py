"""Self-contained exports of a meeting's log, for auditors who trust no running service.

An export is a zip holding ``log.jsonl`` (every log row of the meeting, in position order, with its
hash-chain columns and the payload exactly as stored), ``parked.jsonl`` (every parked message, of
any meeting, with its own chain: undecodable messages name no meeting) and ``manifest.json``
(counts, the final hashes, the projector position the live reports were at, the SHA-256 of both
logs, the software). Format v2 adds parked.jsonl and the chain v2 columns (chain_version and the
Kafka source; recorded_at was already there); v1 exports still read and verify.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from services.adapters.postgres import tally_store
from services.runtime.projector import PROJECTION

FORMAT = "vote-ledger-export"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LOG_MEMBER, MANIFEST_MEMBER, PARKED_MEMBER = "log.jsonl", "manifest.json", "parked.jsonl"


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
    chain_version: int = 1  # absent from v1 exports, whose rows were all v1
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None


class ExportParked(msgspec.Struct, gc=False):
    """One parked message as exported: key and value in hex, as its chain hashes them."""

    id: int
    prev_id: int | None
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    value: str | None
    reason: str
    detail: str
    parked_at: str
    hash: str | None


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
    # Format v2: the parked messages' chain (None in v1 exports).
    parked_rows: int | None = None
    parked_final_hash: str | None = None
    parked_sha256: str | None = None


class BadExport(ValueError):
    """The file is not a vote-ledger export, or its manifest does not describe its log."""


_row_encoder = msgspec.json.Encoder()
_row_decoder = msgspec.json.Decoder(ExportRow)
_parked_decoder = msgspec.json.Decoder(ExportParked)

_ROWS = (
    "SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload,"
    " encode(hash, 'hex') AS hash, recorded_at, chain_version, source_topic, source_partition, source_offset"
    " FROM ledger_log WHERE meeting_id = $1 ORDER BY position"
)
_PARKED = (
    "SELECT id, prev_id, source_topic, source_partition, source_offset, encode(key, 'hex') AS key,"
    " encode(value, 'hex') AS value, reason, detail, parked_at, encode(hash, 'hex') AS hash"
    " FROM ledger_parked ORDER BY id"
)


class UnknownMeetingExport(LookupError):
    """No row of the meeting is in the log: there is nothing to export."""


def software_version() -> str:
    """The installed vote-ledger version."""
    try:
        return version("vote-ledger")
    except PackageNotFoundError:
        return "unknown"


async def export_meeting(conn: asyncpg.Connection, meeting_id: str, out: Path) -> Manifest:
    """Write the meeting's export to ``out`` from one consistent snapshot; return its manifest.

    Raises UnknownMeetingExport (writing nothing) if the log holds no row of the meeting.
    """
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM ledger_log WHERE meeting_id = $1)", meeting_id):
        raise UnknownMeetingExport(meeting_id)
    digest, parked_digest = hashlib.sha256(), hashlib.sha256()
    counts = {"accepted": 0, "rejected": 0}
    first = last = final_hash = parked_hash = None
    parked_rows = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            as_of = await tally_store.checkpoint(conn, PROJECTION)
            with archive.open(LOG_MEMBER, "w", force_zip64=True) as log:
                async for r in conn.cursor(_ROWS, meeting_id, prefetch=5000):
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
                    )
                    line = _row_encoder.encode(row) + b"\n"
                    log.write(line)
                    digest.update(line)
                    counts[row.decision] += 1
                    first = row.position if first is None else first
                    last, final_hash = row.position, row.hash
            with archive.open(PARKED_MEMBER, "w", force_zip64=True) as parked:
                async for r in conn.cursor(_PARKED, prefetch=1000):
                    line = (
                        _row_encoder.encode(ExportParked(**{**dict(r), "parked_at": r["parked_at"].isoformat()}))
                        + b"\n"
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


def read_manifest(path: Path) -> Manifest:
    """The export's manifest; BadExport if the file is not an export."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = msgspec.json.decode(archive.read(MANIFEST_MEMBER), type=Manifest)
    except (zipfile.BadZipFile, KeyError, msgspec.DecodeError, OSError) as exc:
        raise BadExport(f"{path}: not a vote-ledger export ({exc})") from None
    if manifest.format != FORMAT or manifest.format_version not in READABLE_VERSIONS:
        raise BadExport(f"{path}: format {manifest.format} v{manifest.format_version} is not supported")
    return manifest


def read_rows(path: Path) -> Iterator[tuple[ExportRow, bytes]]:
    """Each exported row with its exact line bytes, streamed in file order."""
    with zipfile.ZipFile(path) as archive, archive.open(LOG_MEMBER) as log:
        for line in log:
            yield _row_decoder.decode(line), line


def read_parked(path: Path) -> Iterator[tuple[ExportParked, bytes]]:
    """Each exported parked message with its exact line bytes; nothing for a v1 export."""
    with zipfile.ZipFile(path) as archive:
        if PARKED_MEMBER not in archive.namelist():
            return
        with archive.open(PARKED_MEMBER) as parked:
            for line in parked:
                yield _parked_decoder.decode(line), line


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain data."""
    return msgspec.to_builtins(manifest)

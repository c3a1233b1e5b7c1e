"""The export file format: what an export zip holds and how to read it, with no database client.

An export is a zip holding ``log.jsonl`` (every log row of the meeting, in position order, with its
hash-chain columns and the payload exactly as stored), ``parked.jsonl`` (every parked message, of
any meeting, with its own chain: undecodable messages name no meeting) and ``manifest.json``
(counts, the final hashes, the projector position the live reports were at, the SHA-256 of both
logs, the software). Format v2 adds parked.jsonl and the chain v2 columns (chain_version and the
Kafka source; recorded_at was already there); v1 exports still read and verify.

Kept apart from services/read/export.py (which writes exports from PostgreSQL) so that the offline
commands an auditor runs import neither a PostgreSQL nor a Kafka client.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec

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


row_encoder = msgspec.json.Encoder()  # shared with the writer: one encoding of a row
_row_decoder = msgspec.json.Decoder(ExportRow)
_parked_decoder = msgspec.json.Decoder(ExportParked)


def software_version() -> str:
    """The installed vote-ledger version."""
    try:
        return version("vote-ledger")
    except PackageNotFoundError:
        return "unknown"


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

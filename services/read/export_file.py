"""The export file format: what an export zip holds and how to read it, with no database client.

An export is a zip holding ``log.jsonl`` (every log row of the meeting, in position order, with its
hash-chain columns and the payload exactly as stored), ``parked.jsonl`` (every parked message, of
any meeting, with its own chain: undecodable messages name no meeting) and ``manifest.json``
(counts, the final hashes, the projector position the live reports were at, the SHA-256 of both
logs, the software). Format v2 adds parked.jsonl and the chain v2 columns (chain_version and the
Kafka source; recorded_at was already there); format v3 adds appended_at (the broker's append time,
covered by chain v3). v1 and v2 exports still read and verify.

Reading is streamed and bounded (one line at a time, MAX_LINE at most) and turns a line that is not
a row into UnreadableLine, naming it: exports come from elsewhere and may be hostile.

Kept apart from services/read/export.py (which writes exports from PostgreSQL) so that the offline
commands an auditor runs import neither a PostgreSQL nor a Kafka client.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec

from events import AnyEvent, decode
from projections.chain import ChainRow, ParkedRow

FORMAT = "vote-ledger-export"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
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
    appended_at: str | None = None  # format v3: the broker's append time (chain v3); absent before


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


class UnreadableLine(BadExport):
    """One line of a member that is not a row: ``where`` names it (line, and position when known), ``why`` says why."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where} unreadable: {why}")
        self.where, self.why = where, why


# One exported line holds one row: a payload the ledger took from Kafka (1 MB by default), escaped
# as a JSON string, or a parked message in hex. Past this a line is refused rather than read into
# memory (a forged file could hold one endless line).
MAX_LINE = 16 * 1024 * 1024
MAX_MANIFEST = 1024 * 1024  # a manifest is a few hundred bytes
_TOO_DEEP = "JSON nested too deeply"

row_encoder = msgspec.json.Encoder()  # shared with the writer: one encoding of a row
_row_decoder = msgspec.json.Decoder(ExportRow)
_parked_decoder = msgspec.json.Decoder(ExportParked)
_manifest_decoder = msgspec.json.Decoder(Manifest)


def software_version() -> str:
    """The installed vote-ledger version."""
    try:
        return version("vote-ledger")
    except PackageNotFoundError:
        return "unknown"


def _open(path: Path) -> zipfile.ZipFile:
    """The export as a zip; BadExport for anything else (a device or a FIFO would be read forever)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise BadExport(f"{path}: not a regular file; an export is a zip file written by vote-ledger export")
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadExport(f"{path}: not a vote-ledger export ({exc})") from None


def read_manifest(path: Path) -> Manifest:
    """The export's manifest; BadExport if the file is not an export."""
    try:
        with _open(path) as archive:
            names = archive.namelist()
            if LOG_MEMBER not in names:
                raise BadExport(f"{path}: not a vote-ledger export (it holds no {LOG_MEMBER})")
            twice = [name for name in (LOG_MEMBER, MANIFEST_MEMBER, PARKED_MEMBER) if names.count(name) > 1]
            if twice:  # zipfile reads the last copy, other tools the first: an auditor and this tool would differ
                raise BadExport(f"{path}: not a vote-ledger export (it holds {', '.join(twice)} twice)")
            with archive.open(MANIFEST_MEMBER) as member:
                data = member.read(MAX_MANIFEST + 1)
            if len(data) > MAX_MANIFEST:
                raise BadExport(f"{path}: not a vote-ledger export ({MANIFEST_MEMBER} is over {MAX_MANIFEST:,} bytes)")
            manifest = _manifest_decoder.decode(data)
    except RecursionError:
        raise BadExport(f"{path}: not a vote-ledger export ({MANIFEST_MEMBER}: {_TOO_DEEP})") from None
    except (zipfile.BadZipFile, KeyError, msgspec.DecodeError, OSError, EOFError, zlib.error) as exc:
        raise BadExport(f"{path}: not a vote-ledger export ({exc})") from None
    if manifest.format != FORMAT or manifest.format_version not in READABLE_VERSIONS:
        raise BadExport(f"{path}: format {manifest.format} v{manifest.format_version} is not supported")
    return manifest


def read_lines(path: Path, member: str) -> Iterator[tuple[int, bytes]]:
    """Each line of a member with its number (from 1), streamed; nothing if the export lacks the member.

    Raises BadExport when the member cannot be read on (a line over MAX_LINE, a damaged zip).
    """
    number = 0
    try:
        with _open(path) as archive:
            if member not in archive.namelist():
                return
            # zipfile's own readline(limit) goes a byte at a time; a buffered reader finds lines in C.
            with archive.open(member) as stream, io.BufferedReader(stream, buffer_size=1 << 20) as lines:
                while line := lines.readline(MAX_LINE + 1):
                    number += 1
                    if len(line) > MAX_LINE:
                        raise UnreadableLine(f"line {number}", f"longer than {MAX_LINE:,} bytes")
                    yield number, line
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise UnreadableLine(f"line {number + 1}", f"{member} is damaged ({exc})") from None


def _decode_row(number: int, line: bytes) -> ExportRow:
    """One log line as a row; UnreadableLine naming the line if it is not one."""
    try:
        return _row_decoder.decode(line)
    except msgspec.DecodeError as exc:  # also ValidationError: valid JSON, but not a row
        raise UnreadableLine(f"line {number}", str(exc)) from None
    except RecursionError:  # msgspec's nesting limit, even in a field it skips
        raise UnreadableLine(f"line {number}", _TOO_DEEP) from None


def _decode_parked(number: int, line: bytes) -> ExportParked:
    """One parked.jsonl line as a parked message; UnreadableLine naming the line if it is not one."""
    try:
        return _parked_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise UnreadableLine(f"line {number}", str(exc)) from None
    except RecursionError:
        raise UnreadableLine(f"line {number}", _TOO_DEEP) from None


def _chain_row(row: ExportRow) -> ChainRow:
    return ChainRow(
        row.position,
        row.prev_position,
        row.meeting_id,
        row.event_id,
        row.type,
        row.decision,
        row.reason,
        row.payload,
        bytes.fromhex(row.hash) if row.hash else None,
        row.chain_version,
        _instant(row.recorded_at),
        row.source_topic,
        row.source_partition,
        row.source_offset,
        None if row.appended_at is None else _instant(row.appended_at),
    )


def _parked_row(row: ExportParked) -> ParkedRow:
    return ParkedRow(
        row.id,
        row.prev_id,
        row.source_topic,
        row.source_partition,
        row.source_offset,
        _hex(row.key),
        _hex(row.value),
        row.reason,
        row.detail,
        _instant(row.parked_at),
        _hex(row.hash),
    )


def _hex(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _instant(text: str) -> datetime:
    """An exported timestamp; the exporter writes them with their offset, and the chain hashes an instant."""
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return instant


def log_line(number: int, line: bytes) -> tuple[ExportRow, ChainRow, AnyEvent]:
    """One log.jsonl line as a row, its chain form and its event; UnreadableLine naming it if any part is not."""
    row = _decode_row(number, line)
    try:
        return row, _chain_row(row), decode(row.payload)
    except ValueError as exc:  # a hash not in hex, a bad timestamp, a payload that is no event (MalformedMessage)
        raise UnreadableLine(f"row {row.position} (line {number})", str(exc)) from None


def parked_line(number: int, line: bytes) -> ParkedRow:
    """One parked.jsonl line as its chain sees it; UnreadableLine naming it if it is not one."""
    row = _decode_parked(number, line)
    try:
        return _parked_row(row)
    except ValueError as exc:  # a key, value or hash not in hex, a bad timestamp
        raise UnreadableLine(f"parked message {row.id} (line {number})", str(exc)) from None


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain data."""
    return msgspec.to_builtins(manifest)

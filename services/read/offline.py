"""Offline audit from an export file alone: verify it, tally it, reproduce the final report."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from events import decode
from projections.chain import Break, ChainRow, ParkedCheck, ParkedRow
from projections.chain_walk import ChainWalk
from projections.diff import report_of
from projections.digest import LogDigest
from projections.replay import counted, replay
from projections.report import final_report
from services.read.export_file import (
    BadExport,
    ExportParked,
    ExportRow,
    Manifest,
    manifest_dict,
    read_manifest,
    read_parked,
    read_rows,
)

OnProgress = Callable[[int, int | None], None]
_PROGRESS_EVERY = 10_000  # rows between two progress calls: a call per row would cost more than the check


def _ignore(done: int, total: int | None) -> None:
    """No progress wanted."""


@dataclass
class FileVerification:
    """What `audit verify --file` found."""

    manifest: Manifest
    rows: int = 0
    final_hash: str | None = None
    log_sha256: str = ""
    v1_rows: int = 0
    chain_break: Break | None = None
    parked: ParkedCheck | None = None  # None: a v1 export, without parked messages
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chains hold and the manifest describes exactly this log."""
        return (
            self.chain_break is None and not self.problems and (self.parked is None or self.parked.first_break is None)
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "ok": self.ok,
            "meeting_id": self.manifest.meeting_id,
            "rows": self.rows,
            "chain_v1_rows": self.v1_rows,
            "final_hash": self.final_hash,
            "log_sha256": self.log_sha256,
            "chain_break": None if self.chain_break is None else vars(self.chain_break),
            "parked": None if self.parked is None else self.parked.as_dict(),
            "heads": None,
            "heads_skipped": "offline",
            "problems": self.problems,
            "manifest": manifest_dict(self.manifest),
        }


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
        datetime.fromisoformat(row.recorded_at),
        row.source_topic,
        row.source_partition,
        row.source_offset,
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
        datetime.fromisoformat(row.parked_at),
        _hex(row.hash),
    )


def _hex(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def verify_file(path: Path, expect_hash: str | None = None, on_progress: OnProgress | None = None) -> FileVerification:
    """Check the export's chains, its manifest, and (optionally) a hash published elsewhere.

    Raises BadExport if the export holds no log row: there is nothing to verify. ``on_progress(done,
    total)``: called now and then with the rows and parked messages read, of those the manifest states.
    """
    manifest = read_manifest(path)
    total = manifest.rows + (manifest.parked_rows or 0)
    on_progress = on_progress or _ignore
    result = FileVerification(manifest)
    walk, digest = ChainWalk.expecting(expect_hash), hashlib.sha256()
    check = walk.check
    counts = {"accepted": 0, "rejected": 0}
    first = None
    for row, line in read_rows(path):
        digest.update(line)
        if row.meeting_id != manifest.meeting_id:
            result.problems.append(f"row {row.position} belongs to meeting {row.meeting_id}")
        walk.feed(_chain_row(row), decode(row.payload))
        counts[row.decision] = counts.get(row.decision, 0) + 1
        first = row.position if first is None else first
        if check.rows % _PROGRESS_EVERY == 0:
            on_progress(check.rows, max(total, check.rows))
    on_progress(check.rows, max(total, check.rows))
    if check.rows == 0:
        raise BadExport(f"{path}: the export holds no log row of meeting {manifest.meeting_id}: nothing to verify")
    result.rows, result.v1_rows, result.chain_break = check.rows, check.v1_rows, check.first_break
    result.problems += walk.problems(manifest.meeting_id)
    if manifest.format_version >= 2:
        result.parked = _verify_parked(
            path, manifest, result.problems, lambda done: on_progress(check.rows + done, total)
        )
    if walk.misjudged is not None:
        result.problems.append(f"decision: {walk.misjudged.detail}")
    result.final_hash = walk.final_hash
    result.log_sha256 = digest.hexdigest()
    for what, found, stated in (
        ("rows", result.rows, manifest.rows),
        ("final hash", result.final_hash, manifest.final_hash),
        ("log.jsonl SHA-256", result.log_sha256, manifest.log_sha256),
    ):
        if found != stated:
            result.problems.append(f"{what}: the log gives {found}, the manifest says {stated}")
    last = check.last_position
    for what, found, stated in (
        ("accepted rows", counts["accepted"], manifest.accepted),
        ("rejected rows", counts["rejected"], manifest.rejected),
        ("first position", first, manifest.first_position),
        ("last position", last, manifest.last_position),
    ):
        if found != stated:
            result.problems.append(f"{what}: the log gives {found}, the manifest says {stated}")
    if last is not None and not (first or 0) <= manifest.as_of_position:
        result.problems.append(f"as_of_position {manifest.as_of_position} is before the log's first row")
    if not walk.anchor_holds():
        result.problems.append(f"the chain does not pass through the expected hash {expect_hash}")
    return result


def _verify_parked(
    path: Path, manifest: Manifest, problems: list[str], on_progress: Callable[[int], None]
) -> ParkedCheck:
    """The parked messages' chain of the export, and that the manifest describes it."""
    check, digest = ParkedCheck(), hashlib.sha256()
    for read, (row, line) in enumerate(read_parked(path), 1):
        digest.update(line)
        check.feed([_parked_row(row)])
        if read % _PROGRESS_EVERY == 0:
            on_progress(read)
    on_progress(check.rows + check.legacy)  # every parked message read
    final = check.last_hash.hex() if check.rows else None
    for what, found, stated in (
        ("parked messages", check.rows + check.legacy, manifest.parked_rows),
        ("parked final hash", final, manifest.parked_final_hash),
        ("parked.jsonl SHA-256", digest.hexdigest(), manifest.parked_sha256),
    ):
        if found != stated:
            problems.append(f"{what}: the export gives {found}, the manifest says {stated}")
    return check


def _fold(path: Path, position: int):
    """Fold the export's accepted rows up to ``position``; also hash that prefix for the report."""
    manifest = read_manifest(path)
    digest = LogDigest(up_to=position)
    events = []
    chain = None
    for row, _line in read_rows(path):
        if row.position > position:
            break
        chain = f"{row.position}:{row.hash}" if row.hash else None
        digest.update(
            [
                {
                    "position": row.position,
                    "event_id": row.event_id,
                    "decision": row.decision,
                    "reason": row.reason,
                    "payload": row.payload,
                }
            ]
        )
        if row.decision == "accepted":
            events.append(decode(row.payload))
    projection = replay(events)
    if manifest.meeting_id not in projection.tallies:
        raise BadExport(f"{path}: no accepted meeting.scheduled for {manifest.meeting_id} up to position {position}")
    return manifest, projection.tallies[manifest.meeting_id], digest.hexdigest(), chain


def tally_from_file(path: Path, as_of: int | None = None) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md, replayed from the export (at its manifest's position by default)."""
    position = read_manifest(path).as_of_position if as_of is None else as_of
    _manifest, tally, _digest, _chain = _fold(path, position)
    return report_of(tally, position)


def final_report_from_file(path: Path) -> dict[str, Any]:
    """The final report, replayed from the export at the position the live reports were at."""
    manifest = read_manifest(path)
    _manifest, tally, digest, chain = _fold(path, manifest.as_of_position)
    totals, overvotes = counted(tally)
    return final_report(tally.meeting.spec, tally.present, totals, overvotes, manifest.as_of_position, digest, chain)

"""Offline audit from an export file alone: verify it, tally it, reproduce the final report."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projections.amendments import as_amended
from projections.chain import Break, ChainCheck, ParkedCheck
from projections.chain_walk import ChainWalk
from projections.diff import report_of
from projections.digest import LogDigest
from projections.refusals import RefusalCheck
from projections.replay import counted, replay
from projections.report import final_report
from projections.validation import DUPLICATE_EVENT_ID
from services.read.export_file import (
    LOG_MEMBER,
    PARKED_MEMBER,
    BadExport,
    Manifest,
    UnreadableLine,
    log_line,
    manifest_dict,
    parked_line,
    read_lines,
    read_manifest,
)

OnProgress = Callable[[int, int | None], None]
_PROGRESS_EVERY = 10_000  # rows between two progress calls: a call per row would cost more than the check
_SAME_KIND = 5  # problems of one kind listed before the rest are counted: a wrong manifest could fail every row


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
    # The register's completeness as the export's accepted rows hold it (None: never scheduled); not part of ok.
    register: dict[str, Any] | None = None
    _seen: dict[str, int] = field(default_factory=dict)  # problems per kind, listed or not

    def add(self, kind: str, problem: str) -> None:
        """Note a row's problem; past the first few of one kind, only count them (see count_unlisted)."""
        seen = self._seen[kind] = self._seen.get(kind, 0) + 1
        if seen <= _SAME_KIND:
            self.problems.append(problem)

    def count_unlisted(self) -> None:
        """Say how many problems of each kind were counted but not listed."""
        for kind, seen in self._seen.items():
            if seen > _SAME_KIND:
                self.problems.append(f"… and {seen - _SAME_KIND:,} more row(s) {kind}")
        self._seen.clear()

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
            "register": self.register,
        }


def verify_file(path: Path, expect_hash: str | None = None, on_progress: OnProgress | None = None) -> FileVerification:
    """Check the export's chains, its manifest, and (optionally) a hash published elsewhere.

    Raises BadExport if the file is not an export or holds no log row: there is nothing to verify. A
    line that is not a row is a problem found, like any other tampering. ``on_progress(done, total)``:
    called now and then with the rows and parked messages read, of those the manifest states.
    """
    manifest = read_manifest(path)
    total = manifest.rows + (manifest.parked_rows or 0)
    on_progress = on_progress or _ignore
    result = FileVerification(manifest)
    walk, digest = ChainWalk.expecting(expect_hash), hashlib.sha256()
    check = walk.check
    counts = {"accepted": 0, "rejected": 0}
    first = None
    lines, unreadable = 0, None
    applied: set[str] = set()  # R18 per meeting: the ids this meeting's accepted rows applied so far
    refusals = RefusalCheck()  # R19: the vote.refused rows against a fold of the accepted rows (reject meetings)
    try:
        for lines, line in read_lines(path, LOG_MEMBER):
            digest.update(line)
            row, chain_row, event = log_line(lines, line)
            if row.meeting_id != manifest.meeting_id:
                result.add("of another meeting", f"row {row.position} belongs to meeting {row.meeting_id}")
            if row.decision == "accepted":
                applied.add(row.event_id)
            elif row.reason == DUPLICATE_EVENT_ID and row.event_id not in applied:
                # Event ids are per meeting (015_event_ids_per_meeting.sql), so the row this rejection
                # stands behind is in the export: without it, it would hide a vote behind a made-up
                # rejection (the same check as `audit verify`'s, log_verify.orphan_duplicate).
                result.add(
                    "duplicate without its applied row",
                    f"row {row.position} is rejected as duplicate_event_id,"
                    " but no earlier row of its meeting applied its id",
                )
            walk.feed(chain_row, event)
            refusals.feed(row.position, row.type, row.decision, row.reason, event, row.source_topic is not None)
            counts[row.decision] = counts.get(row.decision, 0) + 1
            first = row.position if first is None else first
            if check.rows % _PROGRESS_EVERY == 0:
                on_progress(check.rows, max(total, check.rows))
    except UnreadableLine as exc:
        # Not a row: what follows cannot be trusted to line up either (a zip bomb is all blank lines).
        unreadable = exc
    on_progress(check.rows, max(total, check.rows))
    if lines == 0 and unreadable is None:
        raise BadExport(f"{path}: the export holds no log row of meeting {manifest.meeting_id}: nothing to verify")
    result.count_unlisted()
    if unreadable is not None:
        result.problems.append(f"{unreadable}; {LOG_MEMBER} is not read further")
    result.rows, result.v1_rows, result.chain_break = check.rows, check.v1_rows, check.first_break
    result.problems += walk.problems(manifest.meeting_id)
    if unreadable is None:  # a refusal past an unreadable line would be counted missing
        result.problems += [f"refusals: {problem}" for problem in refusals.finish()]
    if manifest.format_version >= 2:
        result.parked = _verify_parked(path, manifest, result, lambda done: on_progress(check.rows + done, total))
    if walk.misjudged is not None:
        result.problems.append(f"decision: {walk.misjudged.detail}")
    meeting = walk.rejudge.judge.meetings.get(manifest.meeting_id)  # every row re-judged: the whole register
    result.register = None if meeting is None else meeting.register_state.as_dict()
    result.final_hash = walk.final_hash
    result.log_sha256 = digest.hexdigest()
    if unreadable is None:  # the whole log was read: it can be compared with the manifest and the anchor
        _compare(result, manifest, counts, first, check.last_position)
        if not walk.anchor_holds():
            result.problems.append(f"the chain does not pass through the expected hash {expect_hash}")
    return result


def _compare(
    result: FileVerification, manifest: Manifest, counts: dict[str, int], first: int | None, last: int | None
) -> None:
    """Whether the manifest describes the log read."""
    for what, found, stated in (
        ("rows", result.rows, manifest.rows),
        ("final hash", result.final_hash, manifest.final_hash),
        ("log.jsonl SHA-256", result.log_sha256, manifest.log_sha256),
    ):
        if found != stated:
            result.problems.append(f"{what}: the log gives {found}, the manifest says {stated}")
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


def _verify_parked(
    path: Path, manifest: Manifest, result: FileVerification, on_progress: Callable[[int], None]
) -> ParkedCheck:
    """The parked messages' chain of the export, and that the manifest describes it."""
    check, digest = ParkedCheck(), hashlib.sha256()
    try:
        for read, line in read_lines(path, PARKED_MEMBER):
            digest.update(line)
            check.feed([parked_line(read, line)])
            if read % _PROGRESS_EVERY == 0:
                on_progress(read)
    except UnreadableLine as exc:  # as for log.jsonl: the rest is not read
        result.problems.append(f"{PARKED_MEMBER} {exc}; {PARKED_MEMBER} is not read further")
        return check
    on_progress(check.rows + check.legacy)  # every parked message read
    final = check.last_hash.hex() if check.rows else None
    for what, found, stated in (
        ("parked messages", check.rows + check.legacy, manifest.parked_rows),
        ("parked final hash", final, manifest.parked_final_hash),
        ("parked.jsonl SHA-256", digest.hexdigest(), manifest.parked_sha256),
    ):
        if found != stated:
            result.problems.append(f"{what}: the export gives {found}, the manifest says {stated}")
    return check


def _does_not_verify(path: Path, why: str) -> BadExport:
    return BadExport(
        f"{path}: the export does not verify: {why}; run vote-ledger audit verify --file {path} for details"
    )


def _fold(path: Path, position: int):
    """Fold the export's accepted rows up to ``position``; also hash that prefix for the report.

    An auditor's tool must not print numbers from a file that does not hold together, so on the way
    every row is read (past ``position`` too), its chain checked, and the rows, log SHA-256 and final
    hash compared with the manifest: BadExport at the first that fails. ``audit verify --file`` does
    the full check (decisions re-judged, parked messages, an expected hash).
    """
    manifest = read_manifest(path)
    digest = LogDigest(up_to=position)
    sha, check = hashlib.sha256(), ChainCheck()
    events = []
    positions: list[int] = []  # of the accepted events: the amendments' positions, for the reports
    chain = None
    try:
        for number, line in read_lines(path, LOG_MEMBER):
            sha.update(line)
            row, chain_row, event = log_line(number, line)
            check.feed([chain_row])
            if check.first_break is not None:
                brk = check.first_break
                raise _does_not_verify(path, f"hash chain: position {brk.position} {brk.problem}: {brk.detail}")
            if row.meeting_id != manifest.meeting_id:
                raise _does_not_verify(path, f"row {row.position} belongs to meeting {row.meeting_id}")
            if row.position > position:
                continue
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
                events.append(event)
                positions.append(row.position)
    except UnreadableLine as exc:
        raise BadExport(f"{path}: {LOG_MEMBER} {exc}") from None
    final = check.last_hash.hex() if check.rows else None
    for what, found, stated in (
        ("rows", check.rows, manifest.rows),
        ("log.jsonl SHA-256", sha.hexdigest(), manifest.log_sha256),
        ("final hash", final, manifest.final_hash),
    ):
        if found != stated:
            raise _does_not_verify(path, f"{what}: the log gives {found}, the manifest says {stated}")
    projection = replay(events)
    if manifest.meeting_id not in projection.tallies:
        raise BadExport(f"{path}: no accepted meeting.scheduled for {manifest.meeting_id} up to position {position}")
    tally = projection.tallies[manifest.meeting_id]
    amended = as_amended(tally.meeting, zip(positions, events, strict=True))
    return manifest, tally, digest.hexdigest(), chain, amended


def tally_from_file(path: Path, as_of: int | None = None) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md, replayed from the export (at its manifest's position by default)."""
    position = read_manifest(path).as_of_position if as_of is None else as_of
    _manifest, tally, _digest, _chain, amended = _fold(path, position)
    report = report_of(tally, position)
    if amended["amended"]:  # as the live tally --as-of gives it
        report["meeting"] = amended
    return report


def final_report_from_file(path: Path, preliminary: bool = False) -> dict[str, Any]:
    """The final report, replayed from the export at the position the live reports were at (register included)."""
    manifest = read_manifest(path)
    _manifest, tally, digest, chain, amended = _fold(path, manifest.as_of_position)
    totals, overvotes = counted(tally)
    meeting = tally.meeting
    report = final_report(
        meeting.as_amended(),  # as the live report: the meeting as amended at that position
        tally.present,
        totals,
        overvotes,
        manifest.as_of_position,
        digest,
        chain,
        register=meeting.register_state,
        preliminary=preliminary,
    )
    if amended["amended"]:
        report["as_amended"] = {k: amended[k] for k in ("original_meeting_at", "amendments")}
    return report

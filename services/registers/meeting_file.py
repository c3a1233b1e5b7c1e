"""Meeting files (TOML): the ``[meeting]`` table as meeting.scheduled, with content-derived event ids.

A meeting file describes the meeting only; a real register comes from CSV files (services.registers.
reading), a simulated one from a separate simulation file (services.devtools.demo.spec). Problems are
reported as ``ValueError("FILE: where: what")``. A ``[meeting]`` that leaves out ``signatures_required``
or ``broker_grace_s`` gets this project's defaults for a new meeting (true, 300 s);
``broker_grace_s = "off"`` turns the broker's clock off.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from events import Cutoffs, Item, MeetingScheduled, PositionsRecorded, Quorum, RegisterTotals, encode
from projections.completeness import register_digest
from services.files import read_regular
from services.registers.wire import refusal

# Namespace of the meeting tools' deterministic event ids: loading the same files twice yields the same
# ids, so the ledger applies them once (R18); changed files yield new ids, which the ledger rejects as
# duplicate_meeting / duplicate_chunk instead of silently ignoring (R19). The URL says "demo" because
# the demo's loader named it first: kept, so a meeting loaded before keeps its ids.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://vote-ledger.invalid/demo")

# What the meeting tools write for a new meeting unless its file says otherwise (issue 11): channel
# signatures required (S5), and R12 on the broker's clock with this grace. A producer retries a record
# for up to its delivery.timeout.ms (Kafka's default: 120 s) before giving up, so a vote sent just before
# a cut-off can be appended up to two minutes after it; 300 s leaves that margin twice and a half, and
# still stops a late vote relabelled or back-dated from slipping in more than five minutes late.
SIGNATURES_REQUIRED = True
BROKER_GRACE_S = 300
# A file turns the broker's clock off with broker_grace_s = "off" (TOML has no null): a simulation
# that replays a past meeting's campaign now, whose every record the broker appends years late.
BROKER_CLOCK_OFF = "off"

# A meeting file is read whole: the bundled ones are 2.5 to 4.5 kB of TOML (1.8 to 2.7 kB of JSON once
# encoded), and the meeting.scheduled it becomes must fit one Kafka message (MAX_EVENT_BYTES) anyway.
# The bound stops a wrong path (a disk image, /dev/zero) from filling memory, as the register files'.
MAX_MEETING_FILE_BYTES = 1024 * 1024

# Simulation settings used to live in the meeting file; a meeting file holding them now is refused
# with where they went, rather than with msgspec's bare "unknown field".
_MOVED = {"register", "simulation"}
_ENVELOPE = {"type", "v", "event_id", "recorded_at", "register"}
_SECTIONS = {"items": Item, "quorum": Quorum, "cutoffs": Cutoffs}


def load_meeting_file(path: str | Path) -> MeetingScheduled:
    """Parse and check a meeting file's ``[meeting]`` (register totals not yet declared); ValueError otherwise."""
    path = Path(path)
    data = read_regular(path, MAX_MEETING_FILE_BYTES, "meeting file")  # ValueError "FILE: what" otherwise
    try:
        raw = msgspec.toml.decode(data, type=dict[str, Any])
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    moved = sorted(_MOVED & set(raw))
    if moved:
        tables = ", ".join(f"[{t}]" for t in moved)
        raise ValueError(
            f"{path}: {tables}: simulation settings belong in a simulation file (deploy/simulations/"
            f"{path.stem}.toml), not in the meeting file"
        )
    unknown = sorted(set(raw) - {"meeting"})
    if unknown or not isinstance(raw.get("meeting"), dict):
        raise ValueError(
            f"{path}: a meeting file holds one table, [meeting]" + (f" (found {unknown})" if unknown else "")
        )
    meeting = _meeting(path, raw["meeting"])
    _check(path, meeting)
    why = refusal(meeting)  # e.g. a year past 9000, which the log cannot store: parked, never scheduled
    if why is not None:
        fail(path, "meeting", why)
    return meeting


def declare_register(meeting: MeetingScheduled, chunks: list[PositionsRecorded]) -> MeetingScheduled:
    """The meeting declaring what its complete register is (these chunks: totals and digest), with its event id."""
    positions = [p for c in chunks for p in c.positions]
    totals = RegisterTotals(
        chunks=len(chunks),
        positions=len(positions),
        shares=sum(p.shares for p in positions),
        # Which register, not only how large: chunks of another version of the files with the same totals
        # leave it incomplete (projections.completeness, docs/register.md "What is published").
        digest=register_digest(positions, {e.nominee: e.shares for c in chunks for e in c.entitlements}),
    )
    return with_totals(meeting, totals)


def with_totals(meeting: MeetingScheduled, totals: RegisterTotals | None) -> MeetingScheduled:
    """The meeting with these register totals and the event id its content derives (same content, same id)."""
    pending = msgspec.structs.replace(meeting, event_id="pending", register=totals)
    digest = hashlib.sha256(encode(pending)).hexdigest()[:16]
    event_id = str(uuid.uuid5(NAMESPACE, f"{meeting.meeting_id}:scheduled:{digest}"))
    return msgspec.structs.replace(pending, event_id=event_id)


def _meeting(path: Path, section: dict[str, Any]) -> MeetingScheduled:
    """Build meeting.scheduled from the [meeting] table, with a content-derived event id."""
    _no_unknown(path, "meeting", section, set(MeetingScheduled.__struct_fields__) - _ENVELOPE)
    for key, struct in _SECTIONS.items():
        values = section.get(key)
        for i, value in enumerate(values if isinstance(values, list) else [values]):
            if isinstance(value, dict):
                where = f"meeting.{key}[{i}]" if isinstance(values, list) else f"meeting.{key}"
                _no_unknown(path, where, value, set(struct.__struct_fields__))
    section = {"signatures_required": SIGNATURES_REQUIRED, "broker_grace_s": BROKER_GRACE_S, **section}
    if section["broker_grace_s"] == BROKER_CLOCK_OFF:
        section["broker_grace_s"] = None
    try:
        meeting = msgspec.convert({**section, "event_id": "pending"}, MeetingScheduled)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: [meeting] {exc}") from None
    return with_totals(meeting, None)


def _no_unknown(path: Path, where: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{path}: {where}: unknown field(s) {', '.join(unknown)}")


def fail(path: Path, where: str, what: str) -> None:
    """Raise the ValueError of a spec file's problem: ``FILE: where: what``."""
    raise ValueError(f"{path}: {where}: {what}")


# A meeting id is what operators type and every report prints: ASCII letters, digits, '-', '.', '_' and
# '/', like a control number (docs/register.md), so that two meetings cannot print alike ("alder-2025-agm"
# and the same with a zero-width space or a Cyrillic "а": found by the adversarial retest).
_MEETING_ID = re.compile(r"[A-Za-z0-9._/-]+")


def _check(path: Path, meeting: MeetingScheduled) -> None:
    """Cross-field checks msgspec cannot express."""
    if not _MEETING_ID.fullmatch(meeting.meeting_id):
        fail(
            path,
            "meeting.meeting_id",
            f"{meeting.meeting_id!r}: a meeting id is ASCII letters, digits, '-', '.', '_' and '/'",
        )
    try:
        ZoneInfo(meeting.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(path, "meeting.timezone", f"unknown time zone {meeting.timezone!r}")
    if not meeting.items:
        fail(path, "meeting.items", "a meeting needs at least one item")
    seen: set[str] = set()
    for i, item in enumerate(meeting.items):
        where = f"meeting.items[{i}] ({item.id})"
        if item.id in seen:
            fail(path, where, "duplicate item id")
        seen.add(item.id)
        if len(set(item.options)) != len(item.options) or not item.options:
            fail(path, where, "options must be non-empty and distinct")
        if item.recommendation is not None and item.recommendation not in item.options:
            fail(path, where, f"recommendation {item.recommendation!r} is not an option")
    if meeting.meeting_at.date() <= meeting.record_date:
        fail(path, "meeting.meeting_at", "the meeting must be after the record date")
    for channel in ("internet", "phone", "mail", "broker"):
        cutoff = getattr(meeting.cutoffs, channel, None)
        if cutoff is not None and cutoff > meeting.meeting_at:
            fail(path, f"meeting.cutoffs.{channel}", "cut-off after the meeting starts")
    if meeting.quorum.numerator > meeting.quorum.denominator:
        fail(path, "meeting.quorum", "quorum above 100 %")

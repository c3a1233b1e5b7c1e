"""The events a load would publish, checked as Kafka and the ledger will take them, before anything is published.

msgspec checks a Struct's constraints when it decodes, not when one is built: a register that reads
well can still make an event the ledger cannot decode (it parks it, after meeting.scheduled was
published, so the register never completes). Each event is encoded, measured and decoded here; a
failure becomes a problem at the row it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from events import AnyEvent, MalformedMessage, MeetingScheduled, PositionsRecorded, decode, encode, tag_of
from projections.judge import Judge
from services.registers.csv_table import Problem, Row

# The largest event a load publishes, encoded. Kafka refuses a larger record: the producer over its
# max.request.size (aiokafka 0.14 and the Java client: 1,048,576 bytes by default, key and headers
# included), the broker over message.max.bytes (1,048,588 by default). 900,000 leaves over 140 kB for
# the key (the meeting id, at most 200 characters), headers and batch overhead. Measured: a chunk of
# 2,000 registered holdings of three 200-character joint holders encodes to 1,416,187 bytes; the
# demo's chunks of 2,000 synthetic positions to about 285,000 (split by count alone, as before).
MAX_EVENT_BYTES = 900_000
# Where msgspec's message says the refused value is: `$.positions[3].holders`, `$.entitlements[0].nominee`.
_PATH = re.compile(r"`\$\.(positions|entitlements)\[(\d+)\](?:\.(\w+))?")
# A position's field -> the column of its row that holds it (the nominee comes from the participant).
_POSITION_COLUMNS = {
    "control_number": "control_number",
    "holders": "holders",
    "shares": "shares",
    "nominee": "participant",
}


def refusal(event: AnyEvent) -> str | None:
    """Why Kafka or the ledger would refuse this event once published, or None."""
    data = encode(event)
    if len(data) > MAX_EVENT_BYTES:
        return f"encodes to {len(data):,} bytes, more than the {MAX_EVENT_BYTES:,} one Kafka message may carry"
    try:
        decoded = decode(data)
    except MalformedMessage as exc:
        return f"the ledger would refuse it: {exc.detail}"
    if decoded != event:
        return "the wire codec does not give it back unchanged"
    return None


def wire_problems(
    meeting_file: str | Path,
    meeting: MeetingScheduled,
    chunks: list[PositionsRecorded],
    position_rows: list[Row],
    participant_rows: list[Row],
) -> list[Problem]:
    """Every event of a load that would be refused, as a problem where it comes from.

    ``position_rows``: the row of each position, in the chunks' order; ``participant_rows``: the row of
    each entitlement, in the first chunk's order.
    """
    problems = []
    why = refusal(meeting)
    if why is not None:
        problems.append(Problem(str(meeting_file), 1, 1, f"meeting.scheduled: {why}"))
    start = 0
    for chunk in chunks:
        rows = position_rows[start : start + len(chunk.positions)]
        start += len(chunk.positions)
        why = refusal(chunk)
        if why is not None:
            problems.append(_where(chunk, why, rows, participant_rows, meeting_file))
    return problems


def _where(
    chunk: PositionsRecorded, why: str, rows: list[Row], participants: list[Row], meeting_file: str | Path
) -> Problem:
    """The problem of a refused chunk, at the row (and column) it comes from as closely as is known."""
    what = f"positions.recorded chunk {chunk.chunk}: {why}"
    path = _PATH.search(why)
    if path is not None:
        kind, index, field = path.group(1), int(path.group(2)), path.group(3) or ""
        if kind == "positions" and index < len(rows):
            return _at(rows[index], _POSITION_COLUMNS.get(field, ""), what)
        if kind == "entitlements" and index < len(participants):
            return _at(participants[index], {"nominee": "name", "shares": "shares"}.get(field, ""), what)
    if chunk.entitlements and participants and len(encode(_without_positions(chunk))) > MAX_EVENT_BYTES:
        return _at(participants[-1], "name", f"the participants' entitlements do not fit one chunk: {what}")
    if rows:
        return _at(rows[0], "", what)
    return Problem(str(meeting_file), 1, 1, what)


def _at(row: Row, column: str, what: str) -> Problem:
    """A problem of ``row`` at ``column`` if it has one, else at the row's first column."""
    if column in row.columns:
        return row.at(column, what)
    return Problem(row.file, row.line, 1, what)


def _without_positions(chunk: PositionsRecorded) -> PositionsRecorded:
    return PositionsRecorded(
        event_id=chunk.event_id,
        meeting_id=chunk.meeting_id,
        chunk=chunk.chunk,
        chunks=chunk.chunks,
        entitlements=chunk.entitlements,
    )


def judged_refusal(events: Sequence[AnyEvent]) -> str | None:
    """Why the ledger would reject one of these events on an empty log, judged in order; None: all accepted.

    A fresh projections.judge.Judge takes them as the ledger will, after the wire: what the files and the
    codec let through can still break a rule (a meeting with more shares outstanding than the ledger's
    bound is rejected shares_out_of_range, and then every chunk unknown_meeting). What the log already
    holds (another version of the meeting) is for the ledger's own decisions, which `meeting load` awaits.
    """
    judge = Judge()
    for event in events:
        reason = judge.judge(event)
        if reason is not None:
            return f"the ledger would reject {describe(event)}: {reason}"
    return None


def describe(event: AnyEvent) -> str:
    """An event of a load in words: its type, its chunk number for a chunk, and its id."""
    if isinstance(event, PositionsRecorded):
        return f"positions.recorded chunk {event.chunk} (event {event.event_id})"
    return f"{tag_of(event)} (event {event.event_id})"

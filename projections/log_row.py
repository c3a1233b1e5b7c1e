"""The rows the ledger writes, as plain data: a decided event, a parked message, an id already logged. Pure, no I/O.

The ledger builds them (services/runtime/ingest.py) and the PostgreSQL log adapter stores them; the
hash chain over them (``chained_records``) is a rule of the log, so it lives here with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events import AnyEvent, encode_compact, tag_of
from projections import chain
from projections.chain_forms import canonical_v3_micros, micros

# Every column of a log row, in the order ``LogRow.record`` gives them (the adapter COPYs them so).
LOG_COLUMNS = (
    "position",
    "meeting_id",
    "event_id",
    "type",
    "control_number",
    "channel",
    "executed_at",
    "received_at",
    "decision",
    "reason",
    "payload",
    "source_topic",
    "source_partition",
    "source_offset",
    "prev_position",
    "hash",
    "recorded_at",
    "appended_at",
    "chain_version",
    "compact",
)

# What the ledger decided on an event it logged (a message it cannot decode is parked, not logged).
DECISIONS = ("accepted", "rejected")


@dataclass(slots=True)
class LogRow:
    """One decided event, ready to append (its position is assigned at append time)."""

    meeting_id: str
    event_id: str
    type: str
    control_number: str | None
    channel: str | None
    executed_at: datetime | None
    received_at: datetime | None
    decision: str
    reason: str | None
    payload: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    # The broker's append time of the record (LogAppendTime); None when the topic keeps the producer's
    # CreateTime or the row has no Kafka source. R12's broker cut-off and S3 judge on it (chain v3 covers it).
    appended_at: datetime | None = None
    # The event's compact form (events.compact, migration 019), which folds read instead of the payload;
    # derived, so not under the hash chain (`audit verify` checks it against the payload). None: none written.
    compact: bytes | None = None

    def record(
        self, position: int, prev_position: int | None, hash_: bytes, recorded_at: datetime
    ) -> tuple[object, ...]:
        """The row as a tuple in LOG_COLUMNS order (chain v3)."""
        return (
            position,
            self.meeting_id,
            self.event_id,
            self.type,
            self.control_number,
            self.channel,
            self.executed_at,
            self.received_at,
            self.decision,
            self.reason,
            self.payload,
            self.source_topic,
            self.source_partition,
            self.source_offset,
            prev_position,
            hash_,
            recorded_at,
            self.appended_at,
            chain.LATEST_VERSION,
            self.compact,
        )


def log_row_of(
    event: AnyEvent,
    payload: str,
    decision: str,
    reason: str | None,
    source: tuple[str, int, int] | None = None,
    appended_at: datetime | None = None,
) -> LogRow:
    """The log row of a decided event: its columns read off the event, the payload as received, its compact form.

    ``appended_at``: the broker's append time of its record, when the topic uses LogAppendTime.
    """
    topic, partition, offset = source if source is not None else (None, None, None)
    return LogRow(
        meeting_id=event.meeting_id,
        event_id=event.event_id,
        type=tag_of(event),
        control_number=getattr(event, "control_number", None),
        channel=getattr(event, "channel", None),
        executed_at=getattr(event, "executed_at", None),
        received_at=getattr(event, "received_at", None),
        decision=decision,
        reason=reason,
        payload=payload,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        appended_at=appended_at,
        compact=encode_compact(event),  # once, here: the ledger already holds the decoded event
    )


@dataclass(slots=True)
class ParkedMessage:
    """A message that could not be decoded, with where it came from and why."""

    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str

    def __post_init__(self) -> None:
        # The detail quotes exceptions, which may quote the message: PostgreSQL's text refuses NUL,
        # and a parked row that cannot be stored would fail its batch forever.
        self.detail = self.detail.replace("\x00", "\\u0000")[:2000]


@dataclass(slots=True)
class KnownId:
    """An event_id already in the log: the payloads logged under it, and whether one was accepted."""

    payloads: list[bytes] = field(default_factory=list)
    applied: bool = False


def chained_records(
    rows: Sequence[LogRow],
    head: int,
    heads: dict[str, tuple[int, bytes]],
    recorded_at: datetime,
) -> list[tuple[object, ...]]:
    """Rows as LOG_COLUMNS tuples at positions head+1.., each hashed onto its meeting's chain (v3).

    ``heads`` maps meeting_id to its last (position, hash) and is advanced in place; every row is
    recorded at ``recorded_at`` (the caller's clock: the log's, when the adapter appends), which its hash covers.
    """
    records = []
    # The batch's one recorded_at in microseconds once, not per row (canonical_v3 converts it each call).
    recorded_micros = micros(recorded_at)
    for position, row in enumerate(rows, start=head + 1):
        prev_position: int | None
        prev_position, prev_hash = heads.get(row.meeting_id, (None, chain.GENESIS))
        hash_ = chain.link(
            prev_hash,
            canonical_v3_micros(
                position,
                prev_position,
                row.meeting_id,
                row.event_id,
                row.type,
                row.decision,
                row.reason,
                row.payload,
                recorded_micros,
                row.source_topic,
                row.source_partition,
                row.source_offset,
                None if row.appended_at is None else micros(row.appended_at),
            ),
        )
        heads[row.meeting_id] = (position, hash_)
        records.append(row.record(position, prev_position, hash_, recorded_at))
    return records

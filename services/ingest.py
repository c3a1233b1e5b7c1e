"""Turn a batch of Kafka records into log rows and parked messages (decode, dedupe, judge)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from events import EVENT_TYPES, MalformedMessage, MeetingScheduled, PollsClosed, PositionsRecorded, decode
from projections.judge import Judge
from projections.validation import WRONG_TOPIC
from services.postgres.log_store import LogRow, ParkedMessage


class Record(Protocol):
    """The parts of a Kafka consumer record the ledger uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Decided:
    """The outcome of one batch: rows to append, messages to park, offsets to store."""

    rows: list[LogRow] = field(default_factory=list)
    parked: list[ParkedMessage] = field(default_factory=list)
    duplicates: int = 0
    deferred: list = field(default_factory=list)  # records left for a later batch, uncommitted
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def decode_batch(records: Sequence[Record]) -> tuple[list[tuple[Record, object]], list[ParkedMessage]]:
    """Decode every record; the undecodable ones become parked messages, never exceptions."""
    decoded, parked = [], []
    for record in records:
        refused = getattr(record, "refused", None)
        if refused:  # the database would not store it (see services.ledger.handle_one_by_one)
            parked.append(ParkedMessage(record.topic, record.partition, record.offset, record.key,
                                        record.value, "refused_by_database", refused))
            continue
        try:
            if record.value is None:
                raise MalformedMessage("empty_message", "the message has no value")
            decoded.append((record, decode(record.value)))
        except MalformedMessage as exc:
            parked.append(ParkedMessage(record.topic, record.partition, record.offset, record.key,
                                        record.value, exc.reason, exc.detail))
        except UnicodeDecodeError as exc:  # belt and braces: msgspec reports bad UTF-8 itself
            parked.append(ParkedMessage(record.topic, record.partition, record.offset, record.key,
                                        record.value, "invalid_json", str(exc)))
    return decoded, parked


def decide(judge: Judge, decoded: list[tuple[Record, object]], known: set[str], admin_topic: str) -> Decided:
    """Judge decoded events in batch order, skipping event_ids already logged or seen (R18)."""
    out = Decided()
    seen = set(known)
    # Meeting administration first: a batch may hold a meeting's register and its first votes.
    ordered = sorted(decoded, key=lambda pair: pair[0].topic != admin_topic)
    for record, event in ordered:
        if event.event_id in seen:
            out.duplicates += 1
            continue
        seen.add(event.event_id)
        # A channel must not grant itself entitlement or close the polls through the vote topic.
        on_admin_topic = record.topic == admin_topic
        if on_admin_topic != isinstance(event, _ADMIN_EVENTS):
            reason = WRONG_TOPIC
        else:
            reason = judge.judge(event)
        out.rows.append(LogRow(
            meeting_id=event.meeting_id, event_id=event.event_id, type=_tag(event),
            control_number=getattr(event, "control_number", None), channel=getattr(event, "channel", None),
            executed_at=getattr(event, "executed_at", None), received_at=getattr(event, "received_at", None),
            decision="accepted" if reason is None else "rejected", reason=reason,
            payload=record.value.decode(), source_topic=record.topic, source_partition=record.partition,
            source_offset=record.offset,
        ))
    return out


_ADMIN_EVENTS = (MeetingScheduled, PositionsRecorded, PollsClosed)


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The next offset to consume per (topic, partition) after this batch."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        if record.offset + 1 > offsets.get(key, -1):
            offsets[key] = record.offset + 1
    return offsets


_TAGS = {cls: tag for tag, cls in EVENT_TYPES.items()}  # the stable wire tag, e.g. "vote.cast"


def _tag(event: object) -> str:
    return _TAGS[type(event)]

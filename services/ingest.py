"""Turn a batch of Kafka records into log rows and parked messages (decode, dedupe, judge)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from events import EVENT_TYPES, MalformedMessage, MeetingScheduled, PollsClosed, PositionsRecorded, decode
from projections.judge import Judge
from projections.validation import DUPLICATE_EVENT_ID, WRONG_TOPIC
from services.postgres.log_store import LogRow, ParkedMessage

log = logging.getLogger("vote_ledger.ledger")

# Reason codes of the ledger itself (the decoder's are in events/codec.py, the rules' in projections/).
UNPROCESSABLE = "unprocessable"  # our code raised on this record: parked, never retried forever


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
    # The judge raised part-way through an event: its state may hold half of it, so rebuild it.
    judge_suspect: bool = False


def decode_batch(records: Sequence[Record]) -> tuple[list[tuple[Record, object]], list[ParkedMessage]]:
    """Decode every record; the undecodable ones become parked messages, never exceptions."""
    decoded, parked = [], []
    for record in records:
        refused = getattr(record, "refused", None)
        if refused:  # it failed alone (see services.ledger.handle_one_by_one): (reason, detail)
            parked.append(ParkedMessage(record.topic, record.partition, record.offset, record.key,
                                        record.value, *refused))
            continue
        try:
            if record.value is None:
                raise MalformedMessage("empty_message", "the message has no value")
            decoded.append((record, decode(record.value)))
        except MalformedMessage as exc:
            parked.append(ParkedMessage(record.topic, record.partition, record.offset, record.key,
                                        record.value, exc.reason, exc.detail))
        except Exception as exc:  # noqa: BLE001 - any failure on one record is that record's, not the batch's
            parked.append(unprocessable(record, exc))
    return decoded, parked


def unprocessable(record: Record, exc: BaseException) -> ParkedMessage:
    """Park a record our code raised on, with the exception as its detail."""
    log.error("parking %s/%s/%s: %s: %s", record.topic, record.partition, record.offset, type(exc).__name__, exc)
    value = record.value if isinstance(record.value, (bytes, type(None))) else bytes(record.value)
    return ParkedMessage(record.topic, record.partition, record.offset, record.key, value, UNPROCESSABLE,
                         f"{type(exc).__name__}: {exc}")


def decide(judge: Judge, decoded: list[tuple[Record, object]], known: Mapping[str, list[bytes]] | set[str],
           admin_topic: str) -> Decided:
    """Judge decoded events in batch order, skipping event_ids already logged or seen (R18).

    ``known`` maps event_ids already in the log to the payloads logged under them (a plain set of
    ids: any payload counts as the same). A record the judge raises on goes to ``parked``.
    """
    out = Decided()
    seen: dict[str, list[bytes] | None] = (
        {event_id: list(payloads) for event_id, payloads in known.items()} if isinstance(known, Mapping)
        else dict.fromkeys(known))
    # Meeting administration first: a batch may hold a meeting's register and its first votes.
    ordered = sorted(decoded, key=lambda pair: pair[0].topic != admin_topic)
    for record, event in ordered:
        reason = None
        logged = seen.get(event.event_id, _NEW)
        if logged is None or record.value in logged:
            out.duplicates += 1  # R18: the same message again (a redelivery or a retry): applied once
            continue
        if logged is _NEW:
            seen[event.event_id] = [record.value]
        else:
            # R18 keeps the first; a different message under a used id is logged rejected, so an id
            # squatted by another party shows (the first row is the one with the lowest position).
            logged.append(record.value)
            reason = DUPLICATE_EVENT_ID
        # A channel must not grant itself entitlement or close the polls through the vote topic.
        on_admin_topic = record.topic == admin_topic
        if reason is None and on_admin_topic != isinstance(event, _ADMIN_EVENTS):
            reason = WRONG_TOPIC
        elif reason is None:
            try:
                reason = judge.judge(event)
            except Exception as exc:  # noqa: BLE001 - one event must not stop the batch
                out.parked.append(unprocessable(record, exc))
                out.judge_suspect = True
                continue
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
_NEW: list[bytes] = []  # sentinel: an event_id neither logged nor seen in this batch (never mutated)


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

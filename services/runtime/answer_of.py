"""The answer to a channel for a logged row or a parked message, and the lenient reader of a parked message's ids.

Pure (no I/O): the relay (services/runtime/answers.py) feeds it rows read from the log. A parked
message is one the decoder refused, so its ids are read here leniently: whatever the bytes hold
(not JSON, not UTF-8, nested past any limit, strings of any length or with lone surrogates), the
reader returns what it can and never raises.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from events.answers import SubmissionDecided, SubmissionParked
from events.schema import CHANNEL_ID_PATTERN

# The wire schema's bounds (events/schema.py NonEmpty, ChannelId): an id outside them was never a
# submission's, and answering under it would put the sender's arbitrary bytes on the answers topic.
_ID_MAX = 200
_CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class ReadIds:
    """What a parked message's bytes say about who sent it and what for (None: not readable)."""

    event_id: str | None = None
    control_number: str | None = None
    meeting_id: str | None = None
    channel_id: str | None = None


def read_ids(value: bytes | None) -> ReadIds:
    """The ids a message's bytes hold, read leniently; never raises (every unreadable part is None)."""
    try:
        message = _decoder.decode(value) if value else None
    except (msgspec.DecodeError, RecursionError, UnicodeError, ValueError, OverflowError):
        return ReadIds()
    if not isinstance(message, dict):
        return ReadIds()
    auth = message.get("auth")
    channel_id = auth.get("channel_id") if isinstance(auth, dict) else None
    return ReadIds(
        event_id=_id(message.get("event_id")),
        control_number=_id(message.get("control_number")),
        meeting_id=_id(message.get("meeting_id")),
        channel_id=channel_id if isinstance(channel_id, str) and _CHANNEL_ID.fullmatch(channel_id) else None,
    )


def _id(value: Any) -> str | None:
    """A string id as the wire schema bounds it, encodable as UTF-8 (no lone surrogate); else None."""
    if not isinstance(value, str) or not 1 <= len(value) <= _ID_MAX:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def decided(row: Mapping[str, Any]) -> SubmissionDecided:
    """The answer for a logged row (AnswerRelay's query: answers.decided_rows)."""
    return SubmissionDecided(
        event_id=row["event_id"],
        channel_id=row["channel_id"] if isinstance(row["channel_id"], str) else None,
        meeting_id=row["meeting_id"],
        control_number=row["control_number"],
        decision=row["decision"],
        reason=row["reason"],
        position=row["position"],
        hash=bytes(row["hash"]).hex(),
        # The stored payload is the received value decoded as strict UTF-8 (ingest.decide), stored
        # verbatim (a json column keeps its text): its UTF-8 bytes are the bytes received.
        payload_sha256=bytes(row["payload_sha256"]).hex(),
    )


def decided_key(row: Mapping[str, Any]) -> bytes:
    """The answer's Kafka key: the control number, or the meeting id when the row has none (as the submission's)."""
    return (row["control_number"] or row["meeting_id"]).encode()


def parked(message: Mapping[str, Any]) -> tuple[SubmissionParked, bytes | None]:
    """The answer for a parked message and its Kafka key (None when neither a control number nor a meeting id reads).

    An answer whose event id cannot be read is still published (event_id null): the channel knows
    the partition and offset it sent to, which the answer names (source_partition, source_offset).
    """
    ids = read_ids(message["value"])
    answer = SubmissionParked(
        event_id=ids.event_id,
        channel_id=ids.channel_id,
        reason=message["reason"],
        detail=message["detail"],
        parked_id=message["id"],
        source_topic=message["source_topic"],
        source_partition=message["source_partition"],
        source_offset=message["source_offset"],
        payload_sha256=None if message["value"] is None else hashlib.sha256(message["value"]).hexdigest(),
    )
    key = ids.control_number or ids.meeting_id
    return answer, None if key is None else key.encode()

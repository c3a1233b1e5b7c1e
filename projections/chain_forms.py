"""The canonical bytes of each version of a log row and of a parked message, and the SHA-256 link. Pure, no I/O.

The chain's rules and versions are described in projections/chain.py, which checks the chains.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec

_encoder = msgspec.json.Encoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(instant: datetime) -> int:
    """Whole microseconds since 1970-01-01 UTC (exact: PostgreSQL's timestamptz resolution)."""
    return (instant - _EPOCH) // _MICROSECOND


def canonical(
    position: int,
    prev_position: int | None,
    meeting_id: str,
    event_id: str,
    type_: str,
    decision: str,
    reason: str | None,
    payload: str,
) -> bytes:
    """The bytes a v1 row's hash covers."""
    return _encoder.encode([position, prev_position, meeting_id, event_id, type_, decision, reason, payload])


def canonical_v2(
    position: int,
    prev_position: int | None,
    meeting_id: str,
    event_id: str,
    type_: str,
    decision: str,
    reason: str | None,
    payload: str,
    recorded_at: datetime,
    source_topic: str | None,
    source_partition: int | None,
    source_offset: int | None,
) -> bytes:
    """The bytes a v2 row's hash covers: v1's, plus when the ledger recorded it and where it came from."""
    return _encoder.encode(
        [
            2,
            position,
            prev_position,
            meeting_id,
            event_id,
            type_,
            decision,
            reason,
            payload,
            micros(recorded_at),
            source_topic,
            source_partition,
            source_offset,
        ]
    )


def canonical_v3(
    position: int,
    prev_position: int | None,
    meeting_id: str,
    event_id: str,
    type_: str,
    decision: str,
    reason: str | None,
    payload: str,
    recorded_at: datetime,
    source_topic: str | None,
    source_partition: int | None,
    source_offset: int | None,
    appended_at: datetime | None,
) -> bytes:
    """The bytes a v3 row's hash covers: v2's, plus the broker's append time of its record (or null)."""
    return canonical_v3_micros(
        position,
        prev_position,
        meeting_id,
        event_id,
        type_,
        decision,
        reason,
        payload,
        micros(recorded_at),
        source_topic,
        source_partition,
        source_offset,
        None if appended_at is None else micros(appended_at),
    )


def canonical_v3_micros(
    position: int,
    prev_position: int | None,
    meeting_id: str,
    event_id: str,
    type_: str,
    decision: str,
    reason: str | None,
    payload: str,
    recorded_micros: int,
    source_topic: str | None,
    source_partition: int | None,
    source_offset: int | None,
    appended_micros: int | None,
) -> bytes:
    """canonical_v3 with both times already in microseconds: the ledger's batch shares one recorded_at."""
    return _encoder.encode(
        [
            3,
            position,
            prev_position,
            meeting_id,
            event_id,
            type_,
            decision,
            reason,
            payload,
            recorded_micros,
            source_topic,
            source_partition,
            source_offset,
            appended_micros,
        ]
    )


def canonical_parked(
    id_: int,
    prev_id: int | None,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    parked_at: datetime,
) -> bytes:
    """The bytes a parked message's hash covers."""
    return _encoder.encode(
        [
            1,
            id_,
            prev_id,
            source_topic,
            source_partition,
            source_offset,
            None if key is None else key.hex(),
            None if value is None else value.hex(),
            reason,
            detail,
            micros(parked_at),
        ]
    )


def link(prev_hash: bytes, row_bytes: bytes) -> bytes:
    """The hash of a row given its chain's previous hash."""
    # Fed in two parts rather than hashing prev_hash + row_bytes: the same digest without copying a
    # signed vote's ~2.4 kB of canonical bytes once more per row.
    digest = hashlib.sha256(prev_hash)
    digest.update(row_bytes)
    return digest.digest()

"""Chain helpers only tests need: log rows as the ledger builds them and as the verifier reads them back, chain v1
hashes of raw rows, and re-chaining rows as a writer (or a forger) would."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from events import encode
from projections.chain import GENESIS, ChainRow, ParkedRow, canonical, link
from projections.log_row import LOG_COLUMNS, LogRow, log_row_of

RECORDED = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def row(event, decision: str = "accepted", reason: str | None = None, offset: int = 0) -> LogRow:
    """A log row of an event, as the ledger builds it."""
    return log_row_of(event, encode(event).decode(), decision, reason, ("votes.submissions", 0, offset))


def as_chain_row(record: tuple) -> ChainRow:
    """A record in LOG_COLUMNS order as `audit verify` reads it back."""
    r = dict(zip(LOG_COLUMNS, record, strict=True))
    return ChainRow(
        r["position"],
        r["prev_position"],
        r["meeting_id"],
        r["event_id"],
        r["type"],
        r["decision"],
        r["reason"],
        r["payload"],
        r["hash"],
        r["chain_version"],
        r["recorded_at"],
        r["source_topic"],
        r["source_partition"],
        r["source_offset"],
        r["appended_at"],
    )


def hashes(
    rows: Iterable[tuple[Any, ...]], start: tuple[int | None, bytes] = (None, GENESIS)
) -> Iterator[tuple[int | None, bytes]]:
    """For rows (position, meeting_id, event_id, type, decision, reason, payload) of ONE meeting in
    order, yield (prev_position, hash) under chain v1, continuing the chain from ``start``."""
    prev_position, prev_hash = start
    for position, meeting_id, event_id, type_, decision, reason, payload in rows:
        prev_hash = link(
            prev_hash, canonical(position, prev_position, meeting_id, event_id, type_, decision, reason, payload)
        )
        yield prev_position, prev_hash
        prev_position = position


def rechain(
    rows: Iterable[ChainRow | ParkedRow], start: tuple[int | None, bytes] = (None, GENESIS)
) -> list[ChainRow | ParkedRow]:
    """The rows with prev_position and hash recomputed in order, as a writer (or a forger) would."""
    prev_position, prev_hash = start
    out = []
    for row in rows:
        row = replace(row, prev_position=prev_position)
        prev_hash = row.expected_hash(prev_hash)
        out.append(replace(row, hash=prev_hash))
        prev_position = row.position
    return out

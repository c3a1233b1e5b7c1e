"""Chain helpers only tests need: chain v1 hashes of raw rows, and re-chaining rows as a writer (or a forger) would."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from projections.chain import GENESIS, ChainRow, ParkedRow, canonical, link


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

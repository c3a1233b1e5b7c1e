"""The benchmark workload as a stream: generated, signed and published in chunks, so memory stays bounded.

The in-memory workload (workload.build) holds every submission twice (the struct and its bytes):
about 1.5 GB at 1M, so 10M could not be built. A streamed workload keeps only the meeting's admin
events and how to generate the submissions; publishing it holds one chunk at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from events import MeetingScheduled, encode
from services.adapters.kafka.topics import ensure_topics, key_for, producer, publish_raw
from services.devtools.bench.workload import DEFAULT_MEETING, DEFAULT_POSITIONS, SIGN_WINDOW, admin_of
from services.devtools.demo.traffic import generate
from services.settings import Settings

# Messages sent before waiting for the broker's acknowledgements: aiokafka keeps every unacknowledged
# message (and its future) in memory, so publishing 10M at once held them all.
PUBLISH_CHUNK = 20_000


@dataclass
class StreamedWorkload:
    """A meeting's admin events (in memory: a few hundred) and ``size`` submissions generated on demand."""

    meeting: MeetingScheduled
    admin_payloads: list[tuple[bytes, bytes]]
    size: int
    positions: int
    make: Callable[[], Iterator[tuple[bytes, bytes]]]
    signed: bool = True

    @property
    def meeting_id(self) -> str:
        """The meeting's id."""
        return self.meeting.meeting_id

    def payloads(self) -> Iterator[tuple[bytes, bytes]]:
        """The submissions' exact (key, value) bytes, generated afresh at each call (same seed, same bytes)."""
        return self.make()


def stream(
    size: int,
    *,
    meeting_file: Path = DEFAULT_MEETING,
    positions: int = DEFAULT_POSITIONS,
    seed: int = 5,
    window: int = SIGN_WINDOW,
    meeting_id: str | None = None,
) -> StreamedWorkload:
    """The same workload as workload.build (same seed, same bytes), its submissions generated while published.

    ``meeting_id`` renames the meeting (the 50-meetings measurement needs distinct ones).
    """
    admin = admin_of(meeting_file, positions, meeting_id)

    def make() -> Iterator[tuple[bytes, bytes]]:
        generated = generate(admin.meeting, admin.register, admin.sim, count=size, seed=seed)
        return ((s.key, s.payload) for s in admin.signer.signed(generated, window))

    return StreamedWorkload(
        meeting=admin.meeting,
        admin_payloads=[(key_for(e), encode(e)) for e in admin.events],
        size=size,
        positions=len(admin.register),
        make=make,
    )


def interleaved(workloads: list[StreamedWorkload]) -> Iterator[tuple[bytes, bytes]]:
    """Every workload's submissions, one of each in turn (round robin) until all are exhausted."""
    iterators = [w.payloads() for w in workloads]
    while iterators:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                yield item
                alive.append(it)
        iterators = alive


async def publish_stream(
    settings: Settings,
    admin: list[tuple[bytes, bytes]],
    submissions: Iterable[tuple[bytes, bytes]],
    chunk: int = PUBLISH_CHUNK,
) -> dict[str, Any]:
    """Create the namespace's topics and publish admin, then submissions a chunk at a time; counts, not payloads."""
    await ensure_topics(settings)
    started = time.perf_counter()
    count = size = 0
    async with producer(settings) as client:
        await publish_raw(client, settings.admin_topic, admin)
        it = iter(submissions)
        while part := list(islice(it, chunk)):
            count += await publish_raw(client, settings.submissions_topic, part)
            size += sum(len(value) for _, value in part)
    return {
        "submissions": count,
        "payload_bytes": size,
        "mean_payload_bytes": round(size / max(1, count)),
        "seconds": round(time.perf_counter() - started, 2),
    }

"""Publishing a meeting and its register to meetings.admin, as meeting administration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from events import AnyEvent, encode
from services.adapters.kafka.topics import creates_topics, ensure_topics, key_for, producer, topic_for
from services.registers.decisions import Sent
from services.registers.wire import describe
from services.settings import Settings


async def publish_admin(
    settings: Settings, events: Sequence[AnyEvent], on_progress: Callable[[int, int | None], None] | None = None
) -> list[Sent]:
    """Publish these events in order; where the broker put each; ``on_progress(published, total)`` as it acknowledges.

    The records' places tell the ledger's row for a record published now from one logged earlier under the
    same id (services.registers.decisions).
    """
    if creates_topics(settings):
        await ensure_topics(settings)
    # With a progress callback, groups of events one after the other (still in order); else all at once.
    group = 16 if on_progress is not None else max(1, len(events))
    sent: list[Sent] = []
    async with producer(settings, "admin") as client:  # only meeting administration may write meetings.admin
        for start in range(0, len(events), group):
            batch = events[start : start + group]
            pending = [await client.send(topic_for(e, settings), encode(e), key=key_for(e)) for e in batch]
            for event, meta in zip(batch, await asyncio.gather(*pending), strict=True):
                sent.append(Sent(event.event_id, describe(event), meta.topic, meta.partition, meta.offset))
            if on_progress is not None:
                on_progress(len(sent), len(events))
    return sent

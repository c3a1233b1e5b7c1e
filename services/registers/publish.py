"""Publishing a meeting and its register to meetings.admin, as meeting administration."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from events import AnyEvent
from services.adapters.kafka.topics import creates_topics, ensure_topics, producer, publish
from services.settings import Settings


async def publish_admin(
    settings: Settings, events: Sequence[AnyEvent], on_progress: Callable[[int, int | None], None] | None = None
) -> int:
    """Publish these events in order; ``on_progress(published, total)`` as the broker acknowledges groups."""
    if creates_topics(settings):
        await ensure_topics(settings)
    # With a progress callback, groups of events one after the other (still in order); else all at once.
    group = 16 if on_progress is not None else max(1, len(events))
    published = 0
    async with producer(settings, "admin") as client:  # only meeting administration may write meetings.admin
        for start in range(0, len(events), group):
            published += await publish(client, settings, events[start : start + group])
            if on_progress is not None:
                on_progress(published, len(events))
    return published

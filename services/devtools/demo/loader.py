"""Publish a meeting spec to Kafka (meeting.scheduled, positions.recorded) and play simulated traffic."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import msgspec

from events import MeetingScheduled, Position, encode
from services.adapters.kafka.topics import creates_topics, ensure_topics, key_for, producer, publish, topic_for
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import RegisterSpec, SimulationSpec, load_spec
from services.devtools.demo.traffic import generate
from services.settings import Settings


@dataclass(frozen=True)
class LoadSummary:
    """What `load_meeting` published."""

    meeting_id: str
    event_id: str
    positions: int
    shares: int
    chunks: int
    events: int


@dataclass(frozen=True)
class Progress:
    """Where a simulation stands: published so far, seconds since the start, achieved rate."""

    published: int
    target: int
    elapsed: float
    rate: float
    done: bool = False


@dataclass(frozen=True)
class SimulationSummary:
    """What `simulate` published and how fast."""

    meeting_id: str
    seed: int
    published: int
    target: int
    seconds: float
    rate: float
    target_rate: float


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


def prepare(
    path: str | Path, turnout: float | None = None
) -> tuple[MeetingScheduled, RegisterSpec, SimulationSpec, list[Position]]:
    """Load a spec (optionally overriding the turnout) and build its register."""
    meeting, register_spec, sim = load_spec(path)
    if turnout is not None:
        if not 0 < turnout <= 1:
            raise ValueError(f"turnout must be in (0, 1], got {turnout}")
        sim = msgspec.structs.replace(sim, turnout=turnout)
    positions, _ = build_register(meeting, register_spec)
    return meeting, register_spec, sim, positions


async def load_meeting(
    settings: Settings, path: str | Path, on_progress: Callable[[int, int | None], None] | None = None
) -> LoadSummary:
    """Publish meeting.scheduled then the positions.recorded chunks (deterministic ids: R18).

    ``on_progress(published, total)``: called as the broker acknowledges groups of events.
    """
    meeting, register_spec, _ = load_spec(path)
    positions, entitlements = build_register(meeting, register_spec)
    events = [meeting, *register_events(meeting, positions, entitlements)]
    chunks = events[1:]
    if creates_topics(settings):
        await ensure_topics(settings)
    # With a progress callback, groups of events one after the other (still in order); else all at once.
    group = 16 if on_progress is not None else len(events)
    published = 0
    async with producer(settings, "admin") as client:  # only meeting administration may write meetings.admin
        for start in range(0, len(events), group):
            published += await publish(client, settings, events[start : start + group])
            if on_progress is not None:
                on_progress(published, len(events))
    return LoadSummary(
        meeting_id=meeting.meeting_id,
        event_id=meeting.event_id,
        positions=len(positions),
        shares=sum(p.shares for p in positions),
        chunks=len(chunks),
        events=published,
    )


async def simulate(
    settings: Settings,
    path: str | Path,
    rate: float,
    duration: float,
    *,
    turnout: float | None = None,
    seed: int | None = None,
    on_progress: ProgressCallback | None = None,
    tick: float = 0.05,
) -> SimulationSummary:
    """Publish round(rate × duration) generated submissions at ``rate`` per second.

    Each tick sends what is due by the clock, so a slow tick is caught up by the next and the rate
    holds on average. ``on_progress`` (sync or async) is called about once per second and at the end.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    meeting, _, sim, positions = prepare(path, turnout)
    seed = sim.seed if seed is None else seed
    target = max(1, round(rate * duration))
    events: Iterator = iter(generate(meeting, positions, sim, count=target, seed=seed))
    # Plan the campaign before the clock starts, so the first tick is not late.
    events = chain(list(islice(events, 1)), events)
    if creates_topics(settings):
        await ensure_topics(settings)
    loop = asyncio.get_running_loop()
    async with producer(settings, "channel") as client:  # a channel's votes, as a channel's principal
        pending: list[asyncio.Future] = []
        published, exhausted = 0, False
        start = loop.time()
        next_report = start + 1.0
        while published < target and not exhausted:
            now = loop.time()
            due = min(target, int(rate * (now - start)) + 1) - published
            sent = 0
            for event in islice(events, max(0, due)):
                pending.append(await client.send(topic_for(event, settings), encode(event), key=key_for(event)))
                sent += 1
            published += sent
            exhausted = sent < due
            if published >= target or exhausted:
                break
            if now >= next_report:
                pending = _settle(pending)
                await _report(on_progress, Progress(published, target, now - start, published / (now - start)))
                next_report += 1.0
            await asyncio.sleep(tick)
        if pending:
            await asyncio.gather(*pending)  # the broker acknowledged everything we count
        elapsed = max(loop.time() - start, 1e-9)
    await _report(on_progress, Progress(published, target, elapsed, published / elapsed, done=True))
    return SimulationSummary(
        meeting_id=meeting.meeting_id,
        seed=seed,
        published=published,
        target=target,
        seconds=elapsed,
        rate=published / elapsed,
        target_rate=rate,
    )


def _settle(pending: list[asyncio.Future]) -> list[asyncio.Future]:
    """Drop acknowledged sends, raising the first delivery error; keep those in flight."""
    waiting = []
    for future in pending:
        if future.done():
            future.result()
        else:
            waiting.append(future)
    return waiting


async def _report(callback: ProgressCallback | None, progress: Progress) -> None:
    if callback is None:
        return
    result = callback(progress)
    if inspect.isawaitable(result):
        await result

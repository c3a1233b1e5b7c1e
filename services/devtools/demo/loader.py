"""Publish a meeting spec to Kafka (meeting.scheduled, positions.recorded) and play simulated traffic."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import msgspec

from events import MeetingScheduled, Position
from services.adapters.kafka.topics import creates_topics, ensure_topics, producer, publish
from services.channel.client import ChannelClient
from services.devtools.demo.channels import Signer, key_events
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
    keys: int = 0  # channel keys registered (the simulated channels')


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
    sample: Any = None  # the answer to one submission (events.answers), when asked for


# How many of the last submissions a sample answer is chosen among (the last accepted one), and how long
# to await their answers once everything is published (the ledger may still be catching up).
SAMPLE_AMONG = 50
SAMPLE_TIMEOUT_S = 120.0

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
    """Publish meeting.scheduled, the positions.recorded chunks, then the simulated channels' keys (ids: R18).

    The keys (services.devtools.demo.channels) are registered before any traffic, as the rest: by
    meeting administration.

        ``on_progress(published, total)``: called as the broker acknowledges groups of events.
    """
    meeting, register_spec, sim = load_spec(path)
    positions, entitlements = build_register(meeting, register_spec)
    chunks = register_events(meeting, positions, entitlements)
    keys = key_events(meeting, register_spec, sim)
    events = [meeting, *chunks, *keys]
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
        keys=len(keys),
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
    sample: bool = False,
) -> SimulationSummary:
    """Publish round(rate × duration) generated submissions at ``rate`` per second, signed by their channels.

    Each tick sends what is due by the clock, so a slow tick is caught up by the next and the rate
    holds on average. ``on_progress`` (sync or async) is called about once per second and at the end.
    Every submission is signed through the channel client by its simulated channel (each channel's
    share of a window of traffic as one batch, services.devtools.demo.channels). ``sample``: then
    await the answers of the last submissions on votes.decisions and return one (the last
    accepted), as a channel reads its receipt.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    meeting, register_spec, sim, positions = prepare(path, turnout)
    seed = sim.seed if seed is None else seed
    target = max(1, round(rate * duration))
    signer = Signer(meeting, register_spec, sim)
    events: Iterator = signer.signed(generate(meeting, positions, sim, count=target, seed=seed))
    # Plan the campaign (and sign its first window) before the clock starts, so the first tick is not late.
    events = chain(list(islice(events, 1)), events)
    if creates_topics(settings):
        await ensure_topics(settings)
    loop = asyncio.get_running_loop()
    last: deque = deque(maxlen=SAMPLE_AMONG)
    async with ChannelClient(settings, "channel") as client:  # a channel's votes, as a channel's principal
        if sample:
            await client.watch()  # from here on: the answers to what we publish
        pending: list[asyncio.Future] = []
        published, exhausted = 0, False
        start = loop.time()
        next_report = start + 1.0
        while published < target and not exhausted:
            now = loop.time()
            due = min(target, int(rate * (now - start)) + 1) - published
            batch = list(islice(events, max(0, due)))
            pending += await client.send(batch)
            last.extend(signed.event_id for signed in batch)
            sent = len(batch)
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
        answer = await _sample(client, list(last)) if sample else None
    await _report(on_progress, Progress(published, target, elapsed, published / elapsed, done=True))
    return SimulationSummary(
        meeting_id=meeting.meeting_id,
        seed=seed,
        published=published,
        target=target,
        seconds=elapsed,
        rate=published / elapsed,
        target_rate=rate,
        sample=answer,
    )


async def _sample(client: ChannelClient, event_ids: list[str]) -> Any:
    """The answer to the last accepted of these submissions (else the last answered), awaited on votes.decisions."""
    answers = await client.answers(event_ids, SAMPLE_TIMEOUT_S)
    answered = [answers[i] for i in event_ids if i in answers]
    accepted = [a for a in answered if getattr(a, "decision", None) == "accepted"]
    return (accepted or answered or [None])[-1]


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

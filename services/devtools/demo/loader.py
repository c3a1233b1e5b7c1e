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
from services.adapters.kafka.topics import creates_topics, ensure_topics
from services.channel.client import ChannelClient
from services.devtools.demo.channels import Signer, key_events, missing_demo_keys
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import RegisterSpec, SimulationSpec, load_spec
from services.devtools.demo.traffic import generate
from services.registers.decisions import Sent
from services.registers.meeting_file import declare_register
from services.registers.publish import publish_admin
from services.registers.wire import judged_refusal
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
    keys: int = 0  # channel keys registered (the simulated channels' public demo keys, when asked for)
    sent: tuple[Sent, ...] = ()  # where the broker put each event, for the ledger's decisions on them


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
    settings: Settings,
    path: str | Path,
    on_progress: Callable[[int, int | None], None] | None = None,
    *,
    simulated_channels: bool = False,
) -> LoadSummary:
    """Publish meeting.scheduled, the positions.recorded chunks and, when asked, the simulated channels' keys.

    ``simulated_channels``: also register the demo keys of the simulated channels
    (services.devtools.demo.channels), before any traffic, for `simulate`. They are derived from
    public ids, so anyone can sign with them: never for a real meeting, whose channels register
    their own keys (`vote-ledger channel register`). Event ids derive from the content (R18).

        ``on_progress(published, total)``: called as the broker acknowledges groups of events.
    """
    meeting, register_spec, sim = load_spec(path)
    positions, entitlements = build_register(meeting, register_spec)
    chunks = register_events(meeting, positions, entitlements)
    # The meeting as published declares its register's digest too: the spec's totals are computed without
    # building the register (load_spec, 0.5 s for the demo's 20,000 positions), the digest needs it.
    declared = declare_register(meeting, chunks)
    if declared.register is None or msgspec.structs.replace(declared.register, digest=None) != meeting.register:
        raise ValueError(f"{path}: the synthetic register is not what the meeting declares ({meeting.register})")
    meeting = declared
    keys = key_events(meeting, register_spec, sim) if simulated_channels else []
    why = judged_refusal([meeting, *chunks, *keys])  # as the real-register path (services.registers.build)
    if why is not None:
        raise ValueError(f"{path}: {why}; nothing published")
    sent = await publish_admin(settings, [meeting, *chunks, *keys], on_progress)
    return LoadSummary(
        meeting_id=meeting.meeting_id,
        event_id=meeting.event_id,
        positions=len(positions),
        shares=sum(p.shares for p in positions),
        chunks=len(chunks),
        events=len(sent),
        keys=len(keys),
        sent=tuple(sent),
    )


# How long `simulate` waits for the ledger to log the meeting, then its simulated channels' keys (published
# right after the register by `meeting load --simulated-channels`: logged within a batch or two of it).
MEETING_WAIT_S = 60.0
KEYS_WAIT_S = 10.0


async def demo_keys_missing(
    settings: Settings, path: str | Path, meeting_wait: float = MEETING_WAIT_S, keys_wait: float = KEYS_WAIT_S
) -> list[str] | None:
    """The simulated channels of the spec whose demo key the log lacks ([]: all there), read as the reader role.

    None when the meeting is not in the log after ``meeting_wait`` seconds. Waits up to ``keys_wait``
    seconds more for the keys once the meeting is logged (a load the ledger is still working through).
    """
    from events import ChannelKeyRegistered, decode_logged
    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.adapters.postgres.log.channel_keys import key_rows, meeting_logged

    meeting, register_spec, sim = load_spec(path)
    loop = asyncio.get_running_loop()
    conn = await connect_as(settings, READER_ROLE)
    try:
        deadline = loop.time() + meeting_wait
        found_at: float | None = None
        while True:
            if found_at is None and await meeting_logged(conn, meeting.meeting_id):
                found_at = loop.time()
            if found_at is not None:
                rows = await key_rows(conn, meeting.meeting_id)
                events = [decode_logged(row["payload"]) for row in rows]
                registered = [e for e in events if isinstance(e, ChannelKeyRegistered)]
                missing = missing_demo_keys(meeting, register_spec, sim, registered)
                if not missing or loop.time() >= found_at + keys_wait:
                    return missing
            elif loop.time() >= deadline:
                return None
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


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

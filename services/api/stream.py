"""GET /v1/meetings/{meeting_id}/tally/stream: the tally as server-sent events, pushed when the projector commits.

Driven by the projector's announcements (services/api/listener.py), not by polling: a stream wakes
when the checkpoint moves, reads the tally with the same read_tally as `tally --json` (one read per
meeting and version, shared by every stream of the meeting), and writes it as ``event: tally``,
``id: <as_of_position>-<generation>``. A client resumes with Last-Event-ID: the tally it already holds
(that position, and no rebuild since: the projection's generation, 004_rebuild_generation.sql) is not
sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.adapters.postgres import api_tokens, tally_store
from services.adapters.postgres.connect import READER_ROLE, UNREACHABLE, connect_as
from services.api.auth import Caller, ops
from services.api.conditional import POSITION_HEADER
from services.api.listener import ProjectedFeed, Version
from services.observability import metrics
from services.read.errors import MeetingNotProjected
from services.read.register import RegisterCache
from services.read.tallies import read_tally

log = logging.getLogger("vote_ledger.api.stream")

RETRY_MS = 2000  # told to the client: how long to wait before reconnecting after the stream drops
COALESCE_S = 0.25  # at most one push per stream this often, always the latest tally
# A comment line at least this often keeps proxies from closing an idle stream. Under FastAPI's own
# 15 s ping (`: ping` after 15 s without an item), so the stream says one thing, not both.
KEEPALIVE_S = 14.0
# A revoked or expired token's streams end within this (the issue allows 30 s); one primary-key
# lookup per stream per period.
RECHECK_S = 10.0


class TallyRead(tuple[dict[str, Any], str]):
    """A shared read, (the tally, its JSON text), with the rebuild generation read just before it.

    A tuple still (callers unpack the pair); the generation is the event id's second part. Read before
    the tally, it is never newer than the rows read: at worst a client is sent a tally it had again.
    """

    generation: int = 0


class SharedReads:
    """One tally read per meeting at a time, shared by every stream that wants it; the newest kept per meeting.

    A read is labelled with the feed's version when it starts (it sees at least every checkpoint announced
    by then), and a stream wanting a later version waits for the read in flight before starting the next:
    at 100,000 positions a tally read costs over a second (the bench's API part), and overlapping reads of
    one meeting would only add load.
    """

    def __init__(self, pool: asyncpg.Pool, feed: ProjectedFeed, registers: RegisterCache | None = None) -> None:
        self._pool = pool
        self._feed = feed
        # The meetings' decoded registers, kept across reads (services.read.register.RegisterCache): at
        # 100,000 positions a read without it cost ~1 s here, with it a few ms.
        self.registers = registers if registers is not None else RegisterCache()
        self.reads = 0  # reads done (not shared): a test counts them
        self._reads: dict[str, tuple[Version, asyncio.Task[TallyRead]]] = {}
        # The plain GET's answers: per meeting, the latest tally read exactly at a (checkpoint, generation).
        self._at: dict[str, tuple[tuple[int, object], tuple[dict[str, Any], str]]] = {}

    async def at(self, meeting_id: str, checkpoint: int, generation: object) -> tuple[dict[str, Any], str]:
        """The tally at ``checkpoint`` (a later one if the projector moved meanwhile), read once per checkpoint.

        The same single read per meeting as the streams'; every poller of one checkpoint shares one answer.
        """
        held = self._at.get(meeting_id)
        if held is not None and held[0] == (checkpoint, generation):
            return held[1]
        latest = self._reads.get(meeting_id)
        if latest is not None and latest[1].done() and not latest[1].cancelled() and not latest[1].exception():
            read = latest[1].result()  # a stream's read of this very checkpoint serves the poller too
            if read[0]["as_of_position"] == checkpoint and (read.generation,) == generation:
                self._at[meeting_id] = ((checkpoint, generation), read)
                return read
        read = await self.tally(meeting_id, self._feed.version, fresh=True)
        if read[0]["as_of_position"] == checkpoint:
            # Kept under the (checkpoint, generation) read before it: a rebuild in between moves the
            # generation, so later requests miss rather than getting rows from before it.
            self._at[meeting_id] = ((checkpoint, generation), read)
        return read

    async def tally(self, meeting_id: str, version: Version, fresh: bool = False) -> TallyRead:
        """The meeting's tally read at ``version`` or later (``fresh``: read now), with its JSON text (encoded once)."""
        while True:
            held = self._reads.get(meeting_id)
            if held is not None:
                label, read = held
                if not read.done():
                    if label >= version:
                        # shield: a stream whose client leaves mid-read must not cancel the read others await.
                        return await asyncio.shield(read)
                    await asyncio.wait({read})  # an older read in flight: the next one starts when it ends
                    continue
                if label >= version and not fresh:
                    return read.result()
            task = asyncio.create_task(self._read(meeting_id), name=f"tally read {meeting_id}")
            task.add_done_callback(lambda done: self._settled(meeting_id, done))
            self._reads[meeting_id] = (self._feed.version, task)
            return await asyncio.shield(task)

    async def _read(self, meeting_id: str) -> TallyRead:
        self.reads += 1
        async with self._pool.acquire() as conn:
            generation = await tally_store.generation(conn, tally_store.PROJECTION)
            tally = await read_tally(conn, meeting_id, self.registers)
        read = TallyRead((tally, json.dumps(tally)))
        read.generation = generation
        return read

    def _settled(self, meeting_id: str, task: asyncio.Task[TallyRead]) -> None:
        # A failed read is not kept (the next stream tries again); retrieving its exception here keeps
        # asyncio from logging "never retrieved" when every stream that awaited it has gone.
        if task.cancelled() or task.exception() is not None:
            held = self._reads.get(meeting_id)
            if held is not None and held[1] is task:
                del self._reads[meeting_id]


@asynccontextmanager
async def live_updates(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves: the listening connection (reader login) and the shared reads, in app.state."""
    settings = app.state.settings
    feed = app.state.feed = ProjectedFeed(lambda: connect_as(settings, READER_ROLE))
    app.state.tally_reads = SharedReads(app.state.pool, feed)
    task = asyncio.create_task(feed.run(), name="tally listener")
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


@dataclass(frozen=True)
class _Opening:
    """What a stream starts from: who asked, and the tally at the version current when it opened."""

    caller: Caller
    version: Version
    tally: dict[str, Any]
    text: str
    generation: int


async def _open(
    request: Request, response: Response, meeting_id: str, caller: Annotated[Caller, Depends(ops)]
) -> _Opening:
    """Read the tally before any byte is streamed: an unknown meeting is a 404, a failed one a 409."""
    feed: ProjectedFeed = request.app.state.feed
    version = feed.version
    # Without the listener, the version cannot tell that a read kept from earlier is out of date.
    read: TallyRead = await request.app.state.tally_reads.tally(meeting_id, version, fresh=not feed.connected)
    tally, text = read
    response.headers[POSITION_HEADER] = str(tally["as_of_position"])
    return _Opening(caller, version, tally, text, read.generation)


router = APIRouter(tags=["live"])


@router.get(
    "/v1/meetings/{meeting_id}/tally/stream",
    response_class=EventSourceResponse,
    summary="The tally as server-sent events, pushed within a second of each projector commit",
    responses={
        404: {"description": "unknown_meeting"},
        409: {"description": "meeting_not_projected: the projector isolated this meeting"},
    },
)
async def tally_stream(
    request: Request,
    meeting_id: str,
    opening: Annotated[_Opening, Depends(_open)],
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="`<position>-<generation>`, the `id` of the client's last event (a plain position, too)",
        ),
    ] = None,
    last_event_id: Annotated[str | None, Query(description="Last-Event-ID for clients that cannot set headers")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """`event: tally`, `id: <as_of_position>-<generation>`, data exactly `tally --json`; `event: error` ends it.

    The generation counts `projections rebuild`s, which replace rows without moving the checkpoint: a client
    holding the position from before a rebuild is sent the rebuilt tally. `event: error` carries {error, code}.
    """
    held = _held(last_event_id_header if last_event_id_header is not None else last_event_id)
    metrics.SSE_CLIENTS.inc()
    try:
        # aclosing: a client that leaves closes this generator, and with it the inner one (no task lingers).
        async with aclosing(_events(request.app, meeting_id, opening, held)) as events:
            async for event in events:
                yield event
    finally:
        metrics.SSE_CLIENTS.dec()


def _held(text: str | None) -> tuple[int, int | None] | None:
    """A Last-Event-ID as (position, generation); a plain position (clients of before) has generation None.

    Anything else (absent, or not ours) is None: the client is sent the current tally.
    """
    if text is None:
        return None
    position, _, generation = text.partition("-")
    try:
        return int(position), (int(generation) if generation else None)
    except ValueError:
        return None


def _holds(held: tuple[int, int | None] | None, position: int, generation: int) -> bool:
    """Whether a client's Last-Event-ID names the tally at (position, generation): then it is not sent again.

    A plain position says nothing of rebuilds: it holds only while the projection was never rebuilt
    (generations only grow, so generation 0 now means 0 when the client read it).
    """
    if held is None or held[0] != position:
        return False
    return held[1] == generation if held[1] is not None else generation == 0


def event_id(position: int, generation: int) -> str:
    """The tally event's id: ``<position>-<generation>`` (what Last-Event-ID sends back)."""
    return f"{position}-{generation}"


def _tally_event(text: str, position: int, generation: int, retry: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(event="tally", id=event_id(position, generation), raw_data=text, retry=retry)


def _error_event(code: str, message: str) -> ServerSentEvent:
    return ServerSentEvent(event="error", raw_data=json.dumps({"error": message, "code": code}))


async def _events(
    app: FastAPI, meeting_id: str, opening: _Opening, held: tuple[int, int | None] | None
) -> AsyncGenerator[ServerSentEvent, None]:
    """The stream's events: the opening tally unless the client holds it, then each new one, coalesced."""
    feed: ProjectedFeed = app.state.feed
    reads: SharedReads = app.state.tally_reads
    sent, sent_text, version = opening.tally["as_of_position"], opening.text, opening.version
    if _holds(held, sent, opening.generation):
        yield ServerSentEvent(comment=f"resumed at {event_id(sent, opening.generation)}", retry=RETRY_MS)
    else:
        yield _tally_event(opening.text, sent, opening.generation, retry=RETRY_MS)
    pushed = written = checked = time.monotonic()
    while not feed.closing:  # the server is stopping: the stream ends, the client reconnects with Last-Event-ID
        now = time.monotonic()
        if now >= checked + RECHECK_S:  # also under a steady flow of pushes
            problem = await _token_problem(app, opening.caller)
            if problem:
                yield _error_event(*problem)
                return
            checked = now
        if now >= written + KEEPALIVE_S:
            yield ServerSentEvent(comment="keep-alive")
            written = now
        wait = min(written + KEEPALIVE_S, checked + RECHECK_S) - time.monotonic()
        if await feed.wait_moved(version, wait) == version or feed.closing:
            continue
        heard_at = feed.heard_at  # the announcement that woke the stream: the latency counts the coalescing too
        if (delay := pushed + COALESCE_S - time.monotonic()) > 0:
            await asyncio.sleep(delay)  # announcements meanwhile are folded into one read of the latest
        version = feed.version
        try:
            read = await reads.tally(meeting_id, version)
        except MeetingNotProjected as exc:
            yield _error_event("meeting_not_projected", str(exc))
            return
        except (*UNREACHABLE, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            log.warning("tally stream of %s ends: database unavailable (%s)", meeting_id, type(exc).__name__)
            yield _error_event("database_unavailable", "the database is not available; reconnect shortly")
            return
        (tally, text), generation = read, read.generation
        position = tally["as_of_position"]
        # A version can move without changing this meeting's tally (a reconnection, a rebuild of another
        # meeting): the client is told only of a new position or of new numbers.
        if position == sent and text == sent_text:
            continue
        yield _tally_event(text, position, generation)
        metrics.SSE_PUSH_SECONDS.observe(time.monotonic() - heard_at)
        sent, sent_text = position, text
        pushed = written = time.monotonic()


async def _token_problem(app: FastAPI, caller: Caller) -> tuple[str, str] | None:
    """(code, message) when the stream's token is no longer in force (or cannot be checked); None when it is."""
    try:
        async with app.state.pool.acquire() as conn:
            row = await api_tokens.lookup(conn, caller.token_id)
    except (*UNREACHABLE, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        # Unverified, a token must not keep streaming: the client reconnects and is checked afresh.
        return "database_unavailable", "the database is not available; reconnect shortly"
    if row is None or not row["live"]:
        return "unauthenticated", f"token {caller.token_id} was revoked or has expired"
    return None

"""The tally event stream against the real pipeline: Kafka -> ledger -> log -> projector -> NOTIFY -> API -> client."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
import uvicorn

from services.adapters.kafka.topics import producer, publish
from services.adapters.postgres import api_tokens, tally_store
from services.adapters.postgres.connect import READER_ROLE
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL, PROJECTION
from services.api import stream
from services.api.app import create_app
from services.api.listener import APPLICATION_NAME
from services.observability import metrics
from services.read.tallies import read_tally
from services.runtime.rebuild import rebuild
from tests.conftest import free_port
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import api_token, run_projector, running_ledger, running_projector, wait_for

pytestmark = pytest.mark.integration

STREAM = "/v1/meetings/{}/tally/stream"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (pytest owns them), as services/api/app.serve runs it."""

    def capture_signals(self):  # noqa: ANN201 - uvicorn's own signature
        from contextlib import nullcontext

        return nullcontext()


@asynccontextmanager
async def serving(settings):
    """The API app (its own reader pool and listener) served by uvicorn in this loop; yields (app, base URL)."""
    app = create_app(settings)
    port = free_port()
    # Shut down as services/api/app.serve does: streams ended first, and a bounded graceful wait (an
    # unbounded one hung this suite once, 600 s, in a clean-clone run).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=3
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        async with asyncio.timeout(10):
            while not app.state.feed.connected:
                await asyncio.sleep(0.02)
        yield app, f"http://127.0.0.1:{port}"
    finally:
        feed = getattr(app.state, "feed", None)
        if feed is not None:
            feed.close()
        server.should_exit = True
        await task


async def issue_token(settings, role: str = "ops") -> tuple[str, str]:
    """A token for these streams' client: (its text, its id)."""
    return await api_token(settings, role, name="stream test")


class Events:
    """A response's server-sent events, parsed as they arrive, each with its arrival time (monotonic)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.queue: asyncio.Queue[tuple[float, dict] | None] = asyncio.Queue()
        self.last_id: str | None = None  # the id of the last tally event read
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if not line:
                    if fields:
                        await self.queue.put((time.monotonic(), fields))
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                key = name or "comment"
                fields[key] = f"{fields[key]}\n{value}" if key in fields else value
        finally:
            await self.queue.put(None)  # the stream ended

    async def next(self, timeout: float = 10.0) -> tuple[float, dict] | None:
        """The next event or comment block with its arrival time; None once the stream has ended."""
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def tally(self, timeout: float = 10.0) -> tuple[float, int, dict]:
        """The next `tally` event (comments skipped): (arrival, its position, data); its full id in ``last_id``."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self.queue.get()
                assert item is not None, "the stream ended"
                at, fields = item
                if fields.get("event") == "tally":
                    self.last_id = fields["id"]  # `<position>-<generation>`
                    return at, int(fields["id"].partition("-")[0]), json.loads(fields["data"])
                assert "event" not in fields, fields

    async def tally_at(self, position: int, timeout: float = 10.0) -> tuple[float, dict]:
        """The first tally event whose id is at least ``position``."""
        deadline = time.monotonic() + timeout
        while True:
            at, got, data = await self.tally(deadline - time.monotonic())
            if got >= position:
                return at, data


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, base: str, meeting: str, token: str, query: str = "", **headers: str):
    """GET the stream; yields its Events once the response's headers are in."""
    url = base + STREAM.format(meeting) + query
    async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}", **headers}) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        try:
            yield events
        finally:
            events.task.cancel()


class Commits:
    """The projector's announcements as a listener of our own hears them: position -> monotonic time."""

    def __init__(self) -> None:
        self.heard: dict[int, float] = {}

    def __call__(self, conn, pid, channel, payload) -> None:
        self.heard.setdefault(int(payload), time.monotonic())


@asynccontextmanager
async def listening(settings):
    """Our own LISTEN on the projector's channel (the superuser's connection), to time its commits."""
    conn = await asyncpg.connect(settings.pg_dsn)
    commits = Commits()
    await conn.add_listener(PROJECTED_CHANNEL, commits)
    try:
        yield commits, conn
    finally:
        await conn.close()


async def reference_tally(settings, meeting: str = "m1") -> dict:
    """The tally as `tally --json` gives it now."""
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        return await read_tally(conn, meeting)
    finally:
        await conn.close()


LOG_COUNT = "SELECT count(*) FROM ledger_log"
CHECKPOINT = "SELECT position FROM projection_checkpoints"


async def test_the_stream_pushes_each_new_tally_within_a_second_of_the_projector_commit(settings):
    token, _ = await issue_token(settings)
    async with (
        running_ledger(settings),
        producer(settings) as kafka,
        running_projector(settings),
        listening(settings) as (commits, _),
    ):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            async with open_stream(client, base, "m1", token) as events:
                _, first, data = await events.tally()
                assert first == 2 and data == await reference_tally(settings)
                assert data["quorum"]["present"] == 0
                latencies = []
                votes = [
                    cast("R-1", {"2": "for"}, executed=1),
                    cast("R-2", {"2": "against"}, executed=2),
                    cast("B-1", {"2": "for"}, executed=3, channel="broker"),
                    cast("B-2", {"2": "against"}, executed=4, channel="broker"),
                    cast("R-1", {"2": "against"}, executed=5),  # R5: the later instruction counts
                ]
                for n, vote in enumerate(votes, start=3):
                    await publish(kafka, settings, [vote])
                    arrived, data = await events.tally_at(n)
                    assert data == await reference_tally(settings)  # exactly `tally --json`, nothing after it
                    latencies.append(arrived - commits.heard[n])
                print(f"\ncommit -> client (s): {', '.join(f'{s:.3f}' for s in latencies)}")
                assert data["quorum"]["present"] == 3000 + 1000 + 2000 + 4000
                assert data["items"]["2"]["against"] == 3000 + 1000 + 4000
                assert max(latencies) < 1.0, latencies
                pushes = metrics.API.get_sample_value("vote_ledger_sse_push_seconds_count")
                assert pushes and pushes >= len(votes)  # the server observes its side: notification -> written
                server_side = metrics.API.get_sample_value("vote_ledger_sse_push_seconds_sum") / pushes
                print(f"notification -> event written, server side (mean s): {server_side:.3f}")


async def test_a_burst_of_commits_is_coalesced_to_one_push_per_250_ms_ending_on_the_latest_tally(settings):
    token, _ = await issue_token(settings)
    async with (
        running_ledger(settings),
        producer(settings) as kafka,
        running_projector(settings),
        listening(settings) as (commits, _),
    ):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            async with open_stream(client, base, "m1", token) as events:
                await events.tally()
                numbers = ("R-1", "R-2", "B-1", "B-2")
                for chunk in range(12):  # a dozen commits or so, 40 ms apart: faster than 4 pushes a second
                    votes = [
                        cast(n, {"2": ("for", "against")[(chunk + i) % 2]}, executed=1 + chunk + i / 10)
                        for i, n in enumerate(numbers)
                    ]
                    await publish(kafka, settings, votes)
                    await asyncio.sleep(0.04)
                last = 2 + 12 * len(numbers)
                await wait_for(settings.pg_dsn, CHECKPOINT, last)
                pushed = []
                while not pushed or pushed[-1][1] < last:
                    pushed.append(await events.tally())
                gaps = [b[0] - a[0] for a, b in zip(pushed, pushed[1:], strict=False)]
                # Each commit's wait: until the first push at or after its position reached the client.
                late = [
                    next(at for at, position, _ in pushed if position >= committed) - heard
                    for committed, heard in sorted(commits.heard.items())
                    if committed > 2
                ]
                spacing, latency = (", ".join(f"{s:.3f}" for s in values) for values in (gaps, late))
                print(f"\n{len(late)} commits, {len(pushed)} pushes {spacing} s apart; commit -> client (s): {latency}")
                assert len(pushed) < len(late)  # coalesced
                assert min(gaps, default=1.0) > 0.2  # 250 ms apart as written, give or take the network's jitter
                assert max(late) < 1.0
                assert pushed[-1][2] == await reference_tally(settings)


async def test_a_resumed_stream_skips_the_position_the_client_holds_and_sends_one_it_has_not_seen(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka, running_projector(settings):
        await publish(kafka, settings, [small_meeting(), register_event(), cast("R-1", {"2": "for"})])
        await wait_for(settings.pg_dsn, CHECKPOINT, 3)
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            # The client holds 3, the current position: nothing is sent until the tally moves.
            async with open_stream(client, base, "m1", token, **{"Last-Event-ID": "3"}) as held:
                _, opening = await held.next()
                # A plain position (a client of before the generation was in the id) holds: never rebuilt.
                assert opening == {"comment": "resumed at 3-0", "retry": "2000"}
                # The query parameter, for clients that cannot set headers, names an older position.
                async with open_stream(client, base, "m1", token, "?last_event_id=2") as behind:
                    _, position, data = await behind.tally()
                    assert position == 3 and data["items"]["2"]["for"] == 3000
                    await publish(kafka, settings, [cast("R-2", {"2": "for"})])
                    _, position, data = await held.tally()
                    assert position == 4 and data["items"]["2"]["for"] == 3000 + 1000
                    _, position, _ = await behind.tally()
                    assert position == 4


async def test_streams_of_one_meeting_share_one_read_per_commit(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka, running_projector(settings):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (app, base), httpx.AsyncClient(timeout=None) as client:
            async with (
                open_stream(client, base, "m1", token) as one,
                open_stream(client, base, "m1", token) as two,
                open_stream(client, base, "m1", token) as three,
            ):
                for events in (one, two, three):
                    await events.tally()
                reads = app.state.tally_reads.reads
                await publish(kafka, settings, [cast("R-1", {"2": "for"})])
                for events in (one, two, three):
                    _, position, _ = await events.tally()
                    assert position == 3
                assert app.state.tally_reads.reads == reads + 1


async def test_the_stream_survives_the_loss_of_the_listening_connection_and_rereads_what_it_missed(settings):
    token, _ = await issue_token(settings)
    async with (
        running_ledger(settings),
        producer(settings) as kafka,
        running_projector(settings),
        listening(settings) as (commits, admin),
    ):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (app, base), httpx.AsyncClient(timeout=None) as client:
            feed = app.state.feed
            async with open_stream(client, base, "m1", token) as events:
                await events.tally()
                # Killed: the feed reconnects at once and the next commit still reaches the client in time.
                killed = await admin.fetchval(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    APPLICATION_NAME,
                )
                assert killed
                async with asyncio.timeout(10):
                    while feed.connects < 2 or not feed.connected:
                        await asyncio.sleep(0.02)
                await publish(kafka, settings, [cast("R-1", {"2": "for"})])
                arrived, data = await events.tally_at(3)
                assert data["items"]["2"]["for"] == 3000
                after_reconnect = arrived - commits.heard[3]
                print(f"\ncommit -> client after a reconnection: {after_reconnect:.3f} s")
                assert after_reconnect < 1.0

                # Killed while no new session may open: the commit meanwhile is announced to nobody
                # (the stream stays silent: it does not poll), and re-read when the listener is back.
                database = await admin.fetchval("SELECT current_database()")
                await admin.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM {READER_ROLE}')
                try:
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = $1 AND datname = current_database()",
                        APPLICATION_NAME,
                    )
                    async with asyncio.timeout(10):
                        while feed.connected:
                            await asyncio.sleep(0.02)
                    await publish(kafka, settings, [cast("R-2", {"2": "for"})])
                    await wait_for(settings.pg_dsn, CHECKPOINT, 4)
                    await asyncio.sleep(1.0)
                    assert not feed.connected
                    assert events.queue.empty(), "an event came while nothing listened"
                finally:
                    await admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {READER_ROLE}')
                _, position, data = await events.tally(timeout=15)  # the back-off is capped at 5 s
                assert position == 4 and data["items"]["2"]["for"] == 3000 + 1000


async def test_a_revoked_tokens_stream_ends_within_the_recheck_period(settings):
    token, token_id = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka, running_projector(settings):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            async with open_stream(client, base, "m1", token) as events:
                await events.tally()
                conn = await asyncpg.connect(settings.pg_dsn)
                try:
                    await api_tokens.revoke(conn, token_id)
                finally:
                    await conn.close()
                revoked = time.monotonic()
                _, fields = await events.next(timeout=stream.RECHECK_S + 5)
                assert fields["event"] == "error"
                assert json.loads(fields["data"])["code"] == "unauthenticated"
                assert await events.next() is None  # and the stream ends
                assert time.monotonic() - revoked <= stream.RECHECK_S + 2
            response = await client.get(base + STREAM.format("m1"), headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401


async def test_unknown_and_failed_meetings_are_refused_before_streaming_and_a_failure_ends_an_open_stream(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka, running_projector(settings):
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, CHECKPOINT, 2)
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            auth = {"Authorization": f"Bearer {token}"}
            response = await client.get(base + STREAM.format("nope"), headers=auth)
            assert response.status_code == 404 and response.json()["code"] == "unknown_meeting"
            response = await client.get(base + STREAM.format("m1"))
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            async with open_stream(client, base, "m1", token) as events:
                await events.tally()
                # What the projector writes when it gives up on a meeting, announced like its commits.
                conn = await asyncpg.connect(settings.pg_dsn)
                try:
                    async with conn.transaction():
                        await tally_store.record_failure(conn, PROJECTION, "m1", 3, "test: refold disagrees")
                        await tally_store.notify_projected(conn, 2)
                finally:
                    await conn.close()
                _, fields = await events.next()
                assert fields["event"] == "error"
                assert json.loads(fields["data"])["code"] == "meeting_not_projected"
                assert await events.next() is None
            response = await client.get(base + STREAM.format("m1"), headers=auth)
            assert response.status_code == 409 and response.json()["code"] == "meeting_not_projected"


def open_streams() -> float:
    """The API's vote_ledger_sse_clients gauge."""
    return metrics.API.get_sample_value("vote_ledger_sse_clients")


async def test_clients_that_leave_free_their_streams_and_tasks(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka:
        await publish(kafka, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, LOG_COUNT, 2)
    await run_projector(settings, 2)
    # Nothing else runs in this loop now (no ledger, no projector): every task is the API's or ours.
    async with serving(settings) as (_, base):
        await asyncio.sleep(0.2)
        before = set(asyncio.all_tasks())
        clients = open_streams()
        for _ in range(3):
            async with httpx.AsyncClient(timeout=None) as client:
                async with open_stream(client, base, "m1", token) as one, open_stream(client, base, "m1", token):
                    await one.tally()
                    assert open_streams() == clients + 2
        deadline = time.monotonic() + 5
        while (
            (left := set(asyncio.all_tasks()) - before) or open_streams() != clients
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not left, [task.get_coro() for task in left]
        assert open_streams() == clients


async def test_a_rebuild_refreshes_open_streams_even_at_an_unchanged_position(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka:
        await publish(kafka, settings, [small_meeting(), register_event(), cast("R-1", {"2": "for"})])
        await wait_for(settings.pg_dsn, LOG_COUNT, 3)
    await run_projector(settings, 3)
    async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
        async with open_stream(client, base, "m1", token) as events:
            _, position, data = await events.tally()
            assert position == 3 and data["items"]["2"]["for"] == 3000
            # Damage the live tables as a projector bug would, and announce them: the stream shows the damage ...
            conn = await asyncpg.connect(settings.pg_dsn)
            try:
                await conn.execute(
                    "UPDATE tally_buckets SET shares = shares + 1 WHERE meeting_id = 'm1' AND item_id = '2'"
                    " AND option = 'for'"
                )
                await tally_store.notify_projected(conn, 3)
                _, position, data = await events.tally()
                assert position == 3 and data["items"]["2"]["for"] == 3001
                # ... and the rebuild that repairs them, at the same checkpoint, reaches the stream too.
                await rebuild(conn, "m1")
            finally:
                await conn.close()
            _, position, data = await events.tally()
            assert position == 3 and data == await reference_tally(settings)
            assert data["items"]["2"]["for"] == 3000


async def test_a_client_holding_the_position_from_before_a_rebuild_is_sent_the_rebuilt_tally_on_reconnecting(settings):
    token, _ = await issue_token(settings)
    async with running_ledger(settings), producer(settings) as kafka:
        await publish(kafka, settings, [small_meeting(), register_event(), cast("R-1", {"2": "for"})])
        await wait_for(settings.pg_dsn, LOG_COUNT, 3)
    await run_projector(settings, 3)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        # Tables damaged as a projector bug would: the client is shown the damage, then goes away ...
        await conn.execute(
            "UPDATE tally_buckets SET shares = shares + 1 WHERE meeting_id = 'm1' AND item_id = '2' AND option = 'for'"
        )
        async with serving(settings) as (_, base), httpx.AsyncClient(timeout=None) as client:
            async with open_stream(client, base, "m1", token) as events:
                _, position, data = await events.tally()
            assert (position, events.last_id, data["items"]["2"]["for"]) == (3, "3-0", 3001)
            # ... and a rebuild repairs them at the same checkpoint: reconnecting with the id it holds (or a
            # plain position, from a client of before), it is sent the rebuilt tally, not "resumed".
            await rebuild(conn, "m1")
            for held in (events.last_id, "3"):
                async with open_stream(client, base, "m1", token, **{"Last-Event-ID": held}) as again:
                    _, position, data = await again.tally()
                    assert (position, again.last_id) == (3, "3-1"), held
                    assert data == await reference_tally(settings) and data["items"]["2"]["for"] == 3000
            async with open_stream(client, base, "m1", token, **{"Last-Event-ID": "3-1"}) as current:
                _, opening = await current.next()
                assert opening == {"comment": "resumed at 3-1", "retry": "2000"}
    finally:
        await conn.close()

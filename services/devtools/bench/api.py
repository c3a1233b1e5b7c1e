"""The HTTP API under load: tally requests per second, and projector commit -> event-stream client latency.

The API runs as its own process (`services run api`, as deployed) next to the ledger and the projector;
the clients run in the benchmark's process, so the requests per second are bounded by that client too
(httpx, one event loop): the figure is what one such client gets, not the server's ceiling.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.adapters.postgres import api_tokens
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL
from services.api.auth import new_token
from services.devtools.bench.e2e import _alive, _checkpoint, _consumed, _ms, _offer
from services.devtools.bench.processes import Sampler, machine_processes, running
from services.devtools.bench.scratch import publish_workload
from services.devtools.bench.workload import Workload
from services.settings import Settings

CLIENTS = 8  # concurrent requests in flight: a few dashboards and pollers at once


async def measure(
    settings: Settings,
    workload: Workload,
    log_dir: Path,
    rate: int,
    seconds: float,
    request_seconds: float = 10.0,
) -> dict[str, Any]:
    """Ingest at ``rate`` with an event stream open (what the dashboard holds), then load the tally route.

    Each commit is stamped by our own LISTEN on the projector's channel; each event by its arrival at the
    stream's client; an event's latency is its arrival less the commit of the same position (its id).
    """
    count = min(len(workload.submission_payloads), int(rate * seconds))
    await publish_workload(settings, workload.admin_payloads, [])
    token = await _issue_token(settings)
    base = f"http://{settings.api_host}:{settings.api_port}"
    meeting = workload.meeting_id
    conn = await asyncpg.connect(settings.pg_dsn)
    listener = await asyncpg.connect(settings.pg_dsn)
    commits: dict[int, float] = {}
    arrivals: dict[int, float] = {}
    try:
        # LISTEN before anything is projected: no commit of the run goes unstamped.
        await listener.add_listener(
            PROJECTED_CHANNEL, lambda _c, _pid, _ch, payload: commits.setdefault(int(payload), time.perf_counter())
        )
        with running(settings, "ledger", "projector", "api", log_dir=log_dir) as procs:
            while await _checkpoint(conn) < len(workload.admin_payloads):  # meeting loaded and projected
                _alive(procs)
                await asyncio.sleep(0.05)
            limits = httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
                await _wait_ready(client, procs)
                first = asyncio.Event()
                stream = asyncio.create_task(_follow(client, f"/v1/meetings/{meeting}/tally/stream", arrivals, first))
                try:
                    opening = asyncio.create_task(first.wait())  # the stream's first event: it is open
                    await asyncio.wait({opening, stream}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
                    opening.cancel()
                    if stream.done():
                        stream.result()  # the stream failed (e.g. 401): say why, not a timeout
                        raise RuntimeError("the event stream ended before its first event")
                    if not first.is_set():
                        raise RuntimeError("the event stream sent no tally event within 30 s (see api.log)")
                    opened = max(arrivals)  # the state when the dashboard opened: no commit of this run
                    started = len(commits)
                    offered = await _offer(settings, workload.submission_payloads[:count], rate, {}, procs)
                    head = await _settled(conn, settings, len(workload.admin_payloads) + count, procs)
                    deadline = time.perf_counter() + 10
                    while head not in arrivals and time.perf_counter() < deadline:
                        await asyncio.sleep(0.01)  # the last commit's event, at most a coalescing window later
                finally:
                    stream.cancel()
                    await asyncio.gather(stream, return_exceptions=True)
                tally = f"/v1/meetings/{meeting}/tally"
                plain = await _load(client, tally, request_seconds, procs)
                conditional = await _load(client, tally, request_seconds, procs, conditional=True)
                _alive(procs)
    finally:
        await listener.close()
        await conn.close()
    delays = sorted(arrivals[p] - commits[p] for p in arrivals if p > opened and p in commits)
    return {
        "offered_per_s": rate,
        "submissions": count,
        "achieved_offer_per_s": round(count / offered),
        "stream": {
            "commits": len(commits) - started,
            "events": len([p for p in arrivals if p > opened]),
            "matched": len(delays),
            "p50_ms": _ms(delays, 0.50) if delays else None,
            "p99_ms": _ms(delays, 0.99) if delays else None,
            "max_ms": round(delays[-1] * 1000, 1) if delays else None,
            "last_position": head,
            "last_position_delivered": head in arrivals,
        },
        "tally": plain,
        "tally_not_modified": conditional,
        "clients": CLIENTS,
    }


async def _issue_token(settings: Settings) -> str:
    """An ops token in the scratch database (the owner's login, as `vote-ledger api token issue` does)."""
    text, token_id, digest = new_token()
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await api_tokens.issue(conn, token_id, "bench", "ops", digest, None)
    finally:
        await conn.close()
    return text


async def _wait_ready(client: httpx.AsyncClient, procs, timeout: float = 60.0) -> None:
    """Until the API answers /healthz (the process is up and listening)."""
    deadline = time.perf_counter() + timeout
    while True:
        _alive(procs)
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the API did not answer /healthz within {timeout:.0f} s (see api.log)")
        await asyncio.sleep(0.1)


async def _settled(conn: asyncpg.Connection, settings: Settings, messages: int, procs, timeout: float = 120.0) -> int:
    """Wait until the ledger has logged every message and the projector's checkpoint reaches the head; return it."""
    deadline = time.perf_counter() + timeout
    while True:
        _alive(procs)
        head = await log_reads.head(conn)
        if await _consumed(conn, settings) >= messages and await _checkpoint(conn) >= head:
            return head
        if time.perf_counter() > deadline:
            raise RuntimeError("the projector did not catch up with the log during the API benchmark")
        await asyncio.sleep(0.02)


async def _follow(client: httpx.AsyncClient, path: str, arrivals: dict[int, float], first: asyncio.Event) -> None:
    """Read the event stream as the dashboard does; stamp each tally event's id when its blank line arrives."""
    async with client.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=None) as response:
        response.raise_for_status()
        event, event_id = "message", None
        async for line in response.aiter_lines():
            if line == "":  # the end of one event (text/event-stream)
                if event == "tally" and event_id is not None:
                    arrivals.setdefault(int(event_id), time.perf_counter())
                    first.set()
                event, event_id = "message", None
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()


async def _load(
    client: httpx.AsyncClient, path: str, seconds: float, procs, conditional: bool = False
) -> dict[str, Any]:
    """CLIENTS loops requesting ``path`` for ``seconds``: requests/s, latency, statuses, CPU per request.

    ``conditional``: each request carries the ETag of the first answer in If-None-Match (a poller while
    nothing changes: the API answers 304 from one position read, without computing the tally). The CPU
    per request, by process, says whether the API, PostgreSQL or the clients themselves set the pace.
    """
    first = await client.get(path)
    first.raise_for_status()
    headers = {"If-None-Match": first.headers["ETag"]} if conditional else {}
    took: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            response = await client.get(path, headers=headers)
            took.append(time.perf_counter() - sent)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    sampler = Sampler(machine_processes(procs))
    sampler.start()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop() for _ in range(CLIENTS)))
    finally:
        usage = await sampler.stop()
    elapsed = time.perf_counter() - started
    took.sort()
    return {
        "requests": len(took),
        "requests_per_s": round(len(took) / elapsed),
        "p50_ms": _ms(took, 0.50),
        "p99_ms": _ms(took, 0.99),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "body_bytes": len(first.content),
        "cpu_ms_per_request": {
            ("bench (clients)" if k.startswith("bench") else k): round(v / max(1, len(took)) * 1000, 2)
            for k, v in usage.cpu_seconds.items()
        },
    }

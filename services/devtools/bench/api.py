"""The HTTP API under load: tally requests per second, and projector commit -> event-stream client latency.

The API runs as its own process (`services run api`, as deployed) next to the ledger and the projector;
the clients run in the benchmark's process, so the requests per second are bounded by that client too
(httpx, one event loop): the figure is what one such client gets, not the server's ceiling.

During the ingest the client is the dashboard (services/api/static/app.js): the event stream open and the
page's panels polled as the page polls them (timeline and status at most every 3 s on a pushed tally and
every 15 s regardless, campaign and call list at most every 30 s, each with If-None-Match), so the
stream's latency is measured with the reads an open dashboard adds. The intervals are read from app.js.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.adapters.postgres import api_tokens
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL
from services.api.auth import new_token
from services.api.routes.dashboard import STATIC_DIR
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
    """Ingest at ``rate`` with the dashboard open (its event stream and its panels' polls), then load the tally route.

    Each commit is stamped by our own LISTEN on the projector's channel; each event by its arrival at the
    stream's client; an event's latency is its arrival less the commit of the same position (the
    tally's as_of_position: the event's id is opaque).
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
                first, pushed = asyncio.Event(), asyncio.Event()
                stream = asyncio.create_task(
                    _follow(client, f"/v1/meetings/{meeting}/tally/stream", arrivals, first, pushed)
                )
                polls: dict[str, dict[str, Any]] = {}
                panels = asyncio.create_task(_panels(client, meeting, pushed, polls))
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
                    panels.cancel()
                    await asyncio.gather(stream, panels, return_exceptions=True)
                if panels.done() and not panels.cancelled() and panels.exception():
                    raise RuntimeError(f"the dashboard's polls failed: {panels.exception()!r}")
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
        "dashboard_polls": {path: _summary(p) for path, p in polls.items()},
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


async def _follow(
    client: httpx.AsyncClient, path: str, arrivals: dict[int, float], first: asyncio.Event, pushed: asyncio.Event
) -> None:
    """Read the event stream as the dashboard does; stamp each tally event when its blank line arrives.

    The event's position is its tally's as_of_position (the id is opaque: sent back as Last-Event-ID
    only); the page parses every tally too. ``pushed`` is set at each, as the page schedules its panels.
    """
    async with client.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=None) as response:
        response.raise_for_status()
        event, data = "message", []
        async for line in response.aiter_lines():
            if line == "":  # the end of one event (text/event-stream)
                arrived = time.perf_counter()
                if event == "tally" and data:
                    arrivals.setdefault(json.loads("\n".join(data))["as_of_position"], arrived)
                    first.set()
                    pushed.set()
                elif event == "error":
                    raise RuntimeError(f"the event stream ended with an error: {' '.join(data)}")
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


def page_intervals(script: Path = STATIC_DIR / "app.js") -> dict[str, float]:
    """The dashboard's polling intervals in seconds, read from its script so the bench follows the page."""
    source = script.read_text()
    names = ("PANEL_MIN_INTERVAL_MS", "PANEL_POLL_MS", "CAMPAIGN_MIN_INTERVAL_MS")
    found = {n: re.search(rf"const {n} = (\d+);", source) for n in names}
    missing = [n for n, m in found.items() if m is None]
    if missing:
        raise RuntimeError(f"app.js no longer defines {', '.join(missing)}: update bench/api.py's dashboard")
    return {n: int(m.group(1)) / 1000 for n, m in found.items() if m is not None}


async def _panels(
    client: httpx.AsyncClient, meeting: str, pushed: asyncio.Event, polls: dict[str, dict[str, Any]]
) -> None:
    """The page's panels (app.js refreshPanels): at once, then on a pushed tally at most every
    PANEL_MIN_INTERVAL_MS and every PANEL_POLL_MS regardless; campaign and call list at most every
    CAMPAIGN_MIN_INTERVAL_MS. Each request sends the ETag of its path's last answer. As in the page, a
    refresh does not wait for the previous one's answers (a slow campaign read overlaps the next polls).
    """
    every = page_intervals()
    base = f"/v1/meetings/{meeting}"
    jobs = [
        (f"{base}/timeline", 0.0),
        ("/v1/status", 0.0),
        (f"{base}/campaign", every["CAMPAIGN_MIN_INTERVAL_MS"]),
        (f"{base}/call-list?limit=20", every["CAMPAIGN_MIN_INTERVAL_MS"]),
    ]
    etags: dict[str, str] = {}
    asked: dict[str, float] = {}
    inflight: set[asyncio.Task[None]] = set()

    async def get(path: str) -> None:
        headers = {"If-None-Match": etags[path]} if path in etags else {}
        sent = time.perf_counter()
        try:
            response = await client.get(path, headers=headers)
        except httpx.RemoteProtocolError:
            # The server closed a kept-alive connection as the request went out on it (uvicorn ends idle
            # ones after 5 s; the page polls every 15 s): a browser resends an idempotent GET on a fresh
            # connection, and so does this client, once. It cost a whole million-submission run once.
            polls.setdefault(path, {"took": [], "statuses": {}}).setdefault("resent", 0)
            polls[path]["resent"] += 1
            sent = time.perf_counter()
            response = await client.get(path, headers=headers)
        took = time.perf_counter() - sent
        if response.status_code not in (200, 304):
            raise RuntimeError(f"the dashboard's GET {path} answered {response.status_code}: {response.text[:200]}")
        if "ETag" in response.headers:
            etags[path] = response.headers["ETag"]
        p = polls.setdefault(path, {"took": [], "statuses": {}})
        p["took"].append(took)
        p["statuses"][response.status_code] = p["statuses"].get(response.status_code, 0) + 1

    last = -math.inf
    try:
        while True:
            now = time.perf_counter()
            try:  # a pushed tally, or the page's regular poll
                await asyncio.wait_for(pushed.wait(), timeout=max(0.0, last + every["PANEL_POLL_MS"] - now))
            except TimeoutError:
                pass
            pushed.clear()
            await asyncio.sleep(max(0.0, last + every["PANEL_MIN_INTERVAL_MS"] - time.perf_counter()))
            last = now = time.perf_counter()
            for path, at_most in jobs:
                if now - asked.get(path, -math.inf) >= at_most:
                    asked[path] = now
                    inflight.add(asyncio.create_task(get(path)))
            for task in [t for t in inflight if t.done()]:
                inflight.discard(task)
                task.result()  # a failed poll ends the dashboard's polls with its reason (raised after the ingest)
    finally:
        for task in inflight:
            task.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)


def _summary(poll: dict[str, Any]) -> dict[str, Any]:
    """One polled route's requests, statuses (200 / 304) and latency."""
    took = sorted(poll["took"])
    return {
        "requests": len(took),
        "statuses": {str(k): v for k, v in sorted(poll["statuses"].items())},
        "p50_ms": _ms(took, 0.50),
        "p99_ms": _ms(took, 0.99),
        "resent": poll.get("resent", 0),  # GETs resent once after the server closed their kept-alive connection
    }


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

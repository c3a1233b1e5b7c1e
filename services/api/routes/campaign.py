"""Routes: the dashboard's time series and the campaign view, forecast and call list of a meeting (ops)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from services.api.auth import ops
from services.api.conditional import Version, log_position, not_modified, projection_position, stamp
from services.api.errors import JSON_OBJECT, bad_query, documented
from services.api.heavy import compute_pool as compute_pool_of
from services.api.heavy import heavy
from services.read.campaign import call_list, read_campaign
from services.read.timeline import TooManyBuckets, read_timeline

router = APIRouter(prefix="/v1", tags=["campaign"], dependencies=[Depends(ops)])

# Each answer is a replay of the meeting's log (and, for the campaign, a 400-run Monte Carlo): ~4 s of CPU
# for 3,000 votes here, computed in threads (services/read/campaign.py). Kept per app (app.state, not
# module state: tests run many databases in one process), a few meetings' answers.
CACHE_SIZE = 32
# While the position moves (ingest), an answer is recomputed at most this often: the answer states its own
# as_of_position, so one up to this old is honest, and the dashboard asks at most every 30 s anyway.
MIN_AGE_S = 30.0
# The call list's longest answer: a day of a solicitor's calls, not the register (~0.3 MB of JSON).
CALL_LIST_MAX = 1_000


class Answers:
    """Answers by (read, its parameters): the latest, when it was computed, and the computation in flight."""

    def __init__(self) -> None:
        self.held: OrderedDict[tuple[object, ...], tuple[float, tuple[object, ...], dict[str, Any]]] = OrderedDict()
        self.running: dict[tuple[object, ...], asyncio.Task[dict[str, Any]]] = {}
        self.computed = 0  # answers computed (a test counts them)


def _answers(request: Request) -> Answers:
    state = request.app.state
    if getattr(state, "campaign_answers", None) is None:
        state.campaign_answers = Answers()
    return state.campaign_answers  # type: ignore[no-any-return]


async def _answer(
    request: Request,
    key: tuple[object, ...],
    version: Version,
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
    shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body,
) -> Response:
    """As conditional.answer, but the pool's connection is released before the (shared, long) read takes its own."""
    async with request.app.state.pool.acquire() as conn:
        position, extra = await version(conn)
    if (unchanged := not_modified(request, position, extra)) is not None:
        return unchanged
    body = shape(await _cached(request, key, position, extra, read))
    response = JSONResponse(body)
    stamp(request, response, body["as_of_position"], extra)
    return response


async def _cached(
    request: Request,
    key: tuple[object, ...],
    position: int,
    extra: tuple[object, ...],
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """The read's answer at ``position``, or the one kept if computed under MIN_AGE_S ago; one at a time."""
    answers = _answers(request)
    held = answers.held.get(key)
    if held is not None:
        at, basis, body = held
        # Same generation (a rebuild is never hidden) and the same position, or a recent enough answer.
        if basis[1:] == extra and (basis[0] == position or time.monotonic() - at < MIN_AGE_S):
            answers.held.move_to_end(key)
            return body
    task = answers.running.get(key)
    if task is None:
        task = answers.running[key] = asyncio.create_task(_compute(request, answers, key, extra, read))
        task.add_done_callback(lambda _: answers.running.pop(key, None))
    return await asyncio.shield(task)  # a client that leaves does not cancel what others wait for


async def _compute(
    request: Request,
    answers: Answers,
    key: tuple[object, ...],
    extra: tuple[object, ...],
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    async with heavy(request), request.app.state.pool.acquire() as conn:  # a replay: a few at a time (heavy.py)
        body = await read(conn)
    answers.computed += 1
    answers.held[key] = (time.monotonic(), (body["as_of_position"], *extra), body)
    answers.held.move_to_end(key)
    while len(answers.held) > CACHE_SIZE:
        answers.held.popitem(last=False)
    return body


@asynccontextmanager
async def compute_pool(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves: one worker process for the replays and forecasts (app.state.compute).

    A thread freed the event loop but not the GIL: /v1/status took over 2.8 s instead of 0.35 s while a
    campaign computed in one (issue 13, tests/integration/test_api_perf.py). One worker: at most one such
    computation at a time on the API's host; spawned (not forked from a process running an event loop and
    threads), started with the app so a first campaign does not wait for its start (~1 s here).
    """
    app.state.compute = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    app.state.compute.submit(int)  # starts the worker now, in the background
    try:
        yield
    finally:
        app.state.compute.shutdown(wait=False, cancel_futures=True)


@router.get(
    "/meetings/{meeting_id}/timeline",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 400, 401, 403, 404, 503)},
    summary="Timeline",
)
async def timeline(
    request: Request,
    meeting_id: str,
    bucket_s: Annotated[int | None, Query(ge=1, le=604_800, description="bucket width in seconds")] = None,
) -> Response:
    """Rows per time bucket and shares present at each bucket's end, log and chain heads (`report timeline --json`)."""

    try:
        return await _answer(
            request,
            ("timeline", meeting_id, bucket_s),
            log_position,
            lambda c: read_timeline(c, meeting_id, bucket_s, compute_pool_of(request)),
        )
    except TooManyBuckets as exc:
        raise bad_query("bad_bucket_s", str(exc)) from None


@router.get(
    "/meetings/{meeting_id}/campaign",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 409, 503)},
    summary="Campaign",
)
async def campaign(request: Request, meeting_id: str) -> Response:
    """Turnout by channel and by nominee, and the forecast at the polls' close (`report campaign --json`)."""
    return await _answer(
        request,
        ("campaign", meeting_id),
        projection_position,
        lambda c: read_campaign(c, meeting_id, compute_pool_of(request)),
    )


@router.get(
    "/meetings/{meeting_id}/call-list",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 409, 503)},
    summary="Call list",
)
async def call_list_route(
    request: Request,
    meeting_id: str,
    limit: Annotated[int, Query(ge=1, le=CALL_LIST_MAX, description="positions")] = 50,
) -> Response:
    """The largest positions whose holders have not instructed yet (`report call-list --json`)."""
    # One computation of the longest list per position, sliced per limit: a key per limit let 30 distinct
    # limits start 30 replays (issue 13, adversarial test).
    return await _answer(
        request,
        ("call-list", meeting_id),
        projection_position,
        lambda c: call_list(c, meeting_id, CALL_LIST_MAX, compute_pool_of(request)),
        lambda body: {**body, "limit": limit, "positions": body["positions"][:limit]},
    )

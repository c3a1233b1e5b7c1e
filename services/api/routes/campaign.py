"""Routes: the dashboard's time series and the campaign view, forecast and call list of a meeting (ops)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response

from services.api.auth import ops
from services.api.conditional import Version, answer, log_position, projection_position
from services.api.errors import JSON_OBJECT, bad_query, documented
from services.read.campaign import call_list, read_campaign
from services.read.timeline import TooManyBuckets, read_timeline

router = APIRouter(prefix="/v1", tags=["campaign"], dependencies=[Depends(ops)])

# Each answer is a replay of the meeting's log (about 1-3 s for 15,000 rows here) and a function of the
# position: dashboards polling the same position share one computation. A few meetings' answers suffice.
_CACHE: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
CACHE_SIZE = 32


async def _cached(
    conn: asyncpg.Connection,
    key: tuple[object, ...],
    version: Version,
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """The read's answer at the current position, computed once per (key, position)."""
    position, extra = await version(conn)
    hit = _CACHE.get((*key, position, *extra))
    if hit is not None:
        _CACHE.move_to_end((*key, position, *extra))
        return hit
    body = await read(conn)
    _CACHE[(*key, body["as_of_position"], *extra)] = body
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return body


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

    async def read(conn: asyncpg.Connection) -> dict[str, Any]:
        try:
            return await _cached(
                conn, ("timeline", meeting_id, bucket_s), log_position, lambda c: read_timeline(c, meeting_id, bucket_s)
            )
        except TooManyBuckets as exc:
            raise bad_query("bad_bucket_s", str(exc)) from None

    return await answer(request, log_position, read)


@router.get(
    "/meetings/{meeting_id}/campaign",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 409, 503)},
    summary="Campaign",
)
async def campaign(request: Request, meeting_id: str) -> Response:
    """Turnout by channel and by nominee, and the forecast at the polls' close (`report campaign --json`)."""
    return await answer(
        request,
        projection_position,
        lambda conn: _cached(
            conn, ("campaign", meeting_id), projection_position, lambda c: read_campaign(c, meeting_id)
        ),
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
    limit: Annotated[int, Query(ge=1, le=100_000, description="positions")] = 50,
) -> Response:
    """The largest positions whose holders have not instructed yet (`report call-list --json`)."""
    return await answer(
        request,
        projection_position,
        lambda conn: _cached(
            conn, ("call-list", meeting_id, limit), projection_position, lambda c: call_list(c, meeting_id, limit)
        ),
    )

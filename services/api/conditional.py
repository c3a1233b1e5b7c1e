"""Conditional requests on the log position: X-Log-Position, ETag, If-None-Match -> 304 before any body is read.

The ETag is ``"<position>-<16 hex>"``: the position the answer is computed at, and the first 16 hex
digits of SHA-256 over the method, path and sorted query, so two URLs never share a tag. A route
reads the position first (one cheap query: the projector's checkpoint for projection reads, the log
head for log reads) and calls ``not_modified``; a poller whose tag still holds costs that query only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from services.adapters.postgres import tally_store
from services.adapters.postgres.log import reads

POSITION_HEADER = "X-Log-Position"
# private: aggregates are not public before the polls close, so no shared cache may keep them;
# no-cache: revalidate each time (the 304 is what makes that cheap).
REVALIDATE = "private, no-cache"
# An answer pinned to a fixed past position (as_of) never changes.
IMMUTABLE = "private, max-age=31536000, immutable"
# An answer that is never conditional (status: Kafka's lag and offsets' idle times move under a fixed head).
NO_STORE = "private, no-store"


async def projection_position(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
    """The position projection reads are computed at (the tally projector's checkpoint), and the rebuild generation.

    A `projections rebuild` swaps a meeting's rows in without moving the checkpoint (004_rebuild_generation.sql):
    the generation goes into the tag so a rebuilt tally is not answered 304.
    """
    position, generation = await tally_store.checkpoint_and_generation(conn, tally_store.PROJECTION)
    return position, (generation,)


async def log_position(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
    """The position log reads are computed at: the log head."""
    return await reads.head(conn), ()


async def rejections_position(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
    """For the rejection report: the log head, and how many messages are parked (ledger_parked is not in the log).

    A message parked under a fixed head (undecodable: it is never logged) changes the report's parked count.
    """
    head, parked = await reads.head_and_parked(conn)
    return head, (parked,)


async def mixed_position(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
    """For reads of both (proxies: holders from the log, votes from the projection): the head, and the checkpoint."""
    head, _ = await log_position(conn)
    checkpoint, generation = await projection_position(conn)
    return head, (checkpoint, *generation)


def etag(request: Request, position: int, extra: tuple[object, ...] = ()) -> str:
    """The strong ETag of this request's answer at ``position`` (``extra``: what else the answer depends on)."""
    # URL-encoded, so no value can pass for a separator: `reason=a%26b%3Dc` is not `reason=a&b=c`, and a
    # decoded path holding '?' or ' ' (a meeting id may) is not a path and a query.
    query = urlencode(sorted(request.query_params.multi_items()))
    basis = f"{request.method} {quote(request.url.path, safe='/')}?{query}" + "".join(f" {e}" for e in extra)
    return f'"{position}-{hashlib.sha256(basis.encode()).hexdigest()[:16]}"'


def _matches(header: str | None, tag: str) -> bool:
    # If-None-Match holds one tag or a list; weak comparison (RFC 9110 13.1.2) ignores W/. `*` ("any
    # current representation") is not honoured: the cheap version read does not know whether the meeting
    # exists, and a 304 for an unknown meeting hides its 404. An exact tag implies the answer existed.
    if not header:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return tag in candidates


def _headers(tag: str, position: int, immutable: bool) -> dict[str, str]:
    return {POSITION_HEADER: str(position), "ETag": tag, "Cache-Control": IMMUTABLE if immutable else REVALIDATE}


def not_modified(
    request: Request, position: int, extra: tuple[object, ...] = (), *, immutable: bool = False
) -> Response | None:
    """A bodiless 304 if the client's If-None-Match holds the tag of the answer at ``position``; else None.

    Call it before computing the body, with the position read cheaply (projection_position, log_position).
    """
    tag = etag(request, position, extra)
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=_headers(tag, position, immutable))
    return None


def stamp(
    request: Request, response: Response, position: int, extra: tuple[object, ...] = (), *, immutable: bool = False
) -> None:
    """Set X-Log-Position, ETag and Cache-Control for the position the body was actually computed at.

    The body's own snapshot may be a little later than the cheap read before it (the projector moved in
    between): the headers describe the body, so a client's next If-None-Match matches what it holds.
    """
    response.headers.update(_headers(etag(request, position, extra), position, immutable))


async def fresh(request: Request, read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]]) -> Response:
    """An answer read afresh every time: X-Log-Position, no ETag (so never a 304), and not stored.

    For `status`: its Kafka ingest lag, stalled partitions and offsets' idle times change while the log
    head and checkpoint stand still, so no tag on the position could say when it changed.
    """
    async with request.app.state.pool.acquire() as conn:
        body = await read(conn)
    return JSONResponse(body, headers={POSITION_HEADER: str(body["as_of_position"]), "Cache-Control": NO_STORE})


Version = Callable[[asyncpg.Connection], Awaitable[tuple[int, tuple[object, ...]]]]


async def answer(
    request: Request,
    version: Version,
    read: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
    render: Callable[[dict[str, Any]], Response] | None = None,
    *,
    immutable: bool | Callable[[], bool] = False,
) -> Response:
    """The one way a route answers: the cheap position read, a 304 if the client's tag holds, else the read, stamped.

    ``read`` is the read function the CLI calls; its dict's as_of_position is the position the headers give.
    ``render`` turns it into another media type (CSV, Markdown); by default it is sent as JSON.
    ``immutable``: the answer can never change (a fixed past position); a function is asked after ``version``.
    """
    async with request.app.state.pool.acquire() as conn:
        position, extra = await version(conn)
        fixed = immutable() if callable(immutable) else immutable
        if (unchanged := not_modified(request, position, extra, immutable=fixed)) is not None:
            return unchanged
        body = await read(conn)
    response = render(body) if render is not None else JSONResponse(body)
    stamp(request, response, body["as_of_position"], extra, immutable=fixed)
    return response

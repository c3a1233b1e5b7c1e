"""Routes: a meeting's tally now or as of a past point (JSON exactly as `tally --json`, or CSV), and diffs (ops)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.adapters.postgres.log import reads as log_reads
from services.api.auth import ops
from services.api.conditional import answer, not_modified, projection_position, stamp
from services.api.errors import JSON_OBJECT, ApiError, bad_query, documented
from services.api.heavy import compute_pool, heavy
from services.read.errors import UnknownMeeting
from services.read.renderings import tally_csv
from services.read.tallies import read_tally
from services.read.time_travel import AsOf, parse_as_of, resolve, tally_as_of, tally_diff

router = APIRouter(prefix="/v1", tags=["tallies"], dependencies=[Depends(ops)])

_AS_OF = "a log position (a plain integer) or an RFC 3339 time with offset (the log's recorded_at), as `tally --as-of`"
_CSV = {"text/csv": {"schema": {"type": "string"}}}


def as_of_query(text: str, code: str, name: str) -> AsOf:
    """A position or time from a query parameter, else 400 with ``code`` (the parser the CLI uses)."""
    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise bad_query(code, f"{name}: {exc}") from None


async def _at(conn: asyncpg.Connection, meeting_id: str, read: Any, *points: AsOf) -> dict[str, Any]:
    """``read``'s answer; a meeting logged only after the points asked for is a 404 saying where it starts."""
    try:
        return await read(conn)
    except UnknownMeeting:
        first = await log_reads.scheduled_position(conn, meeting_id)
        if first is None:
            raise
        at = max([await resolve(conn, point) for point in points])
        raise ApiError(
            404,
            "unknown_meeting",
            f"no meeting {meeting_id!r} in the log at position {at:,} (it was first logged at position {first:,})",
        ) from None


def _csv(report: dict[str, Any]) -> Response:
    return Response(tally_csv(report) + "\n", media_type="text/csv; charset=utf-8")


@router.get(
    "/meetings/{meeting_id}/tally",
    response_model=None,
    responses={
        200: {
            "description": "The tally JSON of docs/wire-contract.md, or CSV",
            "content": {**JSON_OBJECT[200]["content"], **_CSV},
        },
        **documented(304, 400, 401, 403, 404, 409, 503),
    },
    summary="Tally",
)
async def tally(
    request: Request,
    meeting_id: str,
    as_of: Annotated[str | None, Query(description=_AS_OF)] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv, one row per item")] = "json",
) -> Response:
    """Quorum and per-item totals with R17 and outcomes applied (`tally --json`), now or as of a past point."""
    render = _csv if format == "csv" else None
    if as_of is None:
        return await _current(request, meeting_id, render)
    point = as_of_query(as_of, "bad_as_of", "as_of")

    resolved: list[int] = []

    async def version(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
        resolved.append(await resolve(conn, point))
        return resolved[0], ()

    # A position at or below the head names a fixed prefix of the append-only log: that answer never changes.
    # A replay: in the worker process, a few at a time, the slot taken before a pool connection (heavy.py).
    async with heavy(request):
        return await answer(
            request,
            version,
            lambda conn: _at(
                conn, meeting_id, lambda c: tally_as_of(c, meeting_id, point, compute_pool(request)), point
            ),
            render,
            immutable=lambda: isinstance(point, int) and resolved == [point],
        )


async def _current(request: Request, meeting_id: str, render: Any) -> Response:
    """The current tally: one read per (meeting, checkpoint) shared by every poller and stream (services/api/stream.py).

    The pool's connection is released before the shared read, which takes its own: holding one while
    waiting for another could exhaust the pool under many pollers.
    """
    reads = getattr(request.app.state, "tally_reads", None)
    if reads is None:  # an app whose lifespan did not run (a unit test's client): the read itself
        return await answer(request, projection_position, lambda conn: read_tally(conn, meeting_id), render)
    async with request.app.state.pool.acquire() as conn:
        position, extra = await projection_position(conn)
    if (unchanged := not_modified(request, position, extra)) is not None:
        return unchanged
    body, _ = await reads.at(meeting_id, position, extra)
    response = render(body) if render is not None else JSONResponse(body)
    stamp(request, response, body["as_of_position"], extra)
    return response


@router.get(
    "/meetings/{meeting_id}/tally/diff",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 400, 401, 403, 404, 503)},
    summary="Tally diff",
)
async def diff(
    request: Request,
    meeting_id: str,
    start: Annotated[str, Query(alias="from", description=_AS_OF)],
    end: Annotated[str, Query(alias="to", description=_AS_OF)],
) -> Response:
    """Per-item change from one point to another, and the control numbers and events behind it (`tally diff --json`)."""
    first, last = as_of_query(start, "bad_from", "from"), as_of_query(end, "bad_to", "to")

    resolved: list[int] = []

    async def version(conn: asyncpg.Connection) -> tuple[int, tuple[object, ...]]:
        resolved.extend([await resolve(conn, first), await resolve(conn, last)])
        return max(resolved), ()

    async with heavy(request):  # two replays: as tally?as_of=
        return await answer(
            request,
            version,
            lambda conn: _at(
                conn, meeting_id, lambda c: tally_diff(c, meeting_id, first, last, compute_pool(request)), first, last
            ),
            immutable=lambda: resolved == [first, last] and all(isinstance(p, int) for p in (first, last)),
        )

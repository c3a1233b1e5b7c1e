"""Routes: rejections, over-votes, proxies and the final report of a meeting (ops)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from projections.report import render_csv, render_markdown
from services.api.auth import ops
from services.api.conditional import answer, mixed_position, projection_position, rejections_position
from services.api.errors import JSON_OBJECT, ApiError, bad_query, documented
from services.read.proxies import read_proxies
from services.read.renderings import final_report_refusal
from services.read.reports import over_vote_report, read_final_report, rejection_report
from services.read.time_travel import parse_time

router = APIRouter(prefix="/v1", tags=["reports"], dependencies=[Depends(ops)])

INT32_MAX = 2**31 - 1  # PostgreSQL's int4: the CLI's whole_number bound


@router.get(
    "/meetings/{meeting_id}/rejections",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 400, 401, 403, 404, 503)},
    summary="Rejections",
)
async def rejections(
    request: Request,
    meeting_id: str,
    examples: Annotated[int, Query(ge=0, le=INT32_MAX, description="examples per reason code")] = 3,
) -> Response:
    """Rejected rows per reason code with their first examples, and parked messages (`report rejections --json`)."""
    return await answer(request, rejections_position, lambda conn: rejection_report(conn, meeting_id, examples))


@router.get(
    "/meetings/{meeting_id}/overvotes",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 409, 503)},
    summary="Over-votes",
)
async def overvotes(request: Request, meeting_id: str) -> Response:
    """Each nominee over its entitlement on an item, R17 (`report overvotes --json`)."""
    return await answer(request, projection_position, lambda conn: over_vote_report(conn, meeting_id))


@router.get(
    "/meetings/{meeting_id}/proxies",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 400, 401, 403, 404, 503)},
    summary="Proxies",
)
async def proxies(
    request: Request,
    meeting_id: str,
    as_of: Annotated[str | None, Query(description="RFC 3339 time with offset: substitutions executed by then")] = None,
) -> Response:
    """Who holds and votes each proxy, and the chains of substitutions, R13 (`proxies --json`)."""
    when: datetime | None = None
    if as_of is not None:
        try:
            when = parse_time(as_of)
        except ValueError as exc:
            raise bad_query("bad_as_of", f"as_of: {exc}") from None
    return await answer(request, mixed_position, lambda conn: read_proxies(conn, meeting_id, when))


_TEXT = {
    "md": ("text/markdown; charset=utf-8", render_markdown),
    "csv": ("text/csv; charset=utf-8", render_csv),
}


@router.get(
    "/meetings/{meeting_id}/report",
    response_model=None,
    responses={
        200: {
            "description": "The final report (`report final`): JSON, Markdown or CSV",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **documented(304, 400, 401, 403, 404, 409, 503),
    },
    summary="Final report",
)
async def report(
    request: Request,
    meeting_id: str,
    format: Annotated[Literal["json", "md", "csv"], Query(description="json (default), md or csv")] = "json",
    preliminary: Annotated[bool, Query(description="a report titled PRELIMINARY (json, md)")] = False,
) -> Response:
    """The final voting results after Form 8-K Item 5.07, with position and log digest (`report final`).

    As `report final`, an incomplete register is refused (409 register_incomplete) unless preliminary=true.
    """
    if preliminary and format == "csv":
        raise bad_query("bad_format", "preliminary: CSV has no title to say PRELIMINARY in; use format=md or json")

    def render(body: dict[str, Any]) -> Response:
        refusal = final_report_refusal(body)
        if refusal is not None:
            raise ApiError(
                409, "register_incomplete", f"{refusal}; ask preliminary=true for a report titled PRELIMINARY"
            )
        if format == "json":
            from fastapi.responses import JSONResponse

            return JSONResponse(body)
        media_type, text = _TEXT[format]
        return Response(text(body), media_type=media_type)

    return await answer(
        request, projection_position, lambda conn: read_final_report(conn, meeting_id, preliminary), render
    )

"""Routes: a control number's history and the log's events filtered (auditor only: individual holders' votes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from events.schema import Channel
from services.api.auth import auditor
from services.api.conditional import answer, log_position
from services.api.errors import JSON_OBJECT, bad_query, documented
from services.read.audit import read_events, read_history
from services.read.time_travel import parse_time

router = APIRouter(prefix="/v1", tags=["audit"], dependencies=[Depends(auditor)])

# At most this many rows per answer: limit=100000000 answered a meeting's every row (7 MB), built on the API's
# event loop (issue 13); an auditor pages with received_from / received_to, or uses `audit events`.
EVENTS_MAX = 10_000


@router.get(
    # :path: a control number may hold '/' (register.py's alphabet).
    "/meetings/{meeting_id}/audit/history/{control_number:path}",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 503)},
    summary="Audit history",
)
async def history(request: Request, meeting_id: str, control_number: str) -> Response:
    """Every log row of a control number and what became of it (`audit history --json`)."""
    return await answer(request, log_position, lambda conn: read_history(conn, meeting_id, control_number))


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise bad_query(f"bad_{name}", f"{name}: {exc}") from None


@router.get(
    "/meetings/{meeting_id}/audit/events",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 400, 401, 403, 404, 503)},
    summary="Audit events",
)
async def events(
    request: Request,
    meeting_id: str,
    channel: Annotated[Channel | None, Query(description="the submission's channel")] = None,
    submitted_by: Annotated[str | None, Query(description="payload field submitted_by")] = None,
    received_from: Annotated[str | None, Query(description="RFC 3339: received at or after")] = None,
    received_to: Annotated[str | None, Query(description="RFC 3339: received before")] = None,
    decision: Annotated[Literal["accepted", "rejected"] | None, Query(description="the ledger's decision")] = None,
    reason: Annotated[str | None, Query(description="reason code of rejected rows, e.g. cutoff_passed")] = None,
    limit: Annotated[int, Query(ge=1, le=EVENTS_MAX, description="at most this many rows")] = 100,
) -> Response:
    """A meeting's log rows matching every given filter, in log order (`audit events --json`)."""
    start, end = _time(received_from, "received_from"), _time(received_to, "received_to")
    return await answer(
        request,
        log_position,
        lambda conn: read_events(
            conn,
            meeting_id,
            channel=channel,
            submitted_by=submitted_by,
            received_from=start,
            received_to=end,
            decision=decision,
            reason=reason,
            limit=limit,
        ),
    )

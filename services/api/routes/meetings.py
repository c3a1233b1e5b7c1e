"""Routes: the meetings in the log, and one meeting's summary (ops)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from services.api.auth import ops
from services.api.conditional import answer, log_position
from services.api.errors import JSON_OBJECT, documented
from services.read.meeting import list_meetings, read_meeting

router = APIRouter(prefix="/v1", tags=["meetings"], dependencies=[Depends(ops)])


@router.get(
    "/meetings", response_model=None, responses={**JSON_OBJECT, **documented(304, 401, 403, 503)}, summary="Meetings"
)
async def meetings(request: Request) -> Response:
    """Every meeting in the log, as amended (`vote-ledger meeting list --json`)."""
    return await answer(request, log_position, list_meetings)


@router.get(
    "/meetings/{meeting_id}",
    response_model=None,
    responses={**JSON_OBJECT, **documented(304, 401, 403, 404, 503)},
    summary="Meeting",
)
async def meeting(request: Request, meeting_id: str) -> Response:
    """One logged meeting's summary as amended, with its register logged so far (`meeting show --meeting ID --json`)."""
    return await answer(request, log_position, lambda conn: read_meeting(conn, meeting_id))

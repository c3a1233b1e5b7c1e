"""Routes: operational status, the same dict as `status --json` (ops)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from services.api.auth import ops
from services.api.conditional import fresh
from services.api.errors import JSON_OBJECT, documented
from services.read.status import status as read_status

router = APIRouter(prefix="/v1", tags=["status"], dependencies=[Depends(ops)])


@router.get("/status", response_model=None, responses={**JSON_OBJECT, **documented(401, 403, 503)}, summary="Status")
async def status(request: Request) -> Response:
    """Log head, projector lag, decisions, parked messages, Kafka ingest lag and registers (`status --json`).

    Always read afresh, with no ETag (never a 304): Kafka's lag, stalled partitions and the offsets' idle
    times change while the log head and the projector's checkpoint stand still.
    """
    settings = request.app.state.settings
    return await fresh(request, lambda conn: read_status(conn, settings))

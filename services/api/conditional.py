"""Conditional requests on the log position: X-Log-Position, ETag, If-None-Match -> 304 before any body is read.

The ETag is ``"<position>-<16 hex>"``: the position the answer is computed at, and the first 16 hex
digits of SHA-256 over the method, path and sorted query, so two URLs never share a tag. A route
reads the position first (one cheap query: the projector's checkpoint for projection reads, the log
head for log reads) and calls ``not_modified``; a poller whose tag still holds costs that query only.
"""

from __future__ import annotations

import hashlib

import asyncpg
from fastapi import Request, Response

from services.adapters.postgres import tally_store
from services.adapters.postgres.log import reads

POSITION_HEADER = "X-Log-Position"
# private: aggregates are not public before the polls close, so no shared cache may keep them;
# no-cache: revalidate each time (the 304 is what makes that cheap).
REVALIDATE = "private, no-cache"
# An answer pinned to a fixed past position (as_of) never changes.
IMMUTABLE = "private, max-age=31536000, immutable"


async def projection_position(conn: asyncpg.Connection) -> int:
    """The position projection reads are computed at: the tally projector's checkpoint."""
    return await tally_store.checkpoint(conn, tally_store.PROJECTION)


async def log_position(conn: asyncpg.Connection) -> int:
    """The position log reads are computed at: the log head."""
    return await reads.head(conn)


def etag(request: Request, position: int) -> str:
    """The strong ETag of this request's answer at ``position``."""
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    digest = hashlib.sha256(f"{request.method} {request.url.path}?{query}".encode()).hexdigest()[:16]
    return f'"{position}-{digest}"'


def _matches(header: str | None, tag: str) -> bool:
    # If-None-Match holds one tag, a list, or `*`; weak comparison (RFC 9110 13.1.2) ignores W/.
    if not header:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or tag in candidates


def not_modified(request: Request, response: Response, position: int, *, immutable: bool = False) -> Response | None:
    """A 304 if the client's If-None-Match holds this answer's tag; else None, with the headers set on ``response``.

    Call it before computing the body; return its result when it is not None.
    """
    tag = etag(request, position)
    headers = {POSITION_HEADER: str(position), "ETag": tag, "Cache-Control": IMMUTABLE if immutable else REVALIDATE}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return None

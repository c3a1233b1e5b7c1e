"""Meeting ids in paths: any id the loader accepts (it may hold '/', '%', or be '..') is one path segment.

A client percent-encodes the id as a path segment (`a/b` -> `a%2Fb`, JavaScript's encodeURIComponent).
The server decodes the whole path before routing, so `/v1/meetings/a%2Fb/tally` would reach no route (and
`a%2Fb%2Ftally`'s summary would pass for the tally of `a/b`). MeetingIdSegment re-decodes the path from its
raw bytes with the id's segment kept as one segment ('%' and '/' in it escaped); the app's dependency
meeting_id_param turns it back into the id before any handler or dependency reads it. Route templates,
and so the metrics' route labels and the OpenAPI document, keep their plain `{meeting_id}`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from fastapi import Request

MEETINGS = b"/v1/meetings/"
_ESCAPED = re.compile("%2F|%25")


def escape(meeting_id: str) -> str:
    """The id as one segment of the routed path: '%' and '/' percent-encoded (and nothing else)."""
    return meeting_id.replace("%", "%25").replace("/", "%2F")


def unescape(segment: str) -> str:
    """The meeting id ``escape`` gave ``segment`` for."""
    return _ESCAPED.sub(lambda m: "/" if m[0] == "%2F" else "%", segment)


class MeetingIdSegment:
    """ASGI middleware: the path under /v1/meetings/ routed with the meeting id's raw segment as one segment."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Route /v1/meetings/<raw segment>/... by its raw segment; pass everything else on as it is."""
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and raw.startswith(MEETINGS) and not scope.get("root_path"):
            segment, slash, tail = raw[len(MEETINGS) :].partition(b"/")
            try:
                meeting, rest = unquote(segment.decode("ascii")), unquote(tail.decode("ascii"))
            except UnicodeDecodeError:  # not a URL a client encodes: routed as the server decoded it
                meeting = ""
            if meeting:
                path = MEETINGS.decode() + escape(meeting) + (f"/{rest}" if slash else "")
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def meeting_id_param(request: Request) -> None:
    """App-wide dependency, before any other: the meeting_id path parameter back from its escaped segment."""
    params = request.scope.get("path_params")
    if params and isinstance(params.get("meeting_id"), str):
        params["meeting_id"] = unescape(params["meeting_id"])

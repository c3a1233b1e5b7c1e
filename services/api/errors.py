"""The API's errors: one JSON shape, {"error": "<one line>", "code": "<snake_case>"}, never a trace or a DSN."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.adapters.kafka.topics import unreachable as kafka_unreachable
from services.adapters.postgres.connect import UNREACHABLE
from services.errors import UserError
from services.read.errors import MeetingNotProjected, UnknownMeeting

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with its status and code (e.g. 400 bad_as_of)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def bad_query(code: str, message: str) -> ApiError:
    """A 400 for a query parameter the API cannot read (code e.g. bad_as_of)."""
    return ApiError(400, code, message)


def refuse_nul(request: Request) -> None:
    """App-wide dependency: 400 bad_query for a NUL character in a path or query parameter.

    PostgreSQL's text cannot hold U+0000 (asyncpg raised CharacterNotInRepertoireError: a 500 and a trace).
    """
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and "\x00" in value:
            raise bad_query("bad_query", f"{name}: a NUL character is not allowed")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body, message on one line."""
    line = " ".join(str(message).split())
    return JSONResponse({"error": line, "code": code}, status_code=status, headers=headers)


# Starlette's own errors (a path no route matches, a method a route lacks) get codes of the same form.
_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}


def install(app: FastAPI) -> None:
    """Answer every error of the app with the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(UnknownMeeting)
    async def unknown_meeting(request: Request, exc: UnknownMeeting) -> JSONResponse:
        meeting = request.path_params.get("meeting_id", "")
        return error_response(404, "unknown_meeting", f"no meeting {meeting!r} in the log")

    @app.exception_handler(MeetingNotProjected)
    async def not_projected(request: Request, exc: MeetingNotProjected) -> JSONResponse:
        return error_response(409, "meeting_not_projected", str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks of the declared parameters (a limit that is not a number, say): the
        # first problem, named by the parameter, in one line.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return error_response(400, "bad_query", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    async def unrepresentable(request: Request, exc: asyncpg.CharacterNotInRepertoireError) -> JSONResponse:
        # A value PostgreSQL's text cannot hold (refuse_nul catches the usual one before any query).
        return error_response(400, "bad_query", "a parameter holds a character the database cannot store")

    @app.exception_handler(UserError)
    async def misconfigured(request: Request, exc: UserError) -> JSONResponse:
        # What the CLI prints as its one line (e.g. `status` without a Kafka login): the API's own
        # configuration, which its caller cannot fix; the line names variables, never a secret.
        log.warning("cannot answer %s: %s", request.url.path, exc)
        return error_response(503, "misconfigured", f"the API cannot answer this: {exc}")

    @app.exception_handler(KafkaError)
    async def kafka_down(request: Request, exc: KafkaError) -> JSONResponse:
        # `status` asks Kafka for its offsets and the topic's clock: no broker answering is the server's
        # trouble, for a while (503), not a bug (500). Where it tried stays in the API's log.
        settings = request.app.state.settings
        log.warning(
            "Kafka unavailable for %s: %s", request.url.path, kafka_unreachable(exc, settings.kafka_bootstrap) or exc
        )
        return error_response(
            503, "kafka_unavailable", f"Kafka is not available ({type(exc).__name__}); try again shortly"
        )

    outages = OutageLog()

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL gone (or restarting): 503, and the client retries. The DSN never leaves the server.
        outages.note(exc)
        return error_response(503, "database_unavailable", "the database is not available; try again shortly")

    # Each outage type has its own handler, so Starlette's ExceptionMiddleware answers it inside the app:
    # a handler for Exception runs in the outermost ServerErrorMiddleware, which answers and then re-raises
    # (uvicorn logged "Exception in ASGI application" with a trace per request, and the request metrics,
    # which sit inside it, counted a 500 the client never saw).
    for outage in OUTAGES:
        app.add_exception_handler(outage, database_down)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal_error", "internal error; see the API's log")


# What the API answers 503 database_unavailable for: connect.UNREACHABLE (no server, refused login, starting
# or shutting down, too many connections, a pool acquire's TimeoutError), a lost connection, and a session
# the server ended (pg_terminate_backend, a crash, a shutdown), as services/runtime/projector.is_outage retries.
OUTAGES: tuple[type[BaseException], ...] = (
    *UNREACHABLE,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionFailureError,
)

OUTAGE_LOG_INTERVAL_S = 30.0


class OutageLog:
    """One WARNING per outage, not per request: the first failure at once, then one line per 30 s with a count."""

    def __init__(self, interval_s: float = OUTAGE_LOG_INTERVAL_S, clock: Any = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.logged_at: float | None = None
        self.unlogged = 0

    def note(self, exc: BaseException) -> None:
        """Count one request answered 503; log it if the last line is older than the interval."""
        now = self.clock()
        if self.logged_at is not None and now - self.logged_at < self.interval_s:
            self.unlogged += 1
            return
        since = f" ({self.unlogged} more requests answered 503 since the last line)" if self.unlogged else ""
        log.warning("database unavailable: %s; answering 503 database_unavailable%s", type(exc).__name__, since)
        self.logged_at, self.unlogged = now, 0


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
    "required": ["error", "code"],
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the 304 and the error statuses it may answer, with the error body's schema."""
    descriptions = {
        304: "Not modified: If-None-Match holds the ETag of the answer at the current position",
        400: "Bad query (code names it, e.g. bad_as_of)",
        401: "unauthenticated: no, malformed, unknown, revoked or expired bearer token",
        403: "forbidden: the token's role does not allow this route",
        404: "unknown_meeting",
        409: "meeting_not_projected, or register_incomplete for a final report",
        503: "database_unavailable; for status also kafka_unavailable, or misconfigured (e.g. no Kafka login);"
        " busy (with Retry-After) for a replay of the log while the API computes enough of them already",
    }
    return {
        status: (
            {"description": descriptions[status]}
            if status == 304
            else {"description": descriptions[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
        )
        for status in statuses
    }


JSON_OBJECT = {200: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}

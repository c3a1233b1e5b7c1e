"""The API application: create_app() builds it over a reader pool; serve() runs it with uvicorn in our own loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import Depends, FastAPI

from services.api import errors, paths
from services.api.routes import LIFESPANS, ROUTERS
from services.errors import UserError
from services.observability.http_metrics import HttpMetrics
from services.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Read-only HTTP API of vote-ledger: the same read functions as the CLI (tally --json, status --json,"
    " reports, audit), over the reader role. Every route but health needs a bearer token"
    " (`vote-ledger api token issue`); every answer carries X-Log-Position and an ETag on it."
)


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> FastAPI:
    """The FastAPI app; ``pool`` (reader login) is used as given and left open, else one is opened at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from services.adapters.postgres.connect import READER_ROLE, pool_as

        own = pool is None
        app.state.pool = pool if pool is not None else await pool_as(settings, READER_ROLE, size=settings.api_pool_max)
        try:
            async with AsyncExitStack() as stack:
                for hook in LIFESPANS:
                    await stack.enter_async_context(hook(app))
                yield
        finally:
            if own:
                await app.state.pool.close()

    from services.read.export_file import software_version

    # No /docs or /redoc pages (every route but health needs a token); the document is docs/openapi.json,
    # and /openapi.json, which holds no data.
    app = FastAPI(
        title="vote-ledger",
        version=software_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Before any route's own: the meeting id as given (services/api/paths.py); a NUL never reaches PostgreSQL.
        dependencies=[Depends(paths.meeting_id_param), Depends(errors.refuse_nul)],
        # A trailing slash is a 404, not a 307 whose Location echoes the request's Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    if pool is not None:  # usable at once, e.g. by a test's client that runs no lifespan
        app.state.pool = pool
    errors.install(app)
    app.add_middleware(HttpMetrics)  # vote_ledger_http_requests_total by route template, method and status
    app.add_middleware(paths.MeetingIdSegment)  # a meeting id holding '/' or '%' routes as one segment
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, saying what the API answers: a bad query is our 400 (services/api/errors.py), not 422."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in document.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if operation.get("security"):  # behind a bearer token: every such route may answer 401 and 403
                    for status, described in errors.documented(401, 403).items():
                        responses.setdefault(str(status), described)
        for name in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: `services run` owns SIGINT/SIGTERM and sets ``stop``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the API on settings.api_host:api_port until ``stop`` is set.

    The pool opens first, so an unreachable database is the CLI's one-line error, not uvicorn's exit.
    """
    from services.adapters.postgres.connect import READER_ROLE, pool_as

    # Bound here, before anything starts: a port in use is one line (uvicorn would log it and exit the process).
    sock = socket.socket(socket.AF_INET6 if ":" in settings.api_host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.api_host, settings.api_port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"the API cannot listen on {settings.api_host}:{settings.api_port}: {exc.strerror};"
            " set VOTE_LEDGER_API_HOST / VOTE_LEDGER_API_PORT"
        ) from None
    pool = await pool_as(settings, READER_ROLE, size=settings.api_pool_max)
    try:
        app = create_app(settings, pool=pool)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # our logging (services/cli/common.setup_logging), not uvicorn's
            lifespan="on",
            access_log=False,
            # Open event streams (a dashboard) never end by themselves: without a bound, uvicorn waits for
            # them and SIGTERM does not stop the API while a browser is open (the browser test found it).
            # After 3 s the remaining connections are closed; the page reconnects with Last-Event-ID. Streams
            # end themselves first (ProjectedFeed.close below): the bound is for anything else in flight.
            timeout_graceful_shutdown=3,
        )
        server = _Server(config)

        async def serving() -> None:
            # uvicorn calls sys.exit() when its startup fails (a lifespan hook raised; it logged why): caught
            # here, inside the coroutine, since a SystemExit leaving a task would end the whole event loop.
            try:
                await server.serve(sockets=[sock])
            except SystemExit:
                raise UserError("the API could not start (see the log above)") from None

        task = asyncio.create_task(serving())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if (feed := getattr(app.state, "feed", None)) is not None:
                feed.close()  # open event streams end now, not at the graceful timeout (services/api/stream.py)
            server.should_exit = True
            stopping.cancel()
            await task
        log.info("API stopped")
    finally:
        sock.close()
        await pool.close()


def openapi_document() -> str:
    """The OpenAPI document of the API as `vote-ledger api openapi` prints it and docs/openapi.json holds it."""
    import json

    document = create_app(Settings()).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

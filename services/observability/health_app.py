"""The ledger's and the projector's /healthz, /readyz and /metrics: a tiny ASGI app served by uvicorn in their loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.errors import UserError
from services.observability import metrics, readiness
from services.settings import Settings

log = logging.getLogger("vote_ledger.health")


def health_app(
    registry: CollectorRegistry,
    ready: Callable[[], Awaitable[readiness.Ready]],
    before_scrape: Callable[[], None] | None = None,
) -> Starlette:
    """/healthz (the process answers), /readyz (``ready``'s verdict: 200, or 503 with the reason), /metrics."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        verdict = await ready()
        if verdict.ok:
            return JSONResponse({"status": "ready", **verdict.detail})
        return JSONResponse({"status": "not_ready", "reason": verdict.reason, **verdict.detail}, status_code=503)

    async def metrics_endpoint(_: Request) -> Response:
        if before_scrape is not None:
            before_scrape()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def ledger_health(settings: Settings, ledger) -> Starlette:
    """The ledger's health app: LEDGER registry; the consumer lag (and its backlog's age) refreshed at each scrape."""

    def refresh_lag() -> None:
        # Between batches (an idle ledger has none) the gauge would keep the last batch's lag forever.
        consumer = getattr(getattr(ledger, "subscriber", None), "consumer", None)
        if consumer is not None:
            offsets = metrics.consumer_offsets(consumer)
            metrics.record_consumer_lag(metrics.lag_of(offsets))
            ledger.backlog.note(offsets)

    return health_app(metrics.LEDGER, lambda: readiness.ledger_ready(ledger, settings, ledger.backlog), refresh_lag)


def projector_health(settings: Settings, projector) -> Starlette:
    """The projector's health app: PROJECTOR registry; readiness from the lag its loop measures."""
    return health_app(
        metrics.PROJECTOR, lambda: readiness.projector_ready(projector, settings, metrics.PROJECTOR_MEASURED)
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or a one-line UserError (e.g. port in use)."""
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the process's own (services run) stop it via ``stop``."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        """Leave SIGINT/SIGTERM to the event loop's handlers (uvicorn would replace them)."""
        yield


async def serve_asgi(app, sock: socket.socket, stop: asyncio.Event, what: str) -> None:
    """Serve an ASGI app on an open socket in this event loop until ``stop`` is set."""
    host, port = sock.getsockname()[:2]
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    log.info("%s listening on http://%s:%d", what, host, port)
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving
        sock.close()


async def serve_health(app: Starlette, host: str, port: int, stop: asyncio.Event, what: str) -> None:
    """Listen on host:port and serve a health app until ``stop`` is set."""
    await serve_asgi(app, listen(host, port), stop, f"{what} /healthz /readyz /metrics")

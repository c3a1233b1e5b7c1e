"""The API's metrics and health: request metrics middleware, /healthz, /readyz and /metrics (ops role)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.auth import Caller, metrics_reader
from services.observability import metrics, readiness

EVENT_STREAM = b"text/event-stream"  # a response that stays open: counted, never timed
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404): never the raw path
# The method label's values: any other method (HTTP allows any token) counts as "other". Taken from the
# request, 5,000 random methods to /healthz made 10,000 series and /metrics grew from 29 KB to 1.3 MB.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    """The request's method if it is one of METHODS, else "other": the label's values stay a fixed set."""
    return method if method in METHODS else OTHER_METHOD


class HttpMetrics:
    """ASGI middleware: vote_ledger_http_requests_total{route,method,status} and the request-seconds histogram.

    The route label is the matched route's template (/v1/meetings/{meeting_id}/tally), read from the scope
    Starlette's router fills in, so a thousand meetings make one series, not a thousand. An event stream
    (a text/event-stream response) is counted when it ends but kept out of the latency histogram: its
    duration is the stream's life (minutes), which put the stream route's p99 at +Inf; its latency is
    vote_ledger_sse_push_seconds, its open count vote_ledger_sse_clients.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        """Pass the request on; count it by route template, method and status once answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception that escapes every handler is a 500
        streaming = False

        async def sending(message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(
                    name.lower() == b"content-type" and value.startswith(EVENT_STREAM)
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            seconds = None if streaming else time.perf_counter() - started
            metrics.record_request(route, method_label(scope["method"]), status, seconds)


router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", include_in_schema=True)
async def healthz() -> dict:
    """Liveness: the process answers (no token)."""
    return {"status": "alive"}


# HEAD too (a load balancer's or uptime checker's probe), outside the OpenAPI document, which lists GET.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)


@router.get("/readyz", summary="Readiness: database, listener and projector lag (503 with a reason otherwise)")
async def readyz(request: Request) -> Response:
    """Readiness (no token): the pool answers, the projector's notification listener is connected, lag in bound."""
    state = request.app.state
    feed = getattr(state, "feed", None)  # the stream's ProjectedFeed (services/api/listener.py), if wired
    verdict = await readiness.api_ready(
        state.pool, feed is not None and feed.connected, state.settings, listener=feed is not None
    )
    if verdict.ok:
        return JSONResponse({"status": "ready", **verdict.detail})
    return JSONResponse({"status": "not_ready", "reason": verdict.reason, **verdict.detail}, status_code=503)


@router.get("/metrics", summary="Prometheus exposition of the API's registry (ops role)")
async def metrics_endpoint(_: Annotated[Caller, Depends(metrics_reader)]) -> Response:
    """The API registry's metrics in Prometheus's text format; Prometheus scrapes it with an ops token."""
    return Response(generate_latest(metrics.API), media_type=CONTENT_TYPE_LATEST)


router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)


@asynccontextmanager
async def observe_pool(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook: vote_ledger_db_pool_connections of the API reads its pool at each scrape."""
    metrics.watch_pool(metrics.API_POOL, app.state.pool)
    yield

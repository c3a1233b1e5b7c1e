"""The API's routers and lifespan hooks: explicit registries, in the order the OpenAPI document lists them.

A new router is one line here (its module's ``router``); a background task the app needs while it
serves (e.g. the stream's LISTEN connection) is one line in LIFESPANS: a function taking the app and
returning an async context manager, entered after the pool is open and left before it closes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from services.api import stream
from services.api.routes import audit, campaign, dashboard, meetings, reports, status, tallies
from services.observability import http_metrics

ROUTERS: list[APIRouter] = [
    status.router,
    meetings.router,
    tallies.router,
    stream.router,
    reports.router,
    campaign.router,
    audit.router,
    dashboard.router,
    http_metrics.router,  # /healthz, /readyz, /metrics
]

LIFESPANS: list[Callable[[FastAPI], AbstractAsyncContextManager[None]]] = [
    http_metrics.observe_pool,
    stream.live_updates,  # the LISTEN connection of the event streams
    campaign.compute_pool,  # the worker process of the campaign's and timeline's replays and forecasts
]

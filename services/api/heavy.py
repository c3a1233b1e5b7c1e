"""Heavy reads (a replay of a meeting's log): at most a few at a time per API process, the rest 503 busy.

A replay decodes and folds every accepted row of a meeting (about 1 s at 100,000 positions here). Its pure
part runs in the API's worker process (services/api/routes/campaign.py compute_pool), but decoding the
rows and handing them over still cost the event loop, and 15 concurrent `tally?as_of=` replays kept
/healthz waiting 9.7-21 s (issue 13, adversarial test). So: HEAVY_AT_ONCE may run; the next wait up to
HEAVY_WAIT_S for a turn, then get 503 `busy` with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager

from fastapi import Request

from services.api.errors import ApiError

HEAVY_AT_ONCE = 2  # the worker is one process: two keep it busy (one computes while the other's rows load)
HEAVY_WAIT_S = 5.0  # well under a client's usual 30 s timeout; a dashboard retries after Retry-After
RETRY_AFTER_S = 5


def busy() -> ApiError:
    """The 503 answered when every heavy-read slot stayed taken for HEAVY_WAIT_S."""
    return ApiError(
        503,
        "busy",
        f"the API is computing {HEAVY_AT_ONCE} replays of the log already; try again shortly",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


@asynccontextmanager
async def heavy(request: Request) -> AsyncIterator[None]:
    """Hold one of the app's heavy-read slots while replaying; 503 busy after HEAVY_WAIT_S without one."""
    state = request.app.state
    if getattr(state, "heavy_slots", None) is None:  # per app (tests run many apps in one process)
        state.heavy_slots = asyncio.Semaphore(HEAVY_AT_ONCE)
    slots: asyncio.Semaphore = state.heavy_slots
    try:
        await asyncio.wait_for(slots.acquire(), HEAVY_WAIT_S)
    except TimeoutError:
        raise busy() from None
    try:
        yield
    finally:
        slots.release()


def compute_pool(request: Request) -> Executor | None:
    """The app's worker process for replays (None when the app's lifespan did not run: a thread then)."""
    return getattr(request.app.state, "compute", None)

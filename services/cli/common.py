"""Helpers shared by the CLI commands: required settings and running coroutines."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from services.cli import UserError
from services.settings import Settings, settings

_HINT = 'run `eval "$(vote-ledger stack up)"` for the local stack, or set it to your own service'


def pg_dsn(cfg: Settings | None = None) -> str:
    """The PostgreSQL DSN, or a clear error saying how to get one."""
    cfg = cfg or settings()
    if not cfg.pg_dsn:
        raise UserError(f"VOTE_LEDGER_PG_DSN is not set: {_HINT}")
    return cfg.pg_dsn


def kafka_bootstrap(cfg: Settings | None = None) -> str:
    """The Kafka bootstrap servers, or a clear error saying how to get them."""
    cfg = cfg or settings()
    if not cfg.kafka_bootstrap:
        raise UserError(f"VOTE_LEDGER_KAFKA_BOOTSTRAP is not set: {_HINT}")
    return cfg.kafka_bootstrap


def run(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a coroutine to completion and return its exit code."""
    return int(asyncio.run(coro) or 0)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr in one format for every process."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a time without offset is ambiguous, so refuse it."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"timestamp needs an offset (e.g. +08:00 or Z): {text!r}")
    return value


def show(
    meeting_id: str, read: Callable[[Any], Awaitable[dict[str, Any]]], render: Callable[[dict[str, Any]], str]
) -> int:
    """Read one report on a reader-role connection and write it; an unknown meeting is the user's error."""
    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.tallies import UnknownMeeting

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            report = await read(conn)
        except UnknownMeeting:
            raise UserError(f"no meeting {meeting_id!r} in the log (was it loaded?)") from None
        finally:
            await conn.close()
        sys.stdout.write(render(report))
        return 0

    return run(go())

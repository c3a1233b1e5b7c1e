"""Helpers shared by the CLI commands: required settings, running coroutines, the output flag, argument types."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.cli import UserError
from services.settings import Settings, settings

if TYPE_CHECKING:
    from services.read.errors import MeetingNotProjected

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
    """Log to stderr in one format for every process: text or JSON lines, as VOTE_LEDGER_LOG_FORMAT says."""
    from services.observability import logs

    logs.setup_logging(verbose, settings().log_format)


FORMAT_HELP = {
    "table": "text for people",
    "json": "JSON",
    "md": "Markdown",
    "csv": "CSV, one row per item",
}


def add_format(
    parser: argparse.ArgumentParser,
    choices: tuple[str, ...] = ("table", "json"),
    default: str = "table",
    dest: str = "format",
    help: str | None = None,
) -> None:
    """Add the output flag every command that prints results shares: --format CHOICE, and --json as an alias.

    One convention for the whole CLI: ``--format`` picks among the renderings that make sense for the
    command, and ``--json`` (what most commands took before) stays, meaning exactly ``--format json``.
    """
    if default not in choices or "json" not in choices:
        raise ValueError(f"--format {default} must be one of {choices}, and json one of them")
    described = ", ".join(f"{c} ({FORMAT_HELP.get(c, c)})" for c in choices)
    # One or the other: `--format csv --json` silently printed JSON (the last flag won).
    either = parser.add_mutually_exclusive_group()
    either.add_argument(
        "--format",
        dest=dest,
        choices=choices,
        default=default,
        help=help or f"output format: {described}; default {default}",
    )
    either.add_argument("--json", dest=dest, action="store_const", const="json", help="alias of --format json")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add --quiet: no progress bar (there is none anyway when stderr is not a terminal)."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar on stderr (none is drawn when it is not a terminal)"
    )


# Past this, a count reached PostgreSQL (an int4 or int8 parameter) and failed there with a traceback.
INT32_MAX = 2**31 - 1


def whole_number(minimum: int, maximum: int = INT32_MAX) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum``, else a one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}: {value}")
        return value

    return parse


def positive_number(maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 (and at most ``maximum``), else a one-line error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value < math.inf:  # NaN fails every comparison: refused too
            raise argparse.ArgumentTypeError(f"must be a finite number above 0: {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}: {text}")
        return value

    return parse


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a time without offset is ambiguous, so refuse it."""
    from services.read.time_travel import parse_time  # the one parser, shared with the API's queries

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def not_projected(exc: MeetingNotProjected) -> UserError:
    """The line for a meeting the projector isolated: why its tally is not shown, and what to run instead."""
    return UserError(
        f"{exc} (see `vote-ledger status`): its tally would be stale; fix the cause, then `vote-ledger projections"
        f" rebuild --meeting {exc.meeting_id}`, or count from the log itself with `vote-ledger tally --as-of`"
    )


def show(
    meeting_id: str, read: Callable[[Any], Awaitable[dict[str, Any]]], render: Callable[[dict[str, Any]], str]
) -> int:
    """Read one report on a reader-role connection and write it; an unknown or unprojected meeting: UserError."""
    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.read.errors import MeetingNotProjected, UnknownMeeting

    async def go() -> int:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            report = await read(conn)
        except UnknownMeeting:
            raise UserError(f"no meeting {meeting_id!r} in the log (was it loaded?)") from None
        except MeetingNotProjected as exc:
            raise not_projected(exc) from None
        finally:
            await conn.close()
        sys.stdout.write(render(report))
        return 0

    return run(go())

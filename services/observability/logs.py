"""Structured logs for every process: structlog formats the standard library's records, as JSON lines or text.

Every module keeps its ``logging.getLogger(...)``: structlog's ProcessorFormatter is the formatter of the root
handler, so those records gain a UTC timestamp, the level, the logger's name and whatever context is bound
(``bind`` / ``structlog.contextvars.bound_contextvars``, or ``extra=`` on the call) without any call changing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from structlog.dev import Column, ConsoleRenderer, KeyValueColumnFormatter, LogLevelColumnFormatter, plain_traceback

from services.observability import outage
from services.observability.log_repeats import RepeatsSuppressed

LogFormat = Literal["text", "json"]

# The keys a log line carries when bound: which meeting, which Kafka record, which event, which log position,
# and a ledger batch's offsets per partition (services/runtime/ingest.batch_context).
CONTEXT_KEYS = ("meeting_id", "partition", "offset", "event_id", "position", "topic", "batch")

# Chatty libraries stay at WARNING: aiokafka logs every rebalance step at INFO, uvicorn every request.
_QUIET = ("aiokafka", "uvicorn.access")
# Libraries whose repeated failures are told once per kind and window (services/observability/log_repeats.py).
# asyncpg's pool retries its floor of connections every ~second during a PostgreSQL outage ("Failed to restore
# the pool connection floor; retrying": 8 lines in a measured 10 s outage, one per pool per attempt).
_REPEATS_TOLD_ONCE = ("aiokafka", "asyncpg")


def bind(**values: Any) -> Any:
    """Bind context to every log line of the current task until the block ends (a context manager)."""
    return structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None})


@contextmanager
def record_context(topic: str, partition: int, offset: int, **more: Any) -> Iterator[None]:
    """Bind a Kafka record's coordinates (and any of meeting_id / event_id given) while it is handled."""
    with bind(topic=topic, partition=partition, offset=offset, **more):
        yield


def _outage_traceback_dropped(record: logging.LogRecord) -> bool:
    """A library's retry that failed because PostgreSQL or Kafka is gone: its error in the line, not a traceback.

    asyncpg's pool logs each failed refill with a 16-line traceback (34 lines of a measured 10 s outage, of
    42); which dependency is gone, and for how long, is said by services/observability/outage.py.
    """
    if record.exc_info and record.name.startswith(_REPEATS_TOLD_ONCE) and not record.args:
        exc = record.exc_info[1]
        # Any socket error too: in asyncpg's or aiokafka's own retry it is the library's server going away.
        if exc is not None and (outage.of(exc) is not None or isinstance(exc, OSError)):
            record.msg, record.args = f"{record.msg} (%s)", (outage.describe(exc),)
            record.exc_info, record.exc_text = None, None
    return True


def _shared() -> list[Any]:
    """The processors every record goes through, ours and the standard library's alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(allow=CONTEXT_KEYS),  # log.error(..., extra={"partition": 3}) works too
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _text_renderer() -> ConsoleRenderer:
    """Today's terminal look (time, LEVEL, logger: message), then the bound keys as key=value."""
    plain = KeyValueColumnFormatter(key_style=None, value_style="", reset_style="", value_repr=str)
    return ConsoleRenderer(
        # plain_traceback: rich's default prints local variables, which may hold a DSN with its password
        exception_formatter=plain_traceback,
        columns=[
            Column("timestamp", plain),
            Column("level", _UpperLevel()),
            Column("logger", KeyValueColumnFormatter(None, "", "", str, postfix=":")),
            Column("event", plain),
            Column("", KeyValueColumnFormatter(key_style="", value_style="", reset_style="", value_repr=str)),
        ],
    )


class _UpperLevel(LogLevelColumnFormatter):
    """The level in capitals, unpadded, as the standard library's %(levelname)s printed it."""

    def __init__(self) -> None:
        super().__init__(level_styles={}, reset_style="", width=0)

    def __call__(self, key: str, value: object) -> str:
        return str(value).upper()


def formatter(fmt: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The logging.Formatter rendering records as JSON lines ("json") or terminal text ("text")."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    if fmt == "json":
        # format_exc_info: the traceback as one string field ("exception"), so an error stays one JSON line;
        # not dict_tracebacks, which records each frame's local variables (a DSN with its password, a token)
        final: list[Any] = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        final = [_text_renderer()]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )


def setup_logging(verbose: bool = False, fmt: LogFormat | None = None) -> None:
    """Log to stderr, structured, in one format for every process (fmt: VOTE_LEDGER_LOG_FORMAT by default)."""
    if fmt is None:
        from services.settings import settings

        fmt = settings().log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_vote_ledger", False)]:
        root.removeHandler(old)  # idempotent: a second call replaces, never doubles, the lines
    handler._vote_ledger = True  # type: ignore[attr-defined]
    # On the handler, not on the aiokafka logger: a logger's filter never sees its children's records
    # (aiokafka.consumer.fetcher, ...), and every process that logs sets up this handler.
    handler.addFilter(_outage_traceback_dropped)  # before the repeats' filter: its kinds see the one-line message
    handler.addFilter(RepeatsSuppressed(prefixes=_REPEATS_TOLD_ONCE))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        # structlog's own loggers (if a module uses one) go through the same chain, less the stdlib-only ExtraAdder
        processors=[p for p in _shared() if not isinstance(p, structlog.stdlib.ExtraAdder)]
        + [structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

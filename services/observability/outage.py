"""What a process says when Kafka or PostgreSQL goes away: one line when lost, a count a minute, one line when back.

Before this, each retry loop of a process logged its own failure on every attempt, most with a traceback:
a 10 s PostgreSQL outage under `services run` wrote ~750 lines (19 tracebacks from the ledger's batches,
its offset seeks, the chain heads, the answers relay, the stall watch, the projector and the API's
listener), and a Kafka outage none of ours at all (aiokafka's ~85 reconnects a second were told as
counts by log_repeats, but nothing said Kafka was gone or when it came back). Now every loop reports
its failure to the process's one ``Dependency`` for that service, which logs the first, counts the
rest, and tells how long the outage lasted when any loop succeeds again. The loops keep their own
back-off (services/runtime/retry.Backoff, capped at ``CAP_S``) and log their detail at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

CAP_S = 10.0  # every retry loop's longest wait between attempts (services/runtime/retry.Backoff's default cap)
WINDOW_S = 60.0  # a count of failed attempts once a minute while an outage lasts

log = logging.getLogger("vote_ledger.outage")


class Dependency:
    """One dependency of this process (Kafka or PostgreSQL): whether it answers, and since when it has not."""

    def __init__(
        self, name: str, where: str = "", cap_s: float = CAP_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.where = where
        self.cap_s = cap_s
        self.clock = clock
        self.lost_at: float | None = None  # None: answering (as far as this process knows)
        self.cause = ""
        self.attempts = 0  # failed attempts since lost
        self._told_at = 0.0
        self._told_attempts = 0
        self._lock = threading.Lock()  # failed() may be called from aiokafka's or a timer's thread too

    @property
    def down(self) -> bool:
        """Whether the last word on it was a failure."""
        return self.lost_at is not None

    def _at(self) -> str:
        return f" at {self.where}" if self.where else ""

    def failed(self, error: BaseException | str, by: str = "") -> bool:
        """Count a failed attempt; the first of an outage is logged (WARNING), then one count per minute.

        Returns whether this attempt started the outage. ``by``: which part of the process failed.
        """
        cause = error if isinstance(error, str) else describe(error)
        now = self.clock()
        with self._lock:
            self.attempts += 1
            if self.lost_at is None:
                self.lost_at, self.cause, self._told_at, self._told_attempts = now, cause, now, self.attempts
                first = True
            elif now - self._told_at >= WINDOW_S:
                first = False
                since, recent = now - self.lost_at, self.attempts - self._told_attempts
                self._told_at, self._told_attempts, self.cause = now, self.attempts, cause
                log.warning(
                    "%s still unreachable%s after %.0f s: %d failed attempts in the last %.0f s (%s);"
                    " retrying with back-off up to %g s",
                    self.name,
                    self._at(),
                    since,
                    recent,
                    WINDOW_S,
                    cause,
                    self.cap_s,
                )
                return False
            else:
                return False
        who = f" ({by})" if by else ""
        log.warning(
            "%s unreachable%s%s: %s; retrying with back-off up to %g s",
            self.name,
            self._at(),
            who,
            cause,
            self.cap_s,
        )
        return first

    def ok(self) -> float | None:
        """It answered: if it was lost, log (INFO) how long the outage lasted and return its seconds."""
        if self.lost_at is None:  # the common case, every batch: no lock taken
            return None
        with self._lock:
            if self.lost_at is None:
                return None
            seconds, attempts = self.clock() - self.lost_at, self.attempts
            self.lost_at, self.attempts, self.cause = None, 0, ""
        log.info("%s reachable again%s after %.1f s (%d failed attempts)", self.name, self._at(), seconds, attempts)
        return seconds

    def reason(self) -> str:
        """For /readyz: "<name> unreachable for N s (cause)", or "" while it answers."""
        lost_at = self.lost_at
        if lost_at is None:
            return ""
        return f"{self.name} unreachable for {self.clock() - lost_at:.0f} s ({self.cause})"


def describe(exc: BaseException) -> str:
    """An error in one line: its type and message (never a DSN: asyncpg's and aiokafka's messages hold none)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_DEPENDENCIES: dict[str, Dependency] = {}
_REGISTRY_LOCK = threading.Lock()
KAFKA = "Kafka"
POSTGRES = "PostgreSQL"


def dependency(name: str, where: str = "") -> Dependency:
    """This process's one Dependency of that name (created on first use; ``where`` kept from the first)."""
    with _REGISTRY_LOCK:
        dep = _DEPENDENCIES.get(name)
        if dep is None:
            dep = _DEPENDENCIES[name] = Dependency(name, where)
        elif where and not dep.where:
            dep.where = where
        return dep


def kafka() -> Dependency:
    """This process's Kafka (where: the bootstrap servers)."""
    return dependency(KAFKA, _where(KAFKA))


def postgres() -> Dependency:
    """This process's PostgreSQL (where: host:port/database of the first login it uses)."""
    return dependency(POSTGRES, _where(POSTGRES))


def reset() -> None:
    """Forget every dependency (a test's cleanup; a process has one set for its life)."""
    with _REGISTRY_LOCK:
        _DEPENDENCIES.clear()


def _where(name: str) -> str:
    try:
        from services.settings import settings

        cfg = settings()
    except Exception:  # noqa: BLE001 - a location is a nicety; never a reason for a failure report to fail
        return ""
    if name == KAFKA:
        return cfg.kafka_bootstrap
    from urllib.parse import urlsplit

    for field in ("pg_ledger_dsn", "pg_projector_dsn", "pg_reader_dsn", "pg_dsn"):
        value = getattr(cfg, field, None)
        if value:
            dsn = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
            parts = urlsplit(dsn)
            return (parts.netloc.rpartition("@")[2] + parts.path) or ""
    return ""


def of(exc: BaseException, oserror: str | None = None) -> Dependency | None:
    """The dependency an error says is unreachable, or None when the error is not an outage.

    Kafka's client errors are KafkaError; asyncpg's connection-level errors are PostgreSQL's, and so is
    an OSError or a timeout from opening a PostgreSQL connection (connect.py marks it with its target).
    A server's SQL error (a constraint, a privilege) is not an outage: the caller handles it.

    Any other OSError, TimeoutError included (an OSError since Python 3.11: asyncio's timeouts too), names
    no dependency by itself: it is ``oserror``'s, the dependency the calling loop names because it is all
    that loop touches (the projector's PostgreSQL), and not an outage (None) for a loop that touches both.
    Taken for PostgreSQL's whatever the loop, a timeout of the answers relay's or the chain heads' Kafka
    calls was logged "PostgreSQL unreachable".
    """
    import asyncpg
    from aiokafka.errors import KafkaError

    if isinstance(exc, KafkaError):
        return kafka()
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        return postgres()
    if isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _OUTAGE_CLASSES:
        return postgres()
    if isinstance(exc, OSError) and getattr(exc, "postgres_target", None) is not None:
        return postgres()  # connect.py's _open/pool_as: a refused, reset or timed-out PostgreSQL connection
    if isinstance(exc, OSError) and oserror is not None:
        return postgres() if oserror == POSTGRES else kafka() if oserror == KAFKA else dependency(oserror)
    return None


# SQLSTATE classes of a server going away: 08 connection exception, 57 operator intervention
# (57P01 admin shutdown, 57P03 cannot connect now), 53 insufficient resources (too many connections).
_OUTAGE_CLASSES = ("08", "57", "53")

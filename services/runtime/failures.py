"""Which failures are a record's fault (park it) and which the environment's (retry later)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from aiokafka import errors as kafka_errors
from aiokafka.errors import KafkaError

from services.errors import UserError
from services.observability import outage
from services.observability.outage import Dependency


class JudgeRaised(Exception):
    """The judge raised on an event of a multi-record batch; the batch is retried record by record."""


# PostgreSQL errors that a record's content causes (bad data, a broken constraint, a size or depth
# limit): the record is parked. Every other failure (connection lost, shutdown, privileges, lock
# timeouts, a Kafka error) is the environment's: retried with back-off, never parked.
_RECORD_FAULTS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError)
_TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    KafkaError,
    MemoryError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is the environment's (retry later) rather than the record's (park it)."""
    if isinstance(exc, asyncpg.PostgresError):
        return not isinstance(exc, _RECORD_FAULTS)
    return isinstance(exc, _TRANSIENT)


class CannotGoOn(UserError):
    """A failure retrying cannot fix (a refused login or privilege, no schema): the process exits with its line."""


def cannot_go_on(exc: BaseException) -> str | None:
    """The one line to exit with when retrying cannot fix ``exc``; None for an outage or a record's fault.

    A refused login, a refused privilege or ACL, a database without the schema (or an older one, whose
    tables or columns are missing): retried forever they only filled the log (the API's listener
    retried a missing schema every 5 s for as long as it ran).
    """
    if isinstance(exc, CannotGoOn):
        return str(exc)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return f"PostgreSQL refused a privilege this service needs ({exc}); run `vote-ledger db migrate` as the owner"
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError)):
        return (
            f"the database has no vote-ledger schema or an older one ({exc}); run `vote-ledger db migrate` as its owner"
        )
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        from services.adapters.postgres.connect import unreachable

        return unreachable(exc) or f"PostgreSQL refused the login ({exc}); fix VOTE_LEDGER_PG_*_DSN"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{exc}; fix the database in VOTE_LEDGER_PG_*_DSN, or create it and run `vote-ledger db migrate`"
    if isinstance(exc, kafka_errors.KafkaConnectionError) and (refusal := _sasl_refusal()) is not None:
        return f"Kafka refused the login ({refusal}); fix VOTE_LEDGER_KAFKA_<ROLE>_LOGIN (user:password)"
    if isinstance(exc, _KAFKA_REFUSED):
        return (
            f"Kafka refused this service ({type(exc).__name__}: {exc}); grant its ACLs"
            " (`vote-ledger stack principal add` on the local stack) or fix VOTE_LEDGER_KAFKA_<ROLE>_LOGIN"
        )
    return None


_KAFKA_REFUSED = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
)

# aiokafka logs a refused SASL login ('Unable connect to "host:port": SaslAuthenticationFailed ...') and then
# raises only KafkaConnectionError ("Unable to bootstrap"), the same as for a broker that is down: the
# refusal is noted from the log record so that a wrong password exits at once, with its cause. Noted for the
# current attempt only: once kept for good, one refusal (a broker restarting before its SCRAM credentials
# were loaded) turned every later KafkaConnectionError, a broker merely down, into a fatal exit. So it is
# forgotten when Kafka answers (kafka_answered) and counts only within SASL_REFUSAL_S of being logged.
_SASL_REFUSED: list[tuple[float, str]] = []  # (time.monotonic() when logged, the refusal in one line)
# aiokafka raises its "Unable to bootstrap" right after the refused connection of the same attempt; an
# attempt is bounded by topics.CONNECT_TIMEOUT_S (10 s) per bootstrap server: 30 s is one attempt's span.
SASL_REFUSAL_S = 30.0


def _note_sasl_refusal(record: logging.LogRecord) -> bool:
    if isinstance(record.args, tuple):
        for arg in record.args:
            if isinstance(arg, kafka_errors.SaslAuthenticationFailed):
                _SASL_REFUSED[:] = [(time.monotonic(), outage.describe(arg))]
    return True


def _sasl_refusal() -> str | None:
    if not _SASL_REFUSED:
        return None
    at, refusal = _SASL_REFUSED[-1]
    return refusal if time.monotonic() - at <= SASL_REFUSAL_S else None


def kafka_answered() -> float | None:
    """Kafka answered: forget a refused login noted before, and end an outage (its length, as Dependency.ok)."""
    _SASL_REFUSED.clear()
    return outage.kafka().ok()


# First among the aiokafka logger's filters: the CLI's own drops these records (its one line says the same).
logging.getLogger("aiokafka").filters.insert(0, _note_sasl_refusal)

_gave_up: tuple[asyncio.Event, list[str]] | None = None


def give_up(reason: str) -> None:
    """Ask this process to exit with ``reason`` (services_cmd.serve waits for it beside its services)."""
    global _gave_up
    if _gave_up is None:
        _gave_up = (asyncio.Event(), [])
    event, reasons = _gave_up
    reasons.append(reason)
    event.set()


async def given_up(stop: asyncio.Event) -> None:
    """Until ``stop`` is set: if a part of this process gives up, raise CannotGoOn with the first reason."""
    global _gave_up
    if _gave_up is None:
        _gave_up = (asyncio.Event(), [])
    event, reasons = _gave_up
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    if event.is_set():
        raise CannotGoOn(reasons[0])


def report(
    exc: BaseException, by: str, log: logging.Logger, line: str, oserror: str | None = None
) -> Dependency | None:
    """Say a retry loop's failure the way every loop does; return the dependency it lost, if any.

    Cannot go on: the process gives up (give_up). An outage: told to the process's dependency (one
    line when lost, a count a minute), ``line`` at DEBUG with the traceback. Anything else: ``line``
    at ERROR with the traceback (a bug's: it must be seen). The caller calls ``.ok()`` on the returned
    dependency once an attempt succeeds, which says how long the outage lasted. ``oserror``: which
    dependency a bare OSError or timeout is (outage.of), named only by a loop that touches nothing else.
    """
    if (reason := cannot_go_on(exc)) is not None:
        give_up(reason)
        return None
    dependency = outage.of(exc, oserror)
    if dependency is not None:
        dependency.failed(exc, by)
        log.debug("%s", line, exc_info=exc)
    else:
        log.error("%s", line, exc_info=exc)
    return dependency

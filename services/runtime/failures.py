"""Which failures are a record's fault (park it) and which the environment's (retry later)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaError


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

"""Which failures a record causes (park it) and which the environment does (retry, never park)."""

import asyncpg
import pytest
from aiokafka.errors import CorruptRecordException, KafkaConnectionError, RequestTimedOutError

from services.runtime.failures import JudgeRaised, is_transient
from services.runtime.stall_watch import is_parse_error


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.DataError("value out of range"),
        asyncpg.CheckViolationError("check"),
        asyncpg.UniqueViolationError("unique"),
        asyncpg.ProgramLimitExceededError("stack depth"),
        JudgeRaised(),
        ValueError("our bug"),
    ],
)
def test_a_failure_a_record_causes_is_not_transient_so_the_record_is_parked(exc):
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        OSError("network down"),
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("gone"),
        asyncpg.InsufficientPrivilegeError("revoked"),
        asyncpg.AdminShutdownError("shutdown"),
        asyncpg.CannotConnectNowError("starting"),
        asyncpg.DeadlockDetectedError("deadlock"),
        asyncpg.UndefinedTableError("not migrated"),
        asyncpg.InterfaceError("closed pool"),
        KafkaConnectionError(),
    ],
)
def test_a_failure_of_the_environment_is_transient_so_it_is_retried(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc, parse",
    [
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), True),
        (CorruptRecordException(), True),
        (KafkaConnectionError(), False),
        (RequestTimedOutError(), False),
        (TimeoutError(), False),
    ],
)
def test_the_stall_watch_tells_a_record_the_client_cannot_parse_from_a_network_failure(exc, parse):
    assert is_parse_error(exc) is parse

"""A service that cannot be reached becomes one line: where the command tried, why, and what to do."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from services.adapters.kafka.topics import unreachable as kafka_unreachable
from services.adapters.postgres.connect import unreachable as postgres_unreachable
from services.cli import unreachable

DSN = "postgresql://reader:secret@db.example:6543/votes"


def tried(exc: BaseException, variable: str | None = "VOTE_LEDGER_PG_READER_DSN") -> BaseException:
    """The exception as connect.py leaves it: marked with the DSN and the variable it came from."""
    exc.postgres_target = (DSN, variable)  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("exc", "why", "todo"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), "connection refused", "is it running?"),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 1)"), "connection refused", "stack up"),
        (asyncpg.InvalidPasswordError("password authentication failed"), "the password was refused", "password"),
        (asyncpg.InvalidAuthorizationSpecificationError('role "x" does not exist'), 'role "x" does not exist', "login"),
        (asyncpg.InvalidCatalogNameError('database "votes" does not exist'), "does not exist", "db migrate"),
        (TimeoutError(), "no answer in time", "reachable"),
        (socket.gaierror(-2, "Name or service not known"), "unknown host", "fix the host"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "starting up", "in a moment"),
    ],
)
def test_a_postgres_failure_names_the_server_the_login_the_variable_and_a_remedy(exc, why, todo):
    line = postgres_unreachable(tried(exc))
    assert line.startswith("cannot reach PostgreSQL at db.example:6543/votes as reader (VOTE_LEDGER_PG_READER_DSN): ")
    assert why in line and todo in line
    assert "secret" not in line and "\n" not in line


def test_a_bare_dsn_is_named_by_the_variable_that_holds_it(monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_PG_DSN", DSN)
    line = postgres_unreachable(tried(ConnectionRefusedError(111, "refused"), variable=None))
    assert "(VOTE_LEDGER_PG_DSN)" in line


def test_errors_that_are_not_about_reaching_a_service_are_left_alone():
    assert postgres_unreachable(FileNotFoundError(2, "No such file", "export.zip")) is None
    assert postgres_unreachable(asyncpg.UniqueViolationError("duplicate")) is None
    assert kafka_unreachable(KafkaTimeoutError(), "k:9092") is None
    assert unreachable(ValueError("bad spec")) is None


def test_no_broker_names_the_bootstrap_address_and_how_to_get_one():
    line = kafka_unreachable(KafkaConnectionError("Unable to bootstrap"), "127.0.0.1:1")
    assert line.startswith("cannot reach Kafka at 127.0.0.1:1 (VOTE_LEDGER_KAFKA_BOOTSTRAP): no broker answered")
    assert 'eval "$(vote-ledger stack up)"' in line


def test_main_finds_the_failure_inside_task_groups_and_behind_other_errors(monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    grouped = ExceptionGroup("tasks", [ValueError("other"), KafkaConnectionError("Unable to bootstrap")])
    assert unreachable(grouped).startswith("cannot reach Kafka at 127.0.0.1:1")
    try:
        try:
            raise tried(asyncpg.InvalidPasswordError("password authentication failed"))
        except asyncpg.PostgresError as inner:
            raise RuntimeError("the projector could not start") from inner
    except RuntimeError as outer:
        assert "the password was refused" in unreachable(outer)

"""An outage is said once when it starts, counted once a minute, and said once when it ends with its length."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from aiokafka import errors as kafka_errors

from services.cli.supervise import ChildWords, fatal_line
from services.observability import logs, outage
from services.runtime import failures
from services.runtime.retry import Backoff, retry

log = logging.getLogger("test_retry_outage")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_dependencies():
    outage.reset()
    yield
    outage.reset()


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vote_ledger.outage"]


def test_a_lost_dependency_is_said_once_counted_each_minute_and_said_back_with_its_length(caplog):
    clock = Clock()
    dep = outage.Dependency("PostgreSQL", "db:5432/vote_ledger", clock=clock)
    with caplog.at_level(logging.INFO, logger="vote_ledger.outage"):
        assert dep.failed(ConnectionRefusedError(111, "Connect call failed"), "the projector") is True
        for _ in range(30):  # 30 attempts over 45 s: nothing more said
            clock.now += 1.5
            assert dep.failed(OSError("refused")) is False
        assert len(messages(caplog)) == 1
        clock.now += 16.0  # past the minute: one count
        dep.failed(OSError("still refused"))
        clock.now += 4.0
        assert dep.reason() == "PostgreSQL unreachable for 65 s (OSError: still refused)"
        assert dep.ok() == pytest.approx(65.0)
        assert dep.ok() is None and not dep.down and dep.reason() == ""
    assert messages(caplog) == [
        "PostgreSQL unreachable at db:5432/vote_ledger (the projector): ConnectionRefusedError: [Errno 111]"
        " Connect call failed; retrying with back-off up to 10 s",
        "PostgreSQL still unreachable at db:5432/vote_ledger after 61 s: 31 failed attempts in the last 60 s"
        " (OSError: still refused); retrying with back-off up to 10 s",
        "PostgreSQL reachable again at db:5432/vote_ledger after 65.0 s (32 failed attempts)",
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "INFO"]


def test_a_timeout_or_socket_error_is_the_dependency_its_loop_names_never_postgresql_by_default():
    # TimeoutError is an OSError since Python 3.11: a timeout of a loop that also talks to Kafka (the answers
    # relay, the chain heads) was logged "PostgreSQL unreachable".
    assert outage.of(TimeoutError()) is None
    assert outage.of(ConnectionResetError(104, "reset by peer")) is None
    assert outage.of(TimeoutError(), oserror=outage.KAFKA) is outage.kafka()
    assert outage.of(ConnectionRefusedError(111, "refused"), oserror=outage.POSTGRES) is outage.postgres()
    opening = TimeoutError()
    opening.postgres_target = ("postgresql://db/v", "VOTE_LEDGER_PG_LEDGER_DSN")  # type: ignore[attr-defined]
    assert outage.of(opening) is outage.postgres()  # opening a PostgreSQL connection timed out: whatever the loop


async def test_a_timeout_in_a_loop_that_names_no_dependency_is_not_said_to_be_postgresql(caplog):
    calls = []

    async def times_out() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise TimeoutError()
        return "up"

    with caplog.at_level(logging.INFO):
        assert await retry(times_out, log=log, what="the answers relay", backoff=Backoff(0.001)) == "up"
    assert not [r for r in caplog.records if "PostgreSQL" in r.getMessage()]
    assert not outage.postgres().down and outage.postgres().attempts == 0


def test_an_answering_dependency_says_nothing():
    dep = outage.Dependency("Kafka")
    assert dep.ok() is None and dep.reason() == "" and not dep.down


def test_errors_are_told_to_the_dependency_they_say_is_gone():
    assert outage.of(kafka_errors.KafkaConnectionError("closed")).name == "Kafka"
    refused = ConnectionRefusedError(111, "refused")
    refused.postgres_target = ("postgresql://db/v", None)  # type: ignore[attr-defined] - as connect.py marks it
    assert outage.of(refused).name == "PostgreSQL"
    assert outage.of(asyncpg.CannotConnectNowError("the database system is shutting down")).name == "PostgreSQL"
    assert outage.of(asyncpg.InterfaceError("connection is closed")).name == "PostgreSQL"
    assert outage.of(asyncpg.UniqueViolationError("duplicate")) is None
    assert outage.of(ValueError("a bug")) is None
    assert outage.of(kafka_errors.KafkaConnectionError("x")) is outage.kafka()  # one per process


async def test_a_retry_through_an_outage_says_it_once_and_says_when_it_is_back(caplog):
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 6:
            raise ConnectionRefusedError(111, f"Connect call failed ({len(calls)})")
        return "up"

    with caplog.at_level(logging.INFO):
        what, backoff = "the projector's reconnection", Backoff(0.001, 0.002)
        result = await retry(flaky, log=log, what=what, backoff=backoff, oserror=outage.POSTGRES)
    assert result == "up" and len(calls) == 6
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert len(said) == 2
    assert said[0][0] == "WARNING" and said[0][1].startswith("PostgreSQL unreachable")
    assert "(the projector's reconnection): ConnectionRefusedError" in said[0][1]
    assert said[1][0] == "INFO" and said[1][1].startswith("PostgreSQL reachable again")
    assert said[1][1].endswith("(5 failed attempts)")


async def test_a_retry_that_cannot_go_on_raises_its_one_line_at_once():
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise asyncpg.InvalidPasswordError('password authentication failed for user "vl_projector"')

    with pytest.raises(failures.CannotGoOn, match="password"):
        await retry(refused, log=log, what="x", errors=(asyncpg.PostgresError, OSError), backoff=Backoff(0.001))
    assert calls == [1]


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (asyncpg.UndefinedTableError('relation "ledger_log" does not exist'), "run `vote-ledger db migrate`"),
        (asyncpg.UndefinedColumnError('column "generation" does not exist'), "an older one"),
        (asyncpg.InsufficientPrivilegeError("permission denied for table ledger_log"), "refused a privilege"),
        (asyncpg.InvalidPasswordError("password authentication failed"), "password"),
        (kafka_errors.TopicAuthorizationFailedError(), "Kafka refused this service"),
        (kafka_errors.GroupAuthorizationFailedError(), "grant its ACLs"),
    ],
)
def test_what_retrying_cannot_fix_has_one_line(error, says):
    line = failures.cannot_go_on(error)
    assert line is not None and says in line and "\n" not in line


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        asyncpg.CannotConnectNowError("starting up"),
        kafka_errors.KafkaConnectionError("closed"),
        kafka_errors.NotLeaderForPartitionError(),
        asyncpg.UniqueViolationError("a record's fault"),
    ],
)
def test_an_outage_or_a_records_fault_is_not_a_reason_to_exit(error):
    assert failures.cannot_go_on(error) is None


def test_a_refused_kafka_login_logged_by_aiokafka_makes_its_connection_error_fatal():
    refused = kafka_errors.SaslAuthenticationFailed("Authentication failed due to invalid credentials")
    failures._SASL_REFUSED.clear()
    try:
        assert failures.cannot_go_on(kafka_errors.KafkaConnectionError("Unable to bootstrap")) is None
        logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, refused)
        line = failures.cannot_go_on(kafka_errors.KafkaConnectionError("Unable to bootstrap"))
        assert line is not None and line.startswith("Kafka refused the login (SaslAuthenticationFailed")
    finally:
        failures._SASL_REFUSED.clear()


def test_a_refused_kafka_login_is_forgotten_once_kafka_answers():
    refused = kafka_errors.SaslAuthenticationFailed("Authentication failed due to invalid credentials")
    failures._SASL_REFUSED.clear()
    try:
        logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, refused)
        failures.kafka_answered()  # the next connection logged in: the refusal was of its moment
        assert failures.cannot_go_on(kafka_errors.KafkaConnectionError("Unable to bootstrap")) is None
    finally:
        failures._SASL_REFUSED.clear()


def test_a_refused_kafka_login_counts_only_within_the_attempt_that_logged_it():
    import time

    failures._SASL_REFUSED.clear()
    try:
        old = time.monotonic() - failures.SASL_REFUSAL_S - 1
        failures._SASL_REFUSED[:] = [(old, "SaslAuthenticationFailed: invalid credentials")]
        # A broker down long after a refusal (no Kafka call in between told us it answered): an outage, retried.
        assert failures.cannot_go_on(kafka_errors.KafkaConnectionError("Unable to bootstrap")) is None
    finally:
        failures._SASL_REFUSED.clear()


async def test_a_part_that_gives_up_ends_the_wait_with_its_reason_and_a_stop_ends_it_quietly():
    import asyncio

    failures._gave_up = None
    stop = asyncio.Event()
    stop.set()
    await failures.given_up(stop)  # stopped: returns
    failures.give_up("the database has no vote-ledger schema")
    failures.give_up("a second reason")
    try:
        with pytest.raises(failures.CannotGoOn, match="^the database has no vote-ledger schema$"):
            await failures.given_up(asyncio.Event())
    finally:
        failures._gave_up = None


def test_a_library_retry_failing_on_an_outage_logs_one_line_without_its_traceback():
    try:
        raise asyncpg.CannotConnectNowError("the database system is shutting down")
    except asyncpg.CannotConnectNowError:
        record = logging.LogRecord("asyncpg.pool", logging.WARNING, __file__, 1, "Failed to restore", None, True)
        import sys

        record.exc_info = sys.exc_info()
    assert logs._outage_traceback_dropped(record) is True
    assert record.exc_info is None
    assert record.getMessage() == "Failed to restore (CannotConnectNowError: the database system is shutting down)"
    assert record.msg == "Failed to restore (%s)"  # one kind for log_repeats, whatever the error's text


def test_the_supervisor_repeats_a_childs_closing_line():
    assert fatal_line("vote-ledger: the password was refused\n") == "the password was refused"
    json_line = '{"event": "no schema", "level": "error", "logger": "vote_ledger.cli", "timestamp": "t"}'
    assert fatal_line(json_line) == "no schema"
    assert fatal_line("2026-11-30T01:07:25Z INFO vote_ledger.health: listening") == ""
    assert fatal_line('{"event": "x", "logger": "vote_ledger.ledger"}') == ""


def test_a_child_killed_without_a_word_is_said_killed_by_its_signal():
    words = ChildWords.__new__(ChildWords)
    words.last = ""
    assert words.why(-9) == ", killed by SIGKILL"
    assert words.why(2) == ""
    words.last = "the password was refused"
    assert words.why(2) == ": the password was refused"

"""With PostgreSQL or Kafka out of reach, every command says so in one line and exits non-zero.

And with no endpoint configured at all, a running local stack is used (said on stderr) instead of refusing.
The CLI runs as a subprocess, as an operator would run it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.settings import load

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MEETING_FILE = REPO / "deploy" / "meetings" / "cbak-2023-agm.toml"
CLI = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vote_ledger(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI with only the given VOTE_LEDGER_* variables (none inherited from the test's shell)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_")}
    return subprocess.run([*CLI, *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    """The command failed with exactly one line on stderr, holding every expected fragment and no traceback."""
    lines = done.stderr.splitlines()
    assert done.returncode != 0, done.stdout + done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    return lines[0]


NOWHERE = {
    "VOTE_LEDGER_HOME": "/nonexistent/vote-ledger-home",  # no local stack to fall back on
}

POSTGRES_COMMANDS = [
    ("tally", "--meeting", "m"),
    ("report", "final", "--meeting", "m"),
    ("proxies", "--meeting", "m"),
    ("audit", "history", "--meeting", "m", "--control-number", "1"),
    ("audit", "verify", "--meeting", "m", "--no-heads"),
    ("projections", "rebuild", "--meeting", "m"),
    ("export", "--meeting", "m", "--out", "/tmp/never-written.zip"),
    ("db", "migrate"),
    ("status",),
]


@pytest.mark.parametrize("args", POSTGRES_COMMANDS, ids=" ".join)
def test_every_command_says_in_one_line_that_postgresql_refused_the_connection(args):
    port = closed_port()
    dsn = f"postgresql://someone:secret@127.0.0.1:{port}/votes"
    done = vote_ledger(
        *args,
        **NOWHERE,
        VOTE_LEDGER_PG_DSN=dsn,
        VOTE_LEDGER_PG_READER_DSN=dsn,
        VOTE_LEDGER_PG_PROJECTOR_DSN=dsn,
        VOTE_LEDGER_KAFKA_BOOTSTRAP=f"127.0.0.1:{closed_port()}",
    )
    line = assert_one_line(done, f"cannot reach PostgreSQL at 127.0.0.1:{port}/votes as someone", "connection refused")
    assert "VOTE_LEDGER_PG_" in line and "stack up" in line and "secret" not in line


KAFKA_COMMANDS = [
    ("meeting", "load", str(MEETING_FILE)),
    ("status",),
    ("services", "run", "ledger"),
]


@pytest.mark.parametrize("args", KAFKA_COMMANDS, ids=" ".join)
def test_every_command_says_in_one_line_that_no_kafka_broker_answered(args, settings):
    port = closed_port()
    done = vote_ledger(
        *args,
        **NOWHERE,
        VOTE_LEDGER_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        VOTE_LEDGER_PG_READER_DSN=settings.pg_reader_dsn,  # a migrated database: only Kafka is missing
        VOTE_LEDGER_PG_LEDGER_DSN=settings.pg_ledger_dsn,
    )
    assert_one_line(
        done, f"cannot reach Kafka at 127.0.0.1:{port} (VOTE_LEDGER_KAFKA_BOOTSTRAP): no broker answered", "stack up"
    )


def with_part(dsn: str, **parts: str) -> str:
    """The DSN with its password or database replaced."""
    split = urlsplit(dsn)
    password = parts.get("password", split.password)
    netloc = f"{split.username}:{password}@{split.hostname}:{split.port}"
    return split._replace(netloc=netloc, path=parts.get("path", split.path)).geturl()


def test_a_refused_password_names_the_login_and_the_variable_to_fix(logins):
    wrong = with_part(logins.pg_reader_dsn, password="not-the-password")
    done = vote_ledger("tally", "--meeting", "m", **NOWHERE, VOTE_LEDGER_PG_READER_DSN=wrong)
    user = urlsplit(wrong).username
    assert_one_line(
        done,
        f"as {user} (VOTE_LEDGER_PG_READER_DSN): the password was refused",
        "fix the password in VOTE_LEDGER_PG_READER_DSN",
    )


def test_an_unknown_database_says_so_and_how_to_create_the_schema(logins):
    wrong = with_part(logins.pg_reader_dsn, path="/no_such_database")
    done = vote_ledger("report", "final", "--meeting", "m", **NOWHERE, VOTE_LEDGER_PG_READER_DSN=wrong)
    assert_one_line(done, "/no_such_database as", 'database "no_such_database" does not exist', "db migrate")


def test_a_malformed_variable_is_one_line_naming_it_and_the_expected_form():
    done = vote_ledger("tally", "--meeting", "m", **NOWHERE, VOTE_LEDGER_BATCH_MAX="abc")
    assert_one_line(done, "VOTE_LEDGER_BATCH_MAX='abc' is not valid: expected a whole number from 1 to 1000000")
    done = vote_ledger("stack", "status", **NOWHERE, VOTE_LEDGER_PG_PORT="99999")
    assert_one_line(done, "VOTE_LEDGER_PG_PORT='99999' is not valid: expected a whole number from 1 to 65535")


def test_nothing_configured_and_no_local_stack_still_says_how_to_get_one(tmp_path):
    done = vote_ledger("tally", "--meeting", "m", cwd=tmp_path)
    assert_one_line(done, "is not set", 'eval "$(vote-ledger stack up)"')


STACK_PLACE = ("VOTE_LEDGER_KAFKA_PORT", "VOTE_LEDGER_KAFKA_CONTROLLER_PORT", "VOTE_LEDGER_PG_PORT")


def test_a_database_without_the_schema_says_to_migrate_it_in_one_line(logins):
    # The session's default database may or may not be migrated; a fresh one certainly is not.
    import asyncio

    from services.adapters.postgres.connect import on_database
    from services.adapters.postgres.migrate import temporary_database

    async def unmigrated_status() -> subprocess.CompletedProcess:
        async with temporary_database(logins.pg_dsn, "t_bare_", migrated=False) as dsn:
            reader = on_database(logins, urlsplit(dsn).path.lstrip("/")).pg_reader_dsn
            env = {"VOTE_LEDGER_PG_READER_DSN": reader, "VOTE_LEDGER_KAFKA_BOOTSTRAP": logins.kafka_bootstrap}
            return await asyncio.to_thread(vote_ledger, "status", **NOWHERE, **env)

    done = asyncio.run(unmigrated_status())
    assert_one_line(done, "has no vote-ledger schema", "vote-ledger db migrate")


def running_stack_home() -> Path | None:
    """The home of the local stack this test session can see (the shared one), if it runs."""
    from services.local_stack import running_endpoints

    current = load()
    return current.home if running_endpoints(current) is not None else None


def test_with_nothing_configured_a_running_local_stack_is_used_and_said_so(tmp_path):
    home = running_stack_home()
    if home is None:
        pytest.skip("no local stack runs from VOTE_LEDGER_HOME (e.g. services from testcontainers)")
    # The stack's own ports when they are not the defaults (a second stack beside a shared one).
    ports = {k: v for k, v in os.environ.items() if k in STACK_PLACE}
    # A fresh stack's database has no schema yet: migrate it as `make demo` would (idempotent).
    migrated = vote_ledger("db", "migrate", cwd=tmp_path, VOTE_LEDGER_HOME=str(home), **ports)
    assert migrated.returncode == 0, migrated.stderr
    done = vote_ledger("tally", "--meeting", "no-such-meeting", cwd=tmp_path, VOTE_LEDGER_HOME=str(home), **ports)
    said, *rest = done.stderr.splitlines()
    assert said.startswith("vote-ledger: VOTE_LEDGER_KAFKA_BOOTSTRAP and VOTE_LEDGER_PG_DSN are not set;")
    assert f"using the local stack running from {home}" in said
    # The stack was reached: the answer is about the meeting, not about a missing variable.
    assert rest == ["vote-ledger: no meeting 'no-such-meeting' in the log (was it loaded?)"] and done.returncode == 2
    status = vote_ledger("status", cwd=tmp_path, VOTE_LEDGER_HOME=str(home), **ports)
    assert "log head" in status.stdout and "Traceback" not in status.stderr, status.stderr


@pytest.fixture
def silent_port():
    """A loopback port where something listens but never answers (as a web server does to Kafka or PostgreSQL)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the handshakes; nobody ever reads or writes
        yield listener.getsockname()[1]


def timed(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI's run and how long it took, in seconds."""
    import time

    began = time.monotonic()
    done = vote_ledger(*args, **env)
    return done, time.monotonic() - began


@pytest.mark.parametrize("args", [("status",), ("audit", "verify", "--meeting", "m")], ids=" ".join)
def test_a_kafka_address_where_something_else_listens_is_one_line_within_fifteen_seconds(args, settings, silent_port):
    done, took = timed(
        *args,
        **NOWHERE,
        VOTE_LEDGER_KAFKA_BOOTSTRAP=f"127.0.0.1:{silent_port}",
        VOTE_LEDGER_PG_READER_DSN=settings.pg_reader_dsn,
    )
    assert_one_line(done, f"cannot reach Kafka at 127.0.0.1:{silent_port} (VOTE_LEDGER_KAFKA_BOOTSTRAP)")
    assert done.returncode == 2 and took < 15, took


def test_a_postgresql_address_where_something_else_listens_is_one_line_within_fifteen_seconds(silent_port):
    dsn = f"postgresql://someone:secret@127.0.0.1:{silent_port}/votes"
    done, took = timed("tally", "--meeting", "m", **NOWHERE, VOTE_LEDGER_PG_READER_DSN=dsn)
    assert_one_line(done, f"cannot reach PostgreSQL at 127.0.0.1:{silent_port}/votes as someone", "no answer in time")
    assert done.returncode == 2 and took < 15, took


def test_audit_verify_says_an_unreachable_kafka_as_every_other_command_does(settings):
    port = closed_port()
    done = vote_ledger(
        "audit",
        "verify",
        "--meeting",
        "m",
        **NOWHERE,
        VOTE_LEDGER_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        VOTE_LEDGER_PG_READER_DSN=settings.pg_reader_dsn,
    )
    line = assert_one_line(
        done, f"cannot reach Kafka at 127.0.0.1:{port} (VOTE_LEDGER_KAFKA_BOOTSTRAP): no broker answered", "--no-heads"
    )
    assert "KafkaConnectionError" not in line and done.returncode == 2


def a_recorded_home(tmp_path: Path, **ports: int) -> Path:
    """A stack home whose ports.json records these ports (as `stack up` writes it), with no stack started."""
    import json

    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "ports.json").write_text(json.dumps(ports))
    return home


def test_stack_status_of_another_home_shows_the_ports_its_stack_was_started_on(tmp_path):
    import json

    home = a_recorded_home(
        tmp_path, kafka_port=closed_port(), kafka_controller_port=closed_port(), pg_port=closed_port()
    )
    recorded = json.loads((home / "ports.json").read_text())
    done = vote_ledger("stack", "status", "--format", "json", VOTE_LEDGER_HOME=str(home))
    shown = json.loads(done.stdout)
    assert shown["kafka"]["address"] == f"127.0.0.1:{recorded['kafka_port']}"
    assert shown["postgres"]["address"] == f"127.0.0.1:{recorded['pg_port']}"


def test_a_port_variable_that_disagrees_with_a_running_stacks_record_is_one_line(tmp_path, silent_port):
    pg_port = closed_port()
    home = a_recorded_home(tmp_path, kafka_port=silent_port, kafka_controller_port=closed_port(), pg_port=pg_port)
    for args in (("stack", "status"), ("stack", "down")):
        done = vote_ledger(*args, VOTE_LEDGER_HOME=str(home), VOTE_LEDGER_KAFKA_PORT="19092")
        assert_one_line(done, f"VOTE_LEDGER_KAFKA_PORT=19092 (recorded: {silent_port})", str(home / "ports.json"))
    # The variable that agrees with the record is fine, and once that stack is down a new port wins.
    agreeing = vote_ledger("stack", "status", VOTE_LEDGER_HOME=str(home), VOTE_LEDGER_KAFKA_PORT=str(silent_port))
    assert "Traceback" not in agreeing.stderr and f"127.0.0.1:{pg_port}" in agreeing.stdout
    stale = a_recorded_home(
        tmp_path / "stale", kafka_port=closed_port(), kafka_controller_port=closed_port(), pg_port=pg_port
    )
    moved = vote_ledger("stack", "status", VOTE_LEDGER_HOME=str(stale), VOTE_LEDGER_PG_PORT="25999")
    assert "127.0.0.1:25999" in moved.stdout and "Traceback" not in moved.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser is only needed as root (PostgreSQL runs as `postgres`)")
def test_stack_up_without_runuser_on_the_path_says_so_before_starting_anything(tmp_path):
    import shutil

    tools = tmp_path / "bin"  # java and Maven, but no runuser
    tools.mkdir()
    for tool in ("java", "mvn"):
        if found := shutil.which(tool):
            (tools / tool).symlink_to(found)
    home = tmp_path / "home"
    place = {"VOTE_LEDGER_KAFKA_PORT": str(closed_port()), "VOTE_LEDGER_KAFKA_CONTROLLER_PORT": str(closed_port())}
    place |= {"VOTE_LEDGER_PG_PORT": str(closed_port()), "VOTE_LEDGER_HOME": str(home)}
    cache = {"VOTE_LEDGER_CACHE": os.environ.get("VOTE_LEDGER_CACHE") or str(REPO / ".cache")}
    try:
        done = vote_ledger("stack", "up", PATH=str(tools), **place, **cache)
        said = [line for line in done.stderr.splitlines() if not line.startswith("[stack] warning:")]  # ports
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(said) == 1 and "`runuser` is needed" in said[0] and "PATH" in said[0], done.stderr
        assert not (home / "kafka.pid").exists() and not (home / "pg-data").exists()
    finally:
        vote_ledger("stack", "down", **place, **cache)

"""Outages told in a handful of lines, readiness that tells the truth, and one clear line when a service cannot go on.

One single-node stack of this module's own (home under /tmp, free ports, ALWAYS stopped at the end), one
`vote-ledger services run` (ledger, projector and API as the supervisor's children) on it. Each outage is
10 s during paced ingest: PostgreSQL stopped (pg_ctl stop -m fast, then started again) and the broker frozen
(SIGSTOP, then SIGCONT). Before the change a 10 s PostgreSQL outage wrote ~750 lines (19 tracebacks) and a
broker outage thousands of aiokafka errors (told as counts since log_repeats); now each process says once
that the dependency is gone and once that it is back, and nothing published is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from services.devtools.stack import kafka, postgres, stack_up
from services.devtools.stack.common import StackConfig
from services.settings import load
from tests.conftest import CLI, free_port
from tests.faults.harness import load_meeting, progress, publish, settle, subprocess_env, workload
from tests.own_stack import own_stack

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 10.0
RATE = 100  # submissions per second while the outage happens
# Lines at WARNING or above (and traceback lines) a 10 s outage may write across the three processes: each
# says "unreachable" once, plus the libraries' first lines of a kind (aiokafka, asyncpg's pool) before
# log_repeats counts them. Measured: 8 for PostgreSQL, 12 for the broker.
LINE_BOUND = 20
READY_BOUND_S = 60.0  # after the outage, every /readyz is 200 again within this
PUBLISH_BOUND_S = 120.0  # after readiness, the rest of the 25 s paced workload is published within this


def say(line: str) -> None:
    """The stack helpers' progress lines, on stderr with a prefix (pytest shows them on failure)."""
    print(f"[recovery] {line}", file=sys.stderr)


@pytest.fixture(scope="module")
def stack():
    """This module's own single-node stack; stopped (and its home removed) at the end, even on failure."""
    with own_stack(
        "vl-recovery-",
        lambda home: StackConfig(home, REPO / ".cache", free_port(), free_port(), free_port()),
        lambda cfg: stack_up(cfg, say),
    ) as (cfg, endpoints):
        yield cfg, endpoints


@pytest.fixture(scope="module")
def settings_of_stack(stack):
    """Settings on the module's stack, its database migrated by `db migrate` as the owner."""
    _, ep = stack
    cfg = load(
        kafka_bootstrap=ep.kafka_bootstrap,
        pg_dsn=ep.pg_dsn,
        pg_ledger_dsn=ep.pg_ledger_dsn,
        pg_projector_dsn=ep.pg_projector_dsn,
        pg_reader_dsn=ep.pg_reader_dsn,
        pg_admin_dsn=ep.pg_admin_dsn,
        kafka_operator_login=ep.kafka_operator_login,
        kafka_ledger_login=ep.kafka_ledger_login,
        kafka_admin_login=ep.kafka_admin_login,
        kafka_channel_login=ep.kafka_channel_login,
        topic_prefix="",
        consumer_group="vote-ledger",
    )
    run = cli(cfg, "db", "migrate", timeout=300)
    assert run.returncode == 0, run.stderr
    return cfg


def cli(cfg, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`vote-ledger <args>` on these settings (plus ``env``), to completion."""
    full = {**subprocess_env(cfg), **(env or {})}
    return subprocess.run([*CLI, *args], env=full, cwd=REPO, capture_output=True, text=True, timeout=timeout)


class Running:
    """`vote-ledger services run` (all three) on the module's stack, its log in a file, its ports known."""

    def __init__(self, cfg, log: Path) -> None:
        self.ports = {"ledger": free_port(), "projector": free_port(), "api": free_port()}
        env = subprocess_env(cfg) | {
            "VOTE_LEDGER_LEDGER_METRICS_PORT": str(self.ports["ledger"]),
            "VOTE_LEDGER_PROJECTOR_METRICS_PORT": str(self.ports["projector"]),
            "VOTE_LEDGER_API_PORT": str(self.ports["api"]),
        }
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*CLI, "services", "run"], env=env, cwd=REPO, stdout=out, stderr=out)

    def ready(self) -> dict[str, tuple[int, str]]:
        """Each service's /readyz: (status, reason)."""
        found = {}
        for name, port in self.ports.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                    found[name] = (answer.status, "")
            except urllib.error.HTTPError as exc:
                found[name] = (exc.code, json.loads(exc.read() or b"{}").get("reason", ""))
            except OSError as exc:
                found[name] = (0, f"no answer: {exc}")
        return found

    def wait_ready(self, timeout: float) -> float:
        """Seconds until every /readyz answers 200; fails with what they said after ``timeout``."""
        began = time.monotonic()
        while True:
            now = self.ready()
            if all(status == 200 for status, _ in now.values()):
                return time.monotonic() - began
            assert self.proc.poll() is None, f"services run exited:\n{self.tail()}"
            assert time.monotonic() - began < timeout, f"not ready within {timeout} s: {now}\n{self.tail()}"
            time.sleep(0.5)

    def tail(self, lines: int = 60) -> str:
        """The last lines of the services' log: for a failure message."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop `services run` if still running: SIGTERM, then SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def services(settings_of_stack, tmp_path_factory):
    """The services running on the module's stack with the bundled meeting loaded; stopped at the end."""
    running = Running(settings_of_stack, tmp_path_factory.mktemp("recovery") / "services.log")
    try:
        running.wait_ready(180)
        asyncio.run(load_meeting(settings_of_stack))
        yield running
    finally:
        running.stop()


_LEVEL = re.compile(r"^\S+Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): ")


def said_since(log: Path, offset: int) -> list[str]:
    """The log's lines after ``offset`` bytes."""
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


def loud(lines: list[str]) -> list[str]:
    """The lines at WARNING or above, and any line that is not a log line (a traceback's)."""
    out = []
    for line in lines:
        match = _LEVEL.match(line)
        if match is None or match[1] in ("WARNING", "ERROR", "CRITICAL"):
            out.append(line)
    return out


async def outage_during_ingest(cfg, running: Running, seed: int, down, up) -> tuple[list[str], dict, float]:
    """Publish at RATE through a 10 s outage (``down()``, ``up()``); return the lines, /readyz seen, the recovery."""
    work = workload(cfg, seed, RATE * 25)
    offset = running.log.stat().st_size
    publishing = asyncio.create_task(publish(cfg, work, rate=RATE))
    await asyncio.sleep(4)
    seen: dict[str, set[str]] = {name: set() for name in running.ports}
    await asyncio.to_thread(down)
    began = time.monotonic()
    while time.monotonic() - began < OUTAGE_S:
        for name, (status, reason) in (await asyncio.to_thread(running.ready)).items():
            if status == 503:
                seen[name].add(reason)
        await asyncio.sleep(1)
    await asyncio.to_thread(up)
    recovered = await asyncio.to_thread(running.wait_ready, READY_BOUND_S)
    try:  # bounded: a publisher stuck on a broker that never came back fails here, not at pytest's timeout
        await asyncio.wait_for(publishing, PUBLISH_BOUND_S)
    except TimeoutError:
        raise AssertionError(
            f"publishing not done {PUBLISH_BOUND_S} s after the outage: {work.published} of {len(work)} published"
        ) from None
    await settle(cfg, work, timeout=180)
    now = await progress(cfg, work)
    assert (now.expected, now.logged) == (len(work.event_ids), len(work.event_ids)), now  # each once: none lost
    await asyncio.sleep(1)  # the last "reachable again" lines
    return said_since(running.log, offset), seen, recovered


# Which process a "<dependency> unreachable at ... (<part>)" line came from (`services run` merges their logs):
# the parts of the projector and of the API; every other part (batches, answers relay, chain heads, stall
# watch, offset seeks, the Kafka watch) is the ledger's.
_PROCESS_OF_PART = {"the projector": "projector", "the projector's reconnection": "projector"}
_PROCESS_OF_PART["the API's tally notifications"] = "api"


def told_in_a_few_lines(dependency: str, lines: list[str], seen: dict, recovered: float, processes: tuple) -> None:
    """Assert an outage of ``dependency`` was told within LINE_BOUND loud lines, gone and back by each process.

    At least once each way per process, not exactly: a second short outage in one process (a refill, a
    late batch) adds a pair of lines, which the line bound still limits.
    """
    said = loud(lines)
    print(f"{dependency} outage: {len(said)} loud lines of {len(lines)}; ready {recovered:.1f} s after; {seen}")
    print("\n".join(said))
    assert len(said) <= LINE_BOUND, "\n".join(said)
    assert not [line for line in said if line.startswith("Traceback")], "\n".join(said)
    gone = re.compile(rf"WARNING vote_ledger\.outage: {dependency} unreachable at \S+ \((.+?)\): ")
    parts = [match[1] for match in map(gone.search, lines) if match is not None]
    told = {_PROCESS_OF_PART.get(part, "ledger") for part in parts}
    back = [line for line in lines if f"INFO vote_ledger.outage: {dependency} reachable again at" in line]
    assert told >= set(processes) and len(back) >= len(processes), "\n".join(lines[-80:])
    assert all("retrying with back-off up to 10 s" in line for line in lines if gone.search(line))
    for name in processes:  # /readyz said it while it lasted, with the reason
        assert any(dependency in reason for reason in seen[name]), (name, seen)


@pytest.mark.faults
async def test_a_10_s_postgresql_outage_is_told_in_a_few_lines_readiness_follows_and_nothing_is_lost(
    stack, settings_of_stack, services
):
    cfg, _ = stack
    down, up = (lambda: postgres.stop(cfg, say)), (lambda: stack_up(cfg, say))
    lines, seen, recovered = await outage_during_ingest(settings_of_stack, services, 1401, down=down, up=up)
    told_in_a_few_lines("PostgreSQL", lines, seen, recovered, ("ledger", "projector", "api"))


@pytest.mark.faults
async def test_a_10_s_broker_outage_is_told_in_a_few_lines_readiness_follows_and_nothing_is_lost(
    stack, settings_of_stack, services
):
    cfg, _ = stack
    pid = kafka.running_pid(cfg)
    assert pid is not None
    down, up = (lambda: os.kill(pid, signal.SIGSTOP)), (lambda: os.kill(pid, signal.SIGCONT))
    lines, seen, recovered = await outage_during_ingest(settings_of_stack, services, 1402, down=down, up=up)
    told_in_a_few_lines("Kafka", lines, seen, recovered, ("ledger",))  # only the ledger talks to Kafka


def last_line(run: subprocess.CompletedProcess) -> str:
    """The last line the process wrote on stderr ("" if none): where a one-line exit message must be."""
    lines = run.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def with_password(dsn: str, password: str) -> str:
    """The DSN with another password."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", rf"\g<1>{password}@", dsn, count=1)


def elsewhere() -> dict[str, str]:
    """Ports of an exit case's own (the module's services keep theirs)."""
    return {
        "VOTE_LEDGER_LEDGER_METRICS_PORT": str(free_port()),
        "VOTE_LEDGER_PROJECTOR_METRICS_PORT": str(free_port()),
        "VOTE_LEDGER_API_PORT": str(free_port()),
    }


def test_a_consumer_group_the_ledger_is_not_granted_exits_it_with_one_line(settings_of_stack):
    env = elsewhere() | {"VOTE_LEDGER_CONSUMER_GROUP": "vote-ledger-not-granted"}
    run = cli(settings_of_stack, "services", "run", "ledger", env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert last_line(run).startswith(
        "vote-ledger: Kafka refused this service (GroupAuthorizationFailedError: [Error 30]"
    ), run.stderr
    assert "Traceback" not in run.stderr


def test_a_refused_kafka_password_exits_the_ledger_with_one_line(settings_of_stack):
    user = settings_of_stack.kafka_ledger_login.get_secret_value().partition(":")[0]
    env = elsewhere() | {"VOTE_LEDGER_KAFKA_LEDGER_LOGIN": f"{user}:wrong-password"}
    run = cli(settings_of_stack, "services", "run", "ledger", env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert last_line(run).startswith("vote-ledger: Kafka refused the login (SaslAuthenticationFailed"), run.stderr
    assert last_line(run).endswith("fix VOTE_LEDGER_KAFKA_LEDGER_LOGIN (user:password)")
    assert "Traceback" not in run.stderr


def test_a_refused_postgresql_password_exits_and_the_supervisor_says_which_child_and_why(settings_of_stack):
    dsn = settings_of_stack.pg_projector_dsn
    env = elsewhere() | {"VOTE_LEDGER_PG_PROJECTOR_DSN": with_password(dsn, "wrong-password")}
    run = cli(settings_of_stack, "services", "run", env=env, timeout=180)
    assert run.returncode == 2, run.stderr
    assert re.fullmatch(
        r"vote-ledger: the projector service exited with status 2: cannot reach PostgreSQL at \S+ as vl_projector"
        r" \(VOTE_LEDGER_PG_PROJECTOR_DSN\): the password was refused; fix the password in"
        r" VOTE_LEDGER_PG_PROJECTOR_DSN; stopped the others",
        last_line(run),
    ), run.stderr
    assert "Traceback" not in run.stderr


def test_an_unmigrated_database_exits_the_api_with_one_line(settings_of_stack):
    async def fresh() -> str:
        """A new empty database (no vote-ledger schema) on the module's server; its name."""
        name = f"unmigrated_{os.getpid()}"
        conn = await asyncpg.connect(settings_of_stack.pg_admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name}")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return name

    name = asyncio.run(fresh())
    reader = re.sub(r"/[^/?]+(\?|$)", rf"/{name}\1", settings_of_stack.pg_reader_dsn, count=1)
    run = cli(settings_of_stack, "services", "run", "api", env=elsewhere() | {"VOTE_LEDGER_PG_READER_DSN": reader})
    assert run.returncode == 2, run.stderr
    assert last_line(run) == (
        "vote-ledger: the database has no vote-ledger schema or an older one (relation"
        ' "projection_checkpoints" does not exist); run `vote-ledger db migrate` as its owner'
    ), run.stderr

"""Local Kafka + PostgreSQL stack on loopback: start, stop, inspect, and pick endpoints.

The stack needs no Docker: Kafka runs from jars fetched once from Maven Central
into the cache folder (see deploy/local/kafka/pom.xml), PostgreSQL from the
machine's own binaries. Kafka details live in services/stack_kafka.py,
PostgreSQL details in services/stack_postgres.py.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from services.cli import UserError

__all__ = [
    "KAFKA_VERSION",
    "Endpoints",
    "StackConfig",
    "StackError",
    "resolve_endpoints",
    "stack_down",
    "stack_status",
    "stack_up",
]

# Keep in step with <kafka.version> in deploy/local/kafka/pom.xml.
KAFKA_VERSION = "4.3.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy" / "local"
LOOPBACK = "127.0.0.1"
DATABASE = "vote_ledger"

# Images for the Docker path of resolve_endpoints (only used when a Docker engine answers).
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:15"

T = TypeVar("T")
Log = Callable[[str], None]


class StackError(UserError):
    """A local-stack problem the user can fix: a missing tool, a busy port, a failed start."""


@dataclass(frozen=True)
class Endpoints:
    """Where clients connect: Kafka bootstrap servers and a PostgreSQL DSN."""

    kafka_bootstrap: str
    pg_dsn: str


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its files and which loopback ports it listens on."""

    home: Path = field(
        default_factory=lambda: Path(_env("VOTE_LEDGER_HOME", ".vote-ledger")).resolve()
    )
    cache: Path = field(default_factory=lambda: Path(_env("VOTE_LEDGER_CACHE", ".cache")).resolve())
    kafka_port: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_KAFKA_PORT", "19092")))
    kafka_controller_port: int = field(
        default_factory=lambda: int(_env("VOTE_LEDGER_KAFKA_CONTROLLER_PORT", "19093"))
    )
    pg_port: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_PG_PORT", "15432")))
    kafka_version: str = KAFKA_VERSION

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        """Read VOTE_LEDGER_* variables, then apply the overrides that are not None."""
        given = {key: value for key, value in overrides.items() if value is not None}
        for key in ("home", "cache"):
            if key in given:
                given[key] = Path(given[key]).expanduser().resolve()
        for key in ("kafka_port", "kafka_controller_port", "pg_port"):
            if key in given:
                given[key] = int(given[key])
        return replace(cls(), **given)

    @property
    def logs_dir(self) -> Path:
        """Folder holding kafka.log and postgres.log."""
        return self.home / "logs"

    @property
    def kafka_data(self) -> Path:
        """Kafka's log.dirs (KRaft metadata and topic data)."""
        return self.home / "kafka-data"

    @property
    def pg_data(self) -> Path:
        """PostgreSQL's data directory (PGDATA)."""
        return self.home / "pg-data"

    @property
    def kafka_log(self) -> Path:
        """Kafka's log file."""
        return self.logs_dir / "kafka.log"

    @property
    def pg_log(self) -> Path:
        """PostgreSQL's server log file."""
        return self.logs_dir / "postgres.log"

    @property
    def kafka_libs(self) -> Path:
        """Folder with every jar the Kafka broker needs at run time."""
        return self.cache / f"kafka-{self.kafka_version}" / "libs"

    @property
    def m2(self) -> Path:
        """Private Maven repository, so fetching never touches ~/.m2."""
        return self.cache / "m2"

    def endpoints(self) -> Endpoints:
        """The endpoints this stack serves once it is up."""
        return Endpoints(
            kafka_bootstrap=f"{LOOPBACK}:{self.kafka_port}",
            pg_dsn=f"postgresql://postgres@{LOOPBACK}:{self.pg_port}/{DATABASE}",
        )


def say(message: str) -> None:
    """Print a progress line on stderr (stdout stays clean for `eval "$(... stack up)"`)."""
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when the caller's loop is running."""
    # Always on a private loop in a worker thread: asyncio.run() in the caller's
    # thread fails inside a running loop and, outside one, resets the thread's
    # current loop (which pytest-asyncio's session loop relies on).
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=worker, name="stack-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log yet)"
    return "\n".join(text[-lines:])


# Imported after the shared definitions above, which both modules import from here.
from services import stack_kafka as _kafka  # noqa: E402
from services import stack_postgres as _pg  # noqa: E402


def stack_up(cfg: StackConfig | None = None, log: Log = say) -> Endpoints:
    """Start Kafka and PostgreSQL if they are not running; return their endpoints."""
    cfg = cfg or StackConfig.from_env()
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    # Check every port first so a busy one does not leave half a stack running.
    _kafka.check_ports(cfg)
    _pg.check_ports(cfg)
    # The JVM takes the longest to boot, so launch it first and set up
    # PostgreSQL while it starts; then wait for Kafka to answer.
    _kafka.start(cfg, log)
    _pg.up(cfg, log)
    _kafka.wait_ready(cfg, log)
    return cfg.endpoints()


def stack_down(cfg: StackConfig | None = None, log: Log = say) -> None:
    """Stop Kafka and PostgreSQL; does nothing for a service that is not running."""
    cfg = cfg or StackConfig.from_env()
    _kafka.stop(cfg, log)
    _pg.stop(cfg, log)


def stack_status(cfg: StackConfig | None = None) -> dict[str, Any]:
    """Describe both services (running, pid, address, data dir, log file), cache and version."""
    cfg = cfg or StackConfig.from_env()
    return {
        "home": str(cfg.home),
        "cache": str(cfg.cache),
        "kafka_version": cfg.kafka_version,
        "kafka": _kafka.status(cfg),
        "postgres": _pg.status(cfg),
    }


_containers: list[Any] = []
_container_endpoints: Endpoints | None = None
_resolve_lock = threading.Lock()


def resolve_endpoints(cfg: StackConfig | None = None) -> tuple[Endpoints, str]:
    """Find a Kafka + PostgreSQL to use: "env", else "testcontainers", else the "local" stack."""
    global _container_endpoints
    bootstrap = os.environ.get("VOTE_LEDGER_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("VOTE_LEDGER_PG_DSN")
    if bootstrap and dsn:
        return Endpoints(bootstrap, dsn), "env"
    with _resolve_lock:
        if _container_endpoints is not None:
            return _container_endpoints, "testcontainers"
        if _docker_answers():
            try:
                _container_endpoints = _start_containers()
                return _container_endpoints, "testcontainers"
            except Exception as exc:  # e.g. images cannot be pulled: the local stack still works
                _stop_containers()
                say(f"testcontainers failed ({exc!r}); using the local stack instead")
        return stack_up(cfg), "local"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon, bad DOCKER_HOST: all mean "no Docker"
        return False


def _start_containers() -> Endpoints:
    try:  # testcontainers >= 4.9 moved the modules; the old paths warn
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

    # Same broker behaviour as the local stack: topics are created explicitly.
    kafka = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_NUM_PARTITIONS", "4")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    postgres = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname=DATABASE, driver=None
    )
    atexit.register(_stop_containers)
    say(f"starting {KAFKA_IMAGE} and {POSTGRES_IMAGE} with testcontainers")
    # Module-level references keep the containers for the whole process and let
    # the atexit hook stop them (Ryuk would reap them too, but later).
    _containers.append(kafka.start())
    _containers.append(postgres.start())
    return Endpoints(kafka.get_bootstrap_server(), postgres.get_connection_url(driver=None))


def _stop_containers() -> None:
    while _containers:
        container = _containers.pop()
        try:
            container.stop()
        except Exception:  # best effort at interpreter exit
            pass

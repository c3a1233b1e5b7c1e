"""Shared definitions of the local stack: configuration, endpoints, ports and small helpers.

The stack needs no Docker: Kafka runs from jars fetched once from Maven Central
into the cache folder (see deploy/local/kafka/pom.xml), PostgreSQL from the
machine's own binaries. This module holds what kafka.py and postgres.py share: the configuration
and small helpers; the addresses, the logins' names and the endpoints are services/local_stack.py's,
which settings() asks whether a stack runs here.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from deploy import bundled
from services.errors import UserError
from services.local_stack import passwords_file, recorded_replicated, with_recorded_ports

if TYPE_CHECKING:
    from services.settings import Settings

# Keep in step with <kafka.version> in deploy/local/kafka/pom.xml.
KAFKA_VERSION = "4.3.1"
DEPLOY_DIR = bundled("local")  # shipped in the wheel (package deploy), so `stack up` works outside a checkout

# Images for the Docker path of resolve_endpoints (only used when a Docker engine answers).
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:15"

T = TypeVar("T")
Log = Callable[[str], None]


class StackError(UserError):
    """A local-stack problem the user can fix: a missing tool, a busy port, a failed start."""


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its files and which loopback ports it listens on (the stack's view of Settings)."""

    home: Path
    cache: Path
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    pg_bindir: Path | None = None  # PostgreSQL's binaries, when not found on the PATH or in the usual places
    kafka_version: str = KAFKA_VERSION
    # Three Kafka nodes and a PostgreSQL standby (`stack up --replicated`); recorded in the home's ports.json.
    replicated: bool = False

    @classmethod
    def from_env(cls, replicated: bool | None = None, **overrides: Any) -> StackConfig:
        """Read the settings (VOTE_LEDGER_* variables), then apply the overrides that are not None (flags).

        Replicated as given, else as the home's ports.json records it (a home started with --replicated).
        """
        from services.settings import load

        current = with_recorded_ports(load(**{key: value for key, value in overrides.items() if value is not None}))
        mode = recorded_replicated(current.home) if replicated is None else replicated
        return replace(cls.of(current), replicated=bool(mode))  # the home's own ports, unless given

    @classmethod
    def of(cls, current: Settings) -> StackConfig:
        """The stack's part of the settings."""
        return cls(
            current.home,
            current.cache,
            current.kafka_port,
            current.kafka_controller_port,
            current.pg_port,
            current.pg_bindir,
        )

    @property
    def logs_dir(self) -> Path:
        """Folder holding kafka.log and postgres.log."""
        return self.home / "logs"

    @property
    def kafka_data(self) -> Path:
        """Kafka's log.dirs (KRaft metadata and topic data)."""
        return self.home / "kafka-data"

    def node_ports(self, node: int) -> tuple[int, int]:
        """Kafka node's (client, controller) ports: node i of a cluster listens 10*(i-1) above the configured ones."""
        step = 10 * (node - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    def node_data(self, node: int) -> Path:
        """A Kafka node's log.dirs: kafka-data (a single node), kafka-data-<i> (a cluster's node i)."""
        return self.home / f"kafka-data-{node}" if self.replicated else self.kafka_data

    def node_properties(self, node: int) -> Path:
        """A Kafka node's generated server properties."""
        name = f"kafka-server-{node}.properties" if self.replicated else "kafka-server.properties"
        return self.home / name

    def node_pid_file(self, node: int) -> Path:
        """Where a Kafka node's pid is recorded."""
        return self.home / (f"kafka-{node}.pid" if self.replicated else "kafka.pid")

    def node_log(self, node: int) -> Path:
        """A Kafka node's log file."""
        return self.logs_dir / f"kafka-{node}.log" if self.replicated else self.kafka_log

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
    def pg_passwords(self) -> Path:
        """The superuser's and the logins' passwords (JSON, mode 0600)."""
        return passwords_file(self.home)

    @property
    def kafka_libs(self) -> Path:
        """Folder with every jar the Kafka broker needs at run time."""
        return self.cache / f"kafka-{self.kafka_version}" / "libs"

    @property
    def m2(self) -> Path:
        """Private Maven repository, so fetching never touches ~/.m2."""
        return self.cache / "m2"

    def ports(self) -> dict[str, int]:
        """The configured ports by the variable that sets each."""
        return {
            "VOTE_LEDGER_KAFKA_PORT": self.kafka_port,
            "VOTE_LEDGER_KAFKA_CONTROLLER_PORT": self.kafka_controller_port,
            "VOTE_LEDGER_PG_PORT": self.pg_port,
        }


def say(message: str) -> None:
    """Print a progress line on stderr (stdout stays clean for `eval "$(... stack up)"`)."""
    print(f"[stack] {message}", file=sys.stderr, flush=True)


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


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's range of ports for outgoing connections (Linux), or None when unknown."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def ephemeral_port_warnings(ports: dict[str, int], span: tuple[int, int] | None) -> list[str]:
    """A warning for each port inside the ephemeral range: while the service is down (a restart, a
    crash), any client's outgoing connection may be given that port, and the service cannot bind it."""
    if span is None:
        return []
    low, high = span
    return [
        f"{name}={port} lies in the kernel's ephemeral port range {low}-{high} ({EPHEMERAL_RANGE_FILE}):"
        f" a client's connection may take it while the service is down; choose a port below {low}"
        " or reserve it (sysctl net.ipv4.ip_local_reserved_ports)"
        for name, port in ports.items()
        if low <= port <= high
    ]


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log yet)"
    return "\n".join(text[-lines:])

"""Our services as OS processes under test, and what every process on the machine spends meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from services.adapters.postgres.connect import dsn_env
from services.settings import Settings, kafka_login_env


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that points a `vote-ledger` process at these settings."""
    env = dict(os.environ)
    env.update(dsn_env(settings))
    env.update(
        {
            "VOTE_LEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "VOTE_LEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "VOTE_LEDGER_CONSUMER_GROUP": settings.consumer_group,
            "VOTE_LEDGER_BATCH_MAX": str(settings.batch_max),
            "VOTE_LEDGER_API_HOST": settings.api_host,
            "VOTE_LEDGER_API_PORT": str(settings.api_port),
            "VOTE_LEDGER_METRICS_HOST": settings.metrics_host,
            "VOTE_LEDGER_LEDGER_METRICS_PORT": str(settings.ledger_metrics_port),
            "VOTE_LEDGER_PROJECTOR_METRICS_PORT": str(settings.projector_metrics_port),
            **kafka_login_env(settings),  # the settings' logins, not the shell's (see scratch.as_operator)
        }
    )
    return env


def cli(*args: str) -> list[str]:
    """argv running our CLI with this interpreter (the installed entry point may not be on PATH)."""
    return [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())", *args]


@contextmanager
def running(settings: Settings, *which: str, log_dir: Path) -> Iterator[dict[str, subprocess.Popen]]:
    """Run `vote-ledger services run <which>` processes; SIGTERM them on the way out.

    A name with a number ("ledger2") is one more process of that service, with its own log.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in which:
            with open(log_dir / f"{name}.log", "ab") as out:
                procs[name] = subprocess.Popen(
                    cli("services", "run", name.rstrip("0123456789")),
                    env=_env(settings, name),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env(settings: Settings, name: str) -> dict[str, str]:
    """The service's environment; one more process of a service gets metrics ports of its own (both would bind)."""
    env = service_env(settings)
    if name != name.rstrip("0123456789"):
        env["VOTE_LEDGER_LEDGER_METRICS_PORT"] = str(free_port())
        env["VOTE_LEDGER_PROJECTOR_METRICS_PORT"] = str(free_port())
    return env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0, read, closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine_processes(services: dict[str, subprocess.Popen]) -> dict[str, Callable[[], list[psutil.Process]]]:
    """The processes that do the work, by component: our services, Kafka's JVM, PostgreSQL's.

    Each component is a function listing its processes now: PostgreSQL forks a backend per
    connection, so its set changes while we measure.
    """
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        name: _fixed([psutil.Process(p.pid)]) for name, p in services.items()
    }
    kafka, postmasters = [], []
    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "java" and "kafka.Kafka" in cmdline:
            kafka.append(proc)
        elif proc.info["name"] == "postgres" and _parent_name(proc) != "postgres":
            postmasters.append(proc)  # the postmaster; its children are the backends and workers
    groups["kafka"] = _fixed(kafka)
    groups["postgresql"] = lambda: [p for m in postmasters for p in (m, *_children(m))]
    groups["bench (publisher, poller)"] = _fixed([psutil.Process()])
    return groups


def _fixed(procs: list[psutil.Process]) -> Callable[[], list[psutil.Process]]:
    return lambda: procs


def _parent_name(proc: psutil.Process) -> str | None:
    try:
        parent = proc.parent()
        return parent.name() if parent else None
    except psutil.Error:
        return None


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children()
    except psutil.Error:
        return []


@dataclass
class Usage:
    """CPU seconds and peak resident memory per component over a measured interval."""

    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


class Sampler:
    """Samples CPU time and RSS of the components every ``interval`` seconds, in the background.

    CPU is summed per process as (last sample - first sample), so backends that start during the
    interval count from zero and PostgreSQL's background writers count too.
    """

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]], interval: float = 0.2) -> None:
        self.groups, self.interval = groups, interval
        self.seen: dict[str, dict[int, psutil.Process]] = {name: {} for name in groups}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak: dict[str, float] = {}
        self.started = 0.0
        self.initial = True
        self.task: asyncio.Task | None = None

    def _sample(self) -> None:
        for name, listing in self.groups.items():
            rss = 0
            for proc in listing():
                proc = self.seen[name].setdefault(proc.pid, proc)
                try:
                    with proc.oneshot():
                        times, mem = proc.cpu_times(), proc.memory_info()
                except psutil.Error:
                    continue  # exited: its CPU up to the last sample is kept
                cpu = times.user + times.system
                # A process born after the first sample counts from zero, not from when we saw it.
                self.first.setdefault(proc.pid, cpu if self.initial else 0.0)
                self.last[proc.pid] = cpu
                rss += mem.rss
            self.peak[name] = max(self.peak.get(name, 0), rss)
        self.initial = False

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Take the first sample and keep sampling."""
        self.started = time.perf_counter()
        self._sample()
        self.task = asyncio.create_task(self._loop())

    def mark(self) -> None:
        """Restart the CPU count here (e.g. once processes have started: imports are not the workload)."""
        self._sample()
        self.first = dict(self.last)
        self.started = time.perf_counter()

    def usage(self) -> Usage:
        """Take a sample and return the usage since start (or mark) up to now; sampling goes on."""
        self._sample()
        usage = Usage(wall_seconds=time.perf_counter() - self.started)
        for name, procs in self.seen.items():
            usage.cpu_seconds[name] = round(sum(self.last.get(pid, 0) - self.first.get(pid, 0) for pid in procs), 2)
            usage.peak_rss_mib[name] = round(self.peak.get(name, 0) / 2**20, 1)
        return usage

    async def stop(self) -> Usage:
        """Take the last sample and return the usage since start."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        return self.usage()

"""Stacks of the tests' own (a single node, a replicated stack, a PostgreSQL pair): a home under /tmp on free
ports, ALWAYS stopped and removed when the `with` ends, and reaped by the next session if pytest was killed.

Their JVMs and PostgreSQL servers run in sessions of their own (a developer's stack outlives its shell), so a
killed pytest run (SIGKILL, a CI timeout) cannot stop them in `finally`: each home is registered in
REGISTRY while its stack may run, and the next session (tests/conftest.py) stops the processes of every home
whose pytest is gone, by their pid files, then removes it. Homes are under /tmp as `vl-*`: run as root,
PostgreSQL runs as the `postgres` OS user, which must enter the home (pytest's tmp_path is 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from services.devtools.stack import postgres_standby, stack_down
from services.devtools.stack.common import StackConfig

T = TypeVar("T")
HOMES = Path("/tmp")
PREFIX = "vl-"
REGISTRY = HOMES / "vl-test-stacks"  # one file per home whose stack may run: {"home": ..., "pytest": pid}
# What a leftover stack's pid files name, and the signal that stops it at once (SIGQUIT: PostgreSQL's
# immediate shutdown, which takes its children along; a test's data is thrown away with the home anyway).
PID_FILES = (("kafka*.pid", signal.SIGKILL), ("pg-data/postmaster.pid", signal.SIGQUIT),
             ("pg-standby/postmaster.pid", signal.SIGQUIT))  # fmt: skip


def say(message: str) -> None:
    """The stack's progress lines, in the test's output."""
    print(f"[own stack] {message}", flush=True)


def new_home(prefix: str) -> Path:
    """A fresh home /tmp/<prefix>..., mode 0755."""
    assert prefix.startswith(PREFIX), f"a test stack's home is named {PREFIX}*, not {prefix}"
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=HOMES))
    home.chmod(0o755)
    return home


def stop_all(cfg: StackConfig) -> None:
    """Stop whatever the home runs: Kafka (its node or nodes), the primary and a standby."""
    try:
        stack_down(cfg, say)
    finally:
        postgres_standby.down(cfg, say)  # a pair started without `stack up` (nothing recorded in ports.json)


@contextmanager
def own_stack(
    prefix: str,
    config: Callable[[Path], StackConfig],
    start: Callable[[StackConfig], T],
    stop: Callable[[StackConfig], object] | None = None,
) -> Iterator[tuple[StackConfig, T]]:
    """Start a stack in a fresh home (config(home) gives its ports; start returns what the test needs); at
    the end stop (the given way, then stop_all, whatever failed) and remove the home."""
    home = new_home(prefix)
    entry = _register(home)
    cfg = config(home)
    try:
        yield cfg, start(cfg)
    finally:
        try:
            if stop is not None:
                stop(cfg)
        finally:
            try:
                stop_all(cfg)
            finally:
                shutil.rmtree(home, ignore_errors=True)
                entry.unlink(missing_ok=True)


def _register(home: Path) -> Path:
    REGISTRY.mkdir(exist_ok=True)
    entry = REGISTRY / f"{home.name}.json"
    entry.write_text(json.dumps({"home": str(home), "pytest": os.getpid()}) + "\n")
    return entry


def _runs(pid: int, word: bytes) -> bool:
    try:
        return word in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    # Any live process with the pid counts (an xdist worker's command line does not say pytest): at worst a
    # reused pid leaves a leftover for a later session, never kills a stack in use.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def reap(log: Callable[[str], None] = say) -> list[Path]:
    """Stop the processes of every registered home whose pytest is gone, and remove the home; return those."""
    reaped = []
    for entry in sorted(REGISTRY.glob("*.json")) if REGISTRY.is_dir() else []:
        try:
            found = json.loads(entry.read_text())
            home, owner = Path(found["home"]), int(found["pytest"])
        except (OSError, ValueError, KeyError):
            continue
        if home.parent != HOMES or not home.name.startswith(PREFIX) or _alive(owner):
            continue  # not a test home, or its session still runs (another session, or an xdist worker)
        for pattern, sig in PID_FILES:
            for pid_file in home.glob(pattern):
                try:
                    pid = int(pid_file.read_text().split("\n", 1)[0])
                except (OSError, ValueError):
                    continue
                if _runs(pid, str(home).encode()):  # still this home's process, not a reused pid
                    log(f"stopping pid {pid} left by a killed test run ({pid_file})")
                    os.kill(pid, sig)
        shutil.rmtree(home, ignore_errors=True)
        entry.unlink(missing_ok=True)
        reaped.append(home)
    return reaped

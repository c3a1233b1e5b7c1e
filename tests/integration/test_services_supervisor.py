"""`vote-ledger services run` (all): three child processes, stopped together and never orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import settings_env

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())", "services", "run"]


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with the service each runs (the last word of its command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline[5].decode() if len(cmdline) > 5 else "?"
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not been reaped and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def _serving(settings, log: Path) -> tuple[subprocess.Popen[bytes], dict[int, str]]:
    """Start `services run`, wait until the three services answer /healthz; the supervisor and its children."""
    ports = (settings.ledger_metrics_port, settings.projector_metrics_port, settings.api_port)
    with open(log, "wb") as out:  # a file, not a pipe: the children's logs would fill a pipe nobody reads
        proc = subprocess.Popen(
            COMMAND, env={**os.environ, **settings_env(settings)}, stderr=out, start_new_session=True
        )
    async with httpx.AsyncClient(timeout=2) as client:
        for port in ports:
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"nothing answers /healthz on {port}")
    return proc, children_of(proc.pid)


async def _gone(pids, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        await asyncio.sleep(0.1)
    return [p for p in pids if alive(p)]


async def test_services_run_starts_each_service_in_its_own_process_and_sigterm_stops_all_with_0(settings, tmp_path):
    proc, children = await _serving(settings, tmp_path / "services.log")
    try:
        assert sorted(children.values()) == ["api", "ledger", "projector"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, (tmp_path / "services.log").read_text()
        assert await _gone(children, 1) == []
    finally:
        proc.kill()


async def test_a_child_that_dies_stops_the_others_and_the_supervisor_says_which_with_its_status(settings, tmp_path):
    proc, children = await _serving(settings, tmp_path / "services.log")
    try:
        (api,) = [pid for pid, name in children.items() if name == "api"]
        os.kill(api, signal.SIGKILL)
        assert proc.wait(timeout=20) == 128 + signal.SIGKILL
        assert await _gone(children, 1) == []
        assert (tmp_path / "services.log").read_text().splitlines()[-1] == (
            "vote-ledger: the api service exited with status 137, killed by SIGKILL; stopped the others"
        )
    finally:
        proc.kill()


async def test_the_children_die_with_a_supervisor_killed_by_sigkill(settings, tmp_path):
    proc, children = await _serving(settings, tmp_path / "services.log")
    try:
        assert len(children) == 3
        proc.kill()
        proc.wait()
        assert await _gone(children, 10) == []  # they stop on SIGTERM from the kernel (PR_SET_PDEATHSIG)
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

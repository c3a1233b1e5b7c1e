"""End-to-end fixtures: the `vote-ledger` processes run as real subprocesses, like an operator would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import settings_env

REPO = Path(__file__).resolve().parents[2]
MEETING_FILE = REPO / "deploy" / "meetings" / "cbak-2023-agm.toml"


def cli() -> list[str]:
    """The installed console script, or the module if the venv's bin is not on PATH."""
    found = shutil.which("vote-ledger", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]


class Cli:
    """Runs `vote-ledger` subcommands and services against one test's settings."""

    def __init__(self, settings, tmp_path: Path) -> None:
        self.env = {**os.environ, **settings_env(settings)}
        self.logs = tmp_path
        self.procs: list[subprocess.Popen] = []

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a command to completion; fail the test with its output if it fails."""
        done = subprocess.run([*cli(), *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, (
            f"vote-ledger {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done

    def start(self, *args: str, name: str) -> subprocess.Popen:
        """Start a long-running command in the background, logging to a file."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([*cli(), *args], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every background process (SIGTERM, then SIGKILL)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def vote_ledger(settings, tmp_path):
    """A `vote-ledger` runner bound to this test's database and topics."""
    runner = Cli(settings, tmp_path)
    yield runner
    runner.stop_all()


async def log_rows(dsn: str, sql: str):
    """Rows of a query on the test's database."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()

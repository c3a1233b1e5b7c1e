"""A test stack whose pytest was killed is stopped by the next session (tests/own_stack.py's reaper)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests import own_stack


def _leftover(home, owner: int) -> subprocess.Popen[bytes]:
    """A process whose command line names the home's properties file, as a broker's does, and its pid file."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", str(home / "kafka-server-1.properties")],
        start_new_session=True,  # as the stack's JVMs: out of the test's session, so no signal reaches it
    )
    deadline = time.monotonic() + 10
    while not own_stack._runs(proc.pid, str(home).encode()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the child has exec'd (before, its command line is this process's)
    (home / "kafka-1.pid").write_text(f"{proc.pid}\n")
    entry = own_stack.REGISTRY / f"{home.name}.json"
    own_stack.REGISTRY.mkdir(exist_ok=True)
    entry.write_text(json.dumps({"home": str(home), "pytest": owner}))
    return proc


def _gone_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_the_next_session_stops_a_killed_runs_broker_and_removes_its_home():
    home = own_stack.new_home("vl-reaper-test-")
    proc = _leftover(home, owner=_gone_pid())
    try:
        assert home in own_stack.reap(print)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode is not None, "the leftover process still runs"
        assert not home.exists()
        assert not (own_stack.REGISTRY / f"{home.name}.json").exists()
    finally:
        proc.kill()


def test_a_home_whose_session_still_runs_is_left_alone():
    home = own_stack.new_home("vl-reaper-test-")
    proc = _leftover(home, owner=own_stack.os.getpid())  # this session: alive
    try:
        assert home not in own_stack.reap(print)
        assert proc.poll() is None and home.exists()
    finally:
        proc.kill()
        proc.wait()
        (own_stack.REGISTRY / f"{home.name}.json").unlink(missing_ok=True)
        own_stack.shutil.rmtree(home, ignore_errors=True)

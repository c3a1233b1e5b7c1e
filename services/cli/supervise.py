"""`services run all`: the ledger, the projector and the API as three child processes of one supervisor.

One process per service so no read can stall ingest: in one event loop, 15 concurrent `tally?as_of=`
replays (pure Python) held the loop for 10-20 s, the ledger's Kafka heartbeat expired (rebalance) and
ingest stopped ~40 s (issue 13, adversarial test). The children die with the supervisor even on its
SIGKILL (PR_SET_PDEATHSIG on Linux), so a killed supervisor orphans no service holding ports and the
ledger's consumer group membership.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

SERVICES = ("ledger", "projector", "api")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# A child asked to stop gets this long before SIGKILL: the e2e fixtures give the supervisor 15 s.
STOP_TIMEOUT_S = 10.0
CHILD = "import sys; from services.cli import main; sys.exit(main())"


def child_argv(which: str, verbose: bool) -> list[str]:
    """The command line of one service's child: this interpreter running `vote-ledger services run <which>`."""
    return [sys.executable, "-c", CHILD, "services", "run", which, *(["-v"] if verbose else [])]


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the kernel sends the child SIGTERM when the supervisor dies, however it dies."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def exit_status(code: int) -> int:
    """A Popen return code as a shell exit status (killed by signal N: 128 + N)."""
    return 128 - code if code < 0 else code


def supervise(which: Sequence[str], verbose: bool, say: Callable[[str], None]) -> int:
    """Start one child per service, forward SIGINT/SIGTERM; the first child to exit stops the others.

    Returns 0 when every child stopped cleanly after a forwarded signal, else the first exit's status (1
    if a child exited 0 unasked), and says one line naming the service that stopped first (``say``: plain
    text, or a JSON log line when the logs are JSON).
    """
    children: dict[str, subprocess.Popen[bytes]] = {}
    words: dict[str, ChildWords] = {}
    asked: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        asked.append(signum)
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name in which:
            if asked:
                break
            # Own process group: a terminal's Ctrl-C reaches the supervisor alone, which forwards it once.
            children[name] = subprocess.Popen(
                child_argv(name, verbose),
                preexec_fn=_die_with(os.getpid()),
                process_group=0,
                stderr=subprocess.PIPE,  # passed through line by line; its last words kept (ChildWords)
            )
            words[name] = ChildWords(children[name])
        first = _first_exit(children)
        _stop_rest(children, signalled=bool(asked))
        for told in words.values():
            told.join()
        if first is None:
            return 0
        name, code = first
        if asked and code == 0:
            return next((exit_status(p.returncode) for p in children.values() if p.returncode), 0)
        status = exit_status(code) or 1
        say(f"the {name} service exited with status {exit_status(code)}{words[name].why(code)}; stopped the others")
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_WRITE = threading.Lock()  # one child's line at a time on the supervisor's stderr


class ChildWords:
    """Copies a child's stderr to the supervisor's, line by line, keeping its fatal line (why it exited).

    Before, `services run` said only "the ledger service exited with status 2": the reason was some lines
    above, among the other children's logs. A child ends with one line when it cannot go on ("vote-ledger:
    ...", or a JSON log line of the logger vote_ledger.cli when the logs are JSON): the supervisor repeats it.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.last = ""
        self._thread = threading.Thread(target=self._copy, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _copy(self, stream) -> None:
        for line in iter(stream.readline, b""):
            with _WRITE:
                try:
                    sys.stderr.buffer.write(line)
                    sys.stderr.buffer.flush()
                except (OSError, ValueError):  # the supervisor's stderr is gone: keep draining the child's
                    pass
            if said := fatal_line(line.decode("utf-8", "replace")):
                self.last = said
        stream.close()

    def join(self, timeout: float = 2.0) -> None:
        """Wait (a little) for the child's last lines to be copied."""
        self._thread.join(timeout)

    def why(self, code: int) -> str:
        """ ": <its fatal line>", ", killed by SIGKILL", or "" when it said nothing."""
        if self.last:
            return f": {self.last}"
        if code < 0:
            try:
                return f", killed by {signal.Signals(-code).name}"
            except ValueError:
                return ""
        return ""


def fatal_line(line: str) -> str:
    """The message of a child's closing line ("vote-ledger: ..." or vote_ledger.cli's JSON line), else ""."""
    line = line.strip()
    if line.startswith("vote-ledger: "):
        return line.removeprefix("vote-ledger: ")
    if line.startswith("{") and '"vote_ledger.cli"' in line:
        try:
            record = json.loads(line)
        except ValueError:
            return ""
        if record.get("logger") == "vote_ledger.cli":
            return str(record.get("event", ""))
    return ""


def _first_exit(children: dict[str, subprocess.Popen[bytes]]) -> tuple[str, int] | None:
    while children:
        for name, proc in children.items():
            if (code := proc.poll()) is not None:
                return name, code
        time.sleep(0.1)  # a signal handler runs between sleeps; 0.1 s is the supervisor's only delay
    return None


def _stop_rest(children: dict[str, subprocess.Popen[bytes]], signalled: bool) -> None:
    # Once each: a second SIGTERM to a child already stopping (its handler gone) would kill it mid-shutdown.
    for proc in children.values():
        if proc.poll() is None and not signalled:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

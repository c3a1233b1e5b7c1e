"""The local stack's PostgreSQL binaries: find (or install) them, run them as the database's OS user, pg_ctl."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from services.devtools.stack.common import Log, StackConfig, StackError, log_tail, say

OS_USER = "postgres"


def is_root() -> bool:
    """Whether we run as root (PostgreSQL then runs as the `postgres` OS user)."""
    return os.geteuid() == 0


def as_db_user(cmd: list[str]) -> list[str]:
    """The command as the OS user PostgreSQL runs as (itself unless we are root)."""
    # PostgreSQL refuses to run as root, so as root run it as the `postgres` OS user.
    return ["runuser", "-u", OS_USER, "--", *cmd] if is_root() else cmd


def _has_server(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir(cfg: StackConfig) -> Path | None:
    """PostgreSQL server binaries: the data dir's major version first, else the newest found."""
    wanted = None
    try:
        wanted = (cfg.pg_data / "PG_VERSION").read_text().strip()
    except OSError:
        pass
    candidates: list[Path] = []
    if cfg.pg_bindir:
        candidates.append(cfg.pg_bindir)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    # Debian keeps server binaries off PATH, one folder per major version.
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    found = [c for c in candidates if _has_server(c)]
    if wanted:
        # An existing cluster only starts with the major version that created it.
        matching = [c for c in found if major_version(c) == wanted]
        if found and not matching:
            raise StackError(
                f"{cfg.pg_data} was created by PostgreSQL {wanted}, but only "
                f"{', '.join(sorted({major_version(c) for c in found}))} is installed; install "
                f"postgresql-{wanted} or remove {cfg.pg_data}"
            )
        found = matching
    return found[0] if found else None


def major_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    found = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return found.group(1) if found else "?"


def ensure_bindir(cfg: StackConfig, log: Log) -> Path:
    """Find the server binaries, installing Debian's `postgresql` package when we are root."""
    bindir = find_bindir(cfg)
    if bindir is not None:
        return bindir
    if is_root() and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        log("PostgreSQL is missing; running `apt-get update && apt-get install -y postgresql`")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            if subprocess.run(cmd, env=env).returncode != 0:
                raise StackError(f"`{' '.join(cmd)}` failed; install PostgreSQL by hand")
        bindir = find_bindir(cfg)
    if bindir is None:
        raise StackError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found: install PostgreSQL, "
            "e.g. `apt-get install postgresql`, or set VOTE_LEDGER_PG_BINDIR"
        )
    return bindir


def give_to_db_user(*paths: Path) -> None:
    """Make the paths the `postgres` OS user's when we are root."""
    if is_root():
        for path in paths:
            shutil.chown(path, OS_USER, OS_USER)


def pg_ctl(cfg: StackConfig, data: Path, logfile: Path | None, *args: str, failure: str = "") -> None:
    """Run pg_ctl on the data folder as the database's OS user; StackError with its output (and the log's tail)."""
    bindir = ensure_bindir(cfg, say)
    cmd = [str(bindir / "pg_ctl"), "-D", str(data), *(["-l", str(logfile)] if logfile else []), *args]
    # cwd=home: as the postgres user, the caller's cwd (e.g. /root) may be unreadable.
    run = subprocess.run(as_db_user(cmd), capture_output=True, text=True, cwd=cfg.home)
    if run.returncode != 0:
        tail = log_tail(logfile) if logfile else ""
        raise StackError(f"{failure or f'pg_ctl {args[-1]} failed for {data}'}:\n{run.stdout}{run.stderr}{tail}")

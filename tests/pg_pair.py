"""A PostgreSQL primary + hot standby of the tests' own (services/devtools/stack/postgres_standby.py).

Each pair lives in its own home under /tmp on free ports and is ALWAYS stopped (and its home removed)
when the `with` ends, even on failure. As root the servers run as the `postgres` OS user, which must be
able to enter the home: hence /tmp and mode 0755, not pytest's 0700 tmp_path.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.devtools.stack import postgres_standby
from services.devtools.stack.common import StackConfig
from services.local_stack import Endpoints, served_endpoints
from tests.conftest import CLI, free_port
from tests.own_stack import own_stack

REPO = Path(__file__).resolve().parents[1]


def free_port_pair() -> int:
    """A port p on 127.0.0.1 with p and p + 1 both free now (the primary's and the standby's)."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports found")


def say(message: str) -> None:
    """The stack's progress lines, in the test's output."""
    print(f"[pair] {message}", flush=True)


@contextmanager
def running_pair(prefix: str = "vl-pair-") -> Iterator[StackConfig]:
    """Start a primary + synchronous hot standby in a fresh home; stop both and remove the home at the end."""
    # Kafka's ports are never used (no broker starts); taken free so nothing points at a real one.
    with own_stack(
        prefix,
        lambda home: StackConfig(home, REPO / ".cache", free_port(), free_port(), free_port_pair()),
        lambda cfg: postgres_standby.up(cfg, say),
    ) as (cfg, _):
        yield cfg


def primary_dsns(cfg: StackConfig) -> Endpoints:
    """Every login's DSN on the pair's primary (the stack's database)."""
    from services.devtools.stack import postgres

    return served_endpoints(cfg.kafka_port, cfg.pg_port, postgres.passwords(cfg))


def db_migrate(owner_dsn: str) -> None:
    """`vote-ledger db migrate` as the owner login, as an operator runs it."""
    env = {"PATH": "/usr/bin:/bin", "VOTE_LEDGER_PG_DSN": owner_dsn, "HOME": str(Path.home())}
    run = subprocess.run([*CLI, "db", "migrate"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"db migrate failed:\n{run.stdout}\n{run.stderr}"


def on_pair(settings, endpoints: Endpoints, database: str, **update):
    """The settings (Kafka, topics, ports) with every PostgreSQL DSN on these endpoints' server and database."""
    from services.adapters.postgres.connect import on_database
    from services.adapters.postgres.migrate import dsn_for

    moved = settings.model_copy(
        update={
            "pg_dsn": endpoints.pg_dsn,
            "pg_ledger_dsn": endpoints.pg_ledger_dsn,
            "pg_projector_dsn": endpoints.pg_projector_dsn,
            "pg_reader_dsn": endpoints.pg_reader_dsn,
            "pg_admin_dsn": dsn_for(endpoints.pg_admin_dsn, database),
            **update,
        }
    )
    return on_database(moved, database)


async def own_database(settings, pair: StackConfig, prefix: str, **update):
    """Settings on a fresh database of the pair's primary: owned by the owner login, hardened, `db migrate`d."""
    import asyncio
    import uuid

    import asyncpg

    from services.adapters.postgres.logins import harden_database
    from services.adapters.postgres.migrate import dsn_for
    from services.local_stack import LOGIN_PREFIX

    server = primary_dsns(pair)
    database = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}" OWNER "{LOGIN_PREFIX}owner"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn_for(server.pg_admin_dsn, database))
    try:
        await harden_database(conn)  # as `stack up` does for its database
    finally:
        await conn.close()
    cfg = on_pair(settings, server, database, **update)
    await asyncio.to_thread(db_migrate, cfg.pg_dsn)
    return cfg

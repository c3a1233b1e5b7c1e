"""Fixtures shared by the tiers: real services for integration and e2e tests, isolated per test.

Services are chosen in order: VOTE_LEDGER_KAFKA_BOOTSTRAP + VOTE_LEDGER_PG_DSN from the
environment; testcontainers when a Docker engine answers; otherwise the project's local stack
(deploy/local, started on demand). Each test gets its own database and its own topic namespace.

Tests connect with the superuser (VOTE_LEDGER_PG_ADMIN_DSN, else VOTE_LEDGER_PG_DSN): it creates
their databases and plays the attacker in the tamper tests. The services under test log in as their
own logins: VOTE_LEDGER_PG_LEDGER_DSN, _PROJECTOR_DSN and _READER_DSN when set (`stack up` prints
them), else logins this session makes with the superuser and drops at its end.

Kafka likewise: on a broker that requires logins (the local stack, or VOTE_LEDGER_KAFKA_*_LOGIN set),
the tests and the services under test connect as the operator, its super user, whatever their role;
tests/integration/test_kafka_acl.py is where each role's own login and ACLs are put to the test.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.adapters.postgres.connect import dsn_env, on_database
from services.adapters.postgres.logins import harden_database, service_logins
from services.adapters.postgres.migrate import temporary_database
from services.settings import KAFKA_ROLES, Settings, kafka_login_env


@pytest.fixture(scope="session")
def endpoints():
    """Kafka and PostgreSQL for the whole session (see the module docstring for the order)."""
    from services.devtools.stack import resolve_endpoints

    found, source = resolve_endpoints()
    host = found.pg_dsn.rsplit("@", 1)[-1]  # no password in the output
    print(f"\nservices from {source}: kafka {found.kafka_bootstrap}, postgres {host}")
    return found


def as_operator(endpoints) -> dict[str, str | None]:
    """Settings fields that make every Kafka role log in as the operator (all None on a broker without logins)."""
    return dict.fromkeys((f"kafka_{role}_login" for role in KAFKA_ROLES), endpoints.kafka_operator_login)


@pytest.fixture(scope="session")
async def logins(endpoints) -> Settings:
    """The session's PostgreSQL logins: the superuser for the tests themselves, one login per service."""
    base = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        pg_dsn=endpoints.pg_admin_dsn or endpoints.pg_dsn,
        pg_ledger_dsn=endpoints.pg_ledger_dsn,
        pg_projector_dsn=endpoints.pg_projector_dsn,
        pg_reader_dsn=endpoints.pg_reader_dsn,
        submission_partitions=4,
        **as_operator(endpoints),
    )
    async with service_logins(base, f"vl_t{uuid.uuid4().hex[:8]}_") as cfg:
        yield cfg


@pytest.fixture
async def pg_dsn(logins):
    """A fresh, migrated database for one test (the superuser's DSN), hardened, dropped afterwards."""
    async with temporary_database(logins.pg_dsn, "t_") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            if conn.get_settings().is_superuser == "on":  # as `stack up` does for its database
                await harden_database(conn)
        finally:
            await conn.close()
        yield dsn


@pytest.fixture
async def settings(logins, pg_dsn):
    """Settings pointing at the session's Kafka, this test's database (every login) and its own topics."""
    tag = uuid.uuid4().hex[:10]
    cfg = on_database(logins, urlsplit(pg_dsn).path.lstrip("/")).model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "consumer_group": f"vote-ledger-{tag}",
            # Never 8470-8472 (a developer's running services): each test's servers on ports free now.
            "api_port": free_port(),
            "ledger_metrics_port": free_port(),
            "projector_metrics_port": free_port(),
        }
    )
    from services.adapters.kafka.topics import ensure_topics
    from services.devtools.bench.scratch import drop_topics

    await ensure_topics(cfg)
    yield cfg
    # The test's topics go with it: left behind, a shared stack gathered ~20,000 partition folders over the
    # weeks and its broker ran out of open files. Best effort: a test may have left the broker unreachable.
    try:
        await asyncio.wait_for(drop_topics(cfg), 15)
    except Exception:  # noqa: BLE001 - never fails the test that already passed
        pass


# `vote-ledger` as a subprocess, from this checkout's interpreter (no console script needed on PATH).
CLI = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0, read, closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(cfg: Settings) -> dict[str, str]:
    """Environment variables that make a `vote-ledger` subprocess use these settings."""
    return {
        "VOTE_LEDGER_KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        **dsn_env(cfg),
        "VOTE_LEDGER_TOPIC_PREFIX": cfg.topic_prefix,
        "VOTE_LEDGER_CONSUMER_GROUP": cfg.consumer_group,
        "VOTE_LEDGER_API_PORT": str(cfg.api_port),
        "VOTE_LEDGER_LEDGER_METRICS_PORT": str(cfg.ledger_metrics_port),
        "VOTE_LEDGER_PROJECTOR_METRICS_PORT": str(cfg.projector_metrics_port),
        **kafka_login_env(cfg),
    }


@pytest.fixture
async def bench_namespace(logins):
    """Benchmark settings on the session's services, in a fresh topic namespace dropped afterwards."""
    from services.devtools.bench import scratch

    cfg = scratch.scratch_settings(logins, logins.pg_dsn, "t")
    yield cfg
    await scratch.drop_topics(cfg)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop the test stacks (JVMs, PostgreSQL servers) an earlier, killed run left behind (tests/own_stack.py)."""
    from tests.own_stack import reap

    reap()

"""Fixtures shared by the tiers: real services for integration and e2e tests, isolated per test.

Services are chosen in order: VOTE_LEDGER_KAFKA_BOOTSTRAP + VOTE_LEDGER_PG_DSN from the
environment; testcontainers when a Docker engine answers; otherwise the project's local stack
(deploy/local, started on demand). Each test gets its own database and its own topic namespace.
"""

from __future__ import annotations

import uuid

import pytest

from services.config import Settings
from services.postgres.migrate import temporary_database


@pytest.fixture(scope="session")
def endpoints():
    """Kafka and PostgreSQL for the whole session (see the module docstring for the order)."""
    from services.stack import resolve_endpoints

    found, source = resolve_endpoints()
    print(f"\nservices from {source}: kafka {found.kafka_bootstrap}, postgres {found.pg_dsn}")
    return found


@pytest.fixture
async def pg_dsn(endpoints):
    """A fresh, migrated database for one test, dropped afterwards."""
    async with temporary_database(endpoints.pg_dsn, "t_") as dsn:
        yield dsn


@pytest.fixture
async def settings(endpoints, pg_dsn) -> Settings:
    """Settings pointing at the session's Kafka, this test's database and its own topics."""
    tag = uuid.uuid4().hex[:10]
    cfg = Settings(kafka_bootstrap=endpoints.kafka_bootstrap, pg_dsn=pg_dsn, topic_prefix=f"t{tag}.",
                   consumer_group=f"vote-ledger-{tag}", submission_partitions=4)
    from services.kafka_io import ensure_topics

    await ensure_topics(cfg)
    return cfg


def settings_env(cfg: Settings) -> dict[str, str]:
    """Environment variables that make a `vote-ledger` subprocess use these settings."""
    return {
        "VOTE_LEDGER_KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        "VOTE_LEDGER_PG_DSN": cfg.pg_dsn,
        "VOTE_LEDGER_TOPIC_PREFIX": cfg.topic_prefix,
        "VOTE_LEDGER_CONSUMER_GROUP": cfg.consumer_group,
    }


@pytest.fixture
async def bench_namespace(endpoints):
    """Benchmark settings on the session's services, in a fresh topic namespace dropped afterwards."""
    from services.bench import scratch

    base = Settings(kafka_bootstrap=endpoints.kafka_bootstrap, pg_dsn=endpoints.pg_dsn, submission_partitions=4)
    cfg = scratch.scratch_settings(base, endpoints.pg_dsn, "t")
    yield cfg
    await scratch.drop_topics(cfg)

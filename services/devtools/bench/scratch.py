"""Scratch databases and topic namespaces, so a benchmark never touches an operator's log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from aiokafka.admin import AIOKafkaAdminClient

from services.adapters.kafka.topics import client_options, ensure_topics, producer, publish_raw
from services.adapters.postgres.connect import on_database
from services.adapters.postgres.migrate import temporary_database
from services.devtools.bench.processes import free_port
from services.settings import LOGIN_FIELDS, Settings


@asynccontextmanager
async def scratch_database(settings: Settings, name: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """Create a database for one measurement (with our schema unless told not to), drop it after."""
    async with temporary_database(settings.pg_dsn, f"bench_{name}_", migrated=migrated) as dsn:
        yield dsn


def scratch_settings(settings: Settings, dsn: str, name: str) -> Settings:
    """Settings pointing at a scratch database (every login), a fresh topic namespace and consumer group, free ports."""
    tag = f"{name}{uuid.uuid4().hex[:8]}"
    database = urlsplit(dsn).path.lstrip("/")
    return on_database(settings, database).model_copy(
        update={
            "topic_prefix": f"bench.{tag}.",
            "consumer_group": f"bench-{tag}",
            # The API's and the metrics' defaults (8470-8472) are a developer's running services: never those.
            "api_port": free_port(),
            "ledger_metrics_port": free_port(),
            "projector_metrics_port": free_port(),
            **as_operator(settings),
        }
    )


def as_operator(settings: Settings) -> dict:
    """Every Kafka role's login set to the operator's, when there is one (as the tests' services run).

    The roles' ACLs name the configured topics (services/adapters/kafka/acl.py); a scratch namespace's
    topics are not among them, so the measured ledger got TopicAuthorizationFailed on a broker with logins
    (the local stack since issue 11). The operator is the broker's super user: no ACL is checked for it.
    """
    operator = settings.kafka_operator_login
    return dict.fromkeys(LOGIN_FIELDS, operator) if operator is not None else {}


async def publish_workload(
    settings: Settings, admin: list[tuple[bytes, bytes]], submissions: list[tuple[bytes, bytes]]
) -> None:
    """Create the namespace's topics and publish the workload's exact bytes (admin first)."""
    await ensure_topics(settings)
    async with producer(settings) as client:
        await publish_raw(client, settings.admin_topic, admin)
        await publish_raw(client, settings.submissions_topic, submissions)


async def drop_topics(settings: Settings) -> None:
    """Delete a scratch namespace's topics (a 1M-submission run leaves ~0.5 GB on the broker).

    Its consumer groups stay: aiokafka's admin client cannot delete groups; the broker expires
    their offsets after offsets.retention.minutes (7 days by default).
    """
    admin = AIOKafkaAdminClient(**client_options(settings, "operator"))  # only the operator may delete topics
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in existing if t.startswith(settings.topic_prefix)] if settings.topic_prefix else []
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_namespace(settings: Settings, name: str) -> AsyncIterator[Settings]:
    """A migrated scratch database and a fresh topic namespace, as settings; both removed after."""
    async with scratch_database(settings, name) as dsn:
        cfg = scratch_settings(settings, dsn, name)
        try:
            yield cfg
        finally:
            await drop_topics(cfg)

"""Lifecycle of the local stack (`vote-ledger stack up/down/status`) on its own home and ports.

Opt-in with VOTE_LEDGER_TEST_STACK_LIFECYCLE=1: the rest of the suite shares one
running stack, and this module starts and stops a second one beside it (on free
ports). The jar cache is shared, so after the first fetch this needs
no network. The tests run in file order: up, use, down.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from services.devtools.stack import Endpoints, StackConfig, add_principal, stack_down, stack_status, stack_up
from services.settings import Settings
from tests.conftest import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("VOTE_LEDGER_TEST_STACK_LIFECYCLE") != "1",
        reason="set VOTE_LEDGER_TEST_STACK_LIFECYCLE=1 to start and stop a second local stack",
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout's jar cache, shared with the running stack
# Free ports (not fixed ones: another stack on this machine may hold those, as one did on 29092 and 25432).
PORTS = {"kafka_port": free_port(), "kafka_controller_port": free_port(), "pg_port": free_port()}
KAFKA = f"127.0.0.1:{PORTS['kafka_port']}"
PG = f"127.0.0.1:{PORTS['pg_port']}"


@pytest.fixture(scope="module")
def cfg():
    # Not pytest's tmp_path: its root is mode 0700, and as root PostgreSQL runs as
    # the `postgres` user, which must be able to reach the data folder.
    home = Path(tempfile.mkdtemp(prefix="vote-ledger-stack-test-"))
    home.chmod(0o755)
    config = StackConfig.from_env(
        home=home,
        cache=os.environ.get("VOTE_LEDGER_CACHE") or REPO_ROOT / ".cache",
        **PORTS,
    )
    yield config
    stack_down(config)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def endpoints(cfg: StackConfig) -> Endpoints:
    return stack_up(cfg)


def as_operator(endpoints: Endpoints) -> dict:
    """aiokafka options logging in as the stack's operator (its super user)."""
    from services.adapters.kafka.topics import client_options

    return client_options(
        Settings(kafka_bootstrap=endpoints.kafka_bootstrap, kafka_operator_login=endpoints.kafka_operator_login),
        "operator",
    )


def test_stack_up_reports_both_services_running_on_the_chosen_ports(cfg, endpoints):
    status = stack_status(cfg)

    assert endpoints.kafka_bootstrap == KAFKA
    assert endpoints.pg_dsn.startswith("postgresql://vl_owner:")
    assert endpoints.pg_ledger_dsn.startswith("postgresql://vl_ledger:")
    assert endpoints.pg_dsn.endswith(f"@{PG}/vote_ledger")
    assert (cfg.pg_passwords.stat().st_mode & 0o777) == 0o600
    assert status["kafka"]["running"] and status["kafka"]["pid"]
    assert status["postgres"]["running"] and status["postgres"]["pid"]
    assert status["kafka"]["address"] == KAFKA
    assert status["postgres"]["data_dir"] == str(cfg.home / "pg-data")
    assert status["kafka_version"] == cfg.kafka_version
    # Recorded in the home, so status, down and the fallback find a stack on other ports than the defaults.
    assert json.loads((cfg.home / "ports.json").read_text()) == PORTS | {"replicated": False}  # single-node mode
    # Kafka requires a login: one per role, their passwords (and the operator's in the broker's own
    # configuration) readable by the owner only.
    assert endpoints.kafka_operator_login.startswith("operator:")
    assert endpoints.kafka_ledger_login.startswith("ledger:")
    assert endpoints.kafka_admin_login.startswith("admin:")
    assert endpoints.kafka_channel_login.startswith("channel-demo:")
    for private in ("kafka-passwords.json", "kafka-server.properties"):
        assert ((cfg.home / private).stat().st_mode & 0o777) == 0o600
    assert "VOTE_LEDGER_KAFKA_CHANNEL_LOGIN" in endpoints.exports()


def test_stack_up_twice_returns_the_same_running_services(cfg, endpoints):
    before = stack_status(cfg)

    again = stack_up(cfg)

    after = stack_status(cfg)
    assert again == endpoints
    assert after["kafka"]["pid"] == before["kafka"]["pid"]
    assert after["postgres"]["pid"] == before["postgres"]["pid"]


async def test_kafka_round_trips_messages_through_an_explicitly_created_topic(endpoints):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**as_operator(endpoints))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        producer = AIOKafkaProducer(**as_operator(endpoints), acks="all")
        await producer.start()
        try:
            for i in range(8):
                await producer.send_and_wait(topic, f"vote-{i}".encode(), key=str(i).encode())
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            **as_operator(endpoints),
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        received: list[str] = []
        try:
            for _ in range(60):
                batches = await consumer.getmany(timeout_ms=500)
                received += [m.value.decode() for msgs in batches.values() for m in msgs]
                if len(received) >= 8:
                    break
        finally:
            await consumer.stop()
        assert sorted(received) == [f"vote-{i}" for i in range(8)]
    finally:
        await admin.close()


async def test_kafka_does_not_create_topics_on_first_use(endpoints):
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    topic = f"never-created-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**as_operator(endpoints), request_timeout_ms=2000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(topic, b"lost")
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(**as_operator(endpoints))
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_postgres_answers_select_one_in_the_vote_ledger_database(endpoints):
    import asyncpg

    conn = await asyncpg.connect(endpoints.pg_dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "vote_ledger"
    finally:
        await conn.close()


async def test_postgres_refuses_a_login_without_its_password(endpoints):
    import asyncpg

    for dsn in (endpoints.pg_admin_dsn, endpoints.pg_reader_dsn):
        user = dsn.split("//", 1)[1].split(":", 1)[0]
        with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            await asyncpg.connect(f"postgresql://{user}@{PG}/vote_ledger", password="wrong", timeout=10)


async def test_a_stack_from_before_logins_is_converted_on_its_next_up(cfg, endpoints):
    import asyncpg

    from services.adapters.postgres.logins import adopt_database
    from services.adapters.postgres.migrate import migrate

    # As an earlier `stack up` left it: every login trusted, no passwords file, the database and
    # its schema owned by the superuser that migrated it.
    admin = await asyncpg.connect(endpoints.pg_admin_dsn, timeout=10)
    try:
        await migrate(admin)
        await adopt_database(admin, "postgres")
        (cfg.pg_data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    cfg.pg_passwords.unlink()
    trusted = await asyncpg.connect(f"postgresql://postgres@{PG}/vote_ledger", timeout=10)
    await trusted.close()

    converted = stack_up(cfg)

    assert converted.pg_admin_dsn != endpoints.pg_admin_dsn  # fresh passwords
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres@{PG}/vote_ledger", password="guess", timeout=10)
    owner = await asyncpg.connect(converted.pg_dsn, timeout=10)
    try:
        assert (
            await owner.fetchval("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ledger_log'::regclass")
            == "vl_owner"
        )
        assert await migrate(owner) == []  # the owner login migrates on
    finally:
        await owner.close()
    reader = await asyncpg.connect(converted.pg_reader_dsn, timeout=10)
    try:
        assert await reader.fetchval("SELECT count(*) FROM ledger_log") == 0
    finally:
        await reader.close()


async def test_kafka_refuses_a_client_without_a_login_and_a_channel_writing_meeting_administration(endpoints):
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

    from services.adapters.kafka.topics import ensure_topics, producer

    anonymous = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap, request_timeout_ms=2000)
    with pytest.raises(KafkaConnectionError):
        await anonymous.start()
    await anonymous.stop()
    stack = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        kafka_ledger_login=endpoints.kafka_ledger_login,
        kafka_channel_login=endpoints.kafka_channel_login,
    )
    await ensure_topics(stack, "ledger")  # the ledger's ACLs (granted by stack up) let it create its topics
    async with producer(stack, "channel", request_timeout_ms=5000) as client:
        await client.send_and_wait(stack.submissions_topic, b"{}")
        with pytest.raises(TopicAuthorizationFailedError):
            await client.send_and_wait(stack.admin_topic, b"{}")


async def test_a_principal_added_to_the_stack_logs_in_with_its_printed_password_and_its_roles_acls(cfg, endpoints):
    from aiokafka.errors import TopicAuthorizationFailedError

    from services.adapters.kafka.topics import producer

    password = add_principal(cfg, "channel-acme", "channel", log=lambda _line: None)
    acme = Settings(kafka_bootstrap=endpoints.kafka_bootstrap, kafka_channel_login=f"channel-acme:{password}")
    async with producer(acme, "channel", request_timeout_ms=5000) as client:
        await client.send_and_wait(acme.submissions_topic, b"{}")
        with pytest.raises(TopicAuthorizationFailedError):
            await client.send_and_wait(acme.admin_topic, b"{}")
    with pytest.raises(Exception, match="one of the stack's own principals"):
        add_principal(cfg, "operator", "channel")


def test_kafka_storage_formatted_without_logins_is_moved_aside_and_formatted_anew(cfg, endpoints):
    from services.devtools.stack import kafka

    # As a stack from before Kafka required logins left it: no logins file, storage without the marker.
    kafka.stop(cfg, log=lambda _line: None)
    (cfg.kafka_data / kafka.AUTH_MARKER).unlink()
    (cfg.home / "kafka-passwords.json").unlink()

    again = stack_up(cfg)

    assert [p.name.startswith("kafka-data.unauthenticated-") for p in cfg.home.glob("kafka-data.*")] == [True]
    assert again.kafka_operator_login.startswith("operator:")
    assert again.kafka_operator_login != endpoints.kafka_operator_login  # fresh passwords, a fresh cluster


def test_stack_down_stops_both_services_and_can_be_repeated(cfg, endpoints):
    stack_down(cfg)
    stack_down(cfg)

    status = stack_status(cfg)
    assert not status["kafka"]["running"] and status["kafka"]["pid"] is None
    assert not status["postgres"]["running"] and status["postgres"]["pid"] is None

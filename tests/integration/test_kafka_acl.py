"""The broker itself enforces who may write (issue 11): logins and ACLs, through the real broker.

Each test grants the stack's ledger, admin and channel principals their role's ACLs on its own topic
namespace (acl.role_acls with the test's prefix and consumer group), acts as one of them, and checks
with the operator's login what landed. Skipped on a broker without logins (testcontainers, or an
environment naming a broker but no VOTE_LEDGER_KAFKA_*_LOGIN).
"""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from pydantic import SecretStr

from events import encode
from services.adapters.kafka import acl
from services.adapters.kafka.topics import client_options, partitions_of, producer, publish
from services.settings import KAFKA_ROLES, Settings
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration

TOPIC_AUTHORIZATION_FAILED = 29  # Kafka's error code


@pytest.fixture
def role_logins(endpoints) -> dict[str, str]:
    """Each role's login on the broker in use; skips (before any database is made) on a broker without logins."""
    logins = {role: getattr(endpoints, f"kafka_{role}_login") for role in KAFKA_ROLES}
    if not all(logins.values()):
        pytest.skip(
            "the Kafka in use has no SASL logins for every role (a testcontainer, or no VOTE_LEDGER_KAFKA_*_LOGIN)"
        )
    return logins


@pytest.fixture
async def principals(role_logins, settings: Settings):
    """The test's settings with each role's own login (no operator's), its ACLs granted on the test's topics."""
    logins = role_logins
    users = {role: login.partition(":")[0] for role, login in logins.items()}
    for role in acl.GRANTABLE:
        await acl.grant(settings, role, users[role])  # as the operator, whom the test's settings log in as
    own = settings.model_copy(
        update={
            "kafka_operator_login": None,
            **{f"kafka_{role}_login": SecretStr(logins[role]) for role in acl.GRANTABLE},
        }
    )
    try:
        yield own
    finally:
        for role in acl.GRANTABLE:
            await acl.revoke(settings, role, users[role])


async def end_offset(settings: Settings, topic: str) -> int:
    """How many records a topic holds (its partitions' end offsets added up), read as the operator."""
    partitions = await partitions_of(settings, [topic], "operator")
    consumer = AIOKafkaConsumer(**client_options(settings, "operator"))
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_a_producer_without_a_login_is_refused_by_the_broker(principals, settings):
    anonymous = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await anonymous.start()
    await anonymous.stop()
    assert await end_offset(settings, settings.submissions_topic) == 0


async def test_a_producer_with_a_wrong_password_is_refused_by_the_broker(principals, settings):
    user = principals.kafka_channel_login.get_secret_value().partition(":")[0]
    forged = principals.model_copy(update={"kafka_channel_login": SecretStr(f"{user}:not-the-password")})
    client = AIOKafkaProducer(**client_options(forged, "channel"), request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await client.start()
    await client.stop()


@pytest.mark.parametrize(
    ("role", "topic"),
    [
        ("channel", "admin_topic"),  # a channel cannot schedule meetings, record positions or close polls
        ("channel", "heads_topic"),  # nor publish chain heads
        ("channel", "decisions_topic"),  # nor answer for the ledger
        ("admin", "submissions_topic"),  # meeting administration cannot vote
        ("ledger", "submissions_topic"),  # the ledger cannot vote
        ("ledger", "admin_topic"),  # nor administer meetings
    ],
)
async def test_a_principal_writing_where_its_role_may_not_is_refused_and_nothing_lands(
    principals, settings, role, topic
):
    name = getattr(settings, topic)
    async with producer(principals, role, request_timeout_ms=5000) as client:
        with pytest.raises(TopicAuthorizationFailedError):
            await client.send_and_wait(name, encode(cast("R-1", {"2": "for"})), key=b"R-1")
    assert await end_offset(settings, name) == 0


async def test_each_role_may_write_its_own_topic(principals, settings):
    async with producer(principals, "admin") as client:
        await publish(client, principals, [small_meeting()])
    async with producer(principals, "channel") as client:
        await publish(client, principals, [cast("R-1", {"2": "for"})])
    assert await end_offset(settings, settings.admin_topic) == 1
    assert await end_offset(settings, settings.submissions_topic) == 1


async def test_a_channel_cannot_delete_a_topic_or_the_records_waiting_in_it(principals, settings):
    async with producer(principals, "channel") as client:
        await client.send_and_wait(settings.submissions_topic, encode(cast("R-1", {"2": "for"})), partition=0)
    admin = AIOKafkaAdminClient(**client_options(principals, "channel"))
    await admin.start()
    try:
        deleted = await admin.delete_topics([settings.submissions_topic, settings.admin_topic])
        assert {code for _topic, code, *_ in deleted.topic_error_codes} == {TOPIC_AUTHORIZATION_FAILED}
        with pytest.raises(TopicAuthorizationFailedError):
            await admin.delete_records(
                {TopicPartition(settings.submissions_topic, 0): RecordsToDelete(before_offset=1)}
            )
    finally:
        await admin.close()
    assert await end_offset(settings, settings.submissions_topic) == 1  # the record is still there
    operator = AIOKafkaAdminClient(**client_options(settings, "operator"))
    await operator.start()
    try:
        assert {settings.submissions_topic, settings.admin_topic} <= set(await operator.list_topics())
    finally:
        await operator.close()


async def test_meeting_administration_cannot_delete_topics_either(principals, settings):
    admin = AIOKafkaAdminClient(**client_options(principals, "admin"))
    await admin.start()
    try:
        deleted = await admin.delete_topics([settings.admin_topic])
        assert {code for _topic, code, *_ in deleted.topic_error_codes} == {TOPIC_AUTHORIZATION_FAILED}
    finally:
        await admin.close()


async def test_the_ledger_with_only_its_own_login_ingests_a_vote_end_to_end(principals):
    # No operator's login anywhere in these settings: the ledger reads, commits its group, publishes
    # heads and creates nothing it is not granted.
    assert principals.kafka_operator_login is None
    vote = cast("R-1", {"2": "for"})
    async with running_ledger(principals):
        async with producer(principals, "admin") as client:
            await publish(client, principals, [small_meeting(), register_event()])
        async with producer(principals, "channel") as client:
            await publish(client, principals, [vote])
        await wait_for(principals.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = $1", 1, vote.event_id)
        # The ledger's relay publishes the answer with the ledger's login; the channel reads it with its own.
        answer = await answer_for(principals, vote.event_id)
    conn = await asyncpg.connect(principals.pg_dsn)
    try:
        row = await conn.fetchrow("SELECT decision, reason FROM ledger_log WHERE event_id = $1", vote.event_id)
        stored = await conn.fetchval(
            "SELECT sum(next_offset) FROM ledger_offsets WHERE topic = $1", principals.admin_topic
        )
    finally:
        await conn.close()
    assert (row["decision"], row["reason"]) == ("accepted", None)
    assert stored == 2
    assert (answer.decision, answer.reason) == ("accepted", None)


async def answer_for(settings: Settings, event_id: str, timeout: float = 60.0):
    """The answer on votes.decisions for an event id, read committed as the channel."""
    import time

    import msgspec

    from events.answers import AnyAnswer

    partitions = await partitions_of(settings, [settings.decisions_topic], "channel")
    consumer = AIOKafkaConsumer(
        **client_options(settings, "channel"), isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    answer = msgspec.json.decode(record.value, type=AnyAnswer)
                    if answer.event_id == event_id:
                        return answer
        raise AssertionError(f"no answer for {event_id} on {settings.decisions_topic} within {timeout} s")
    finally:
        await consumer.stop()


async def join(settings: Settings, group: str) -> None:
    """Join a consumer group as the channel and commit an offset in it (raises when the broker refuses)."""
    partitions = await partitions_of(settings, [settings.decisions_topic], "channel")
    consumer = AIOKafkaConsumer(**client_options(settings, "channel"), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


async def test_a_channel_uses_groups_named_after_it_with_a_dot_and_not_the_ledgers_or_a_longer_names(principals):
    user = principals.kafka_channel_login.get_secret_value().partition(":")[0]
    await join(principals, f"{user}.answers")
    # A bare prefix let a principal `vote` join `vote-ledger`, and `channel-dem` the groups of `channel-demo`.
    for group in (principals.consumer_group, f"{user}x.answers", f"{user}-2"):
        with pytest.raises(GroupAuthorizationFailedError):
            await join(principals, group)

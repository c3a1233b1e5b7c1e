"""Kafka adapter: topic set-up and publishing events on the wire contract's topics and keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from events import AnyEvent, ProxySubstituted, VoteCast, VoteRevoked, encode
from services.errors import UserError
from services.settings import KAFKA_ROLES, Settings, variable

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

# Who a client is, as the broker sees it (issue 11): the role(s) whose login it uses, first set first.
Roles = str | tuple[str, ...]
# Topic creation: the operator, else the ledger (its ACLs let it create its own topics).
TOPIC_ROLES = ("operator", "ledger")


def login_of(settings: Settings, roles: Roles) -> tuple[str, str] | None:
    """(user, password) of the first of the roles whose login is set; None when no Kafka login is set at all.

    No login at all means a broker without authentication (PLAINTEXT). Some set but none of these roles':
    UserError naming the variable to set, rather than a connection the broker refuses later.
    """
    wanted = (roles,) if isinstance(roles, str) else roles
    for role in wanted:
        if role not in KAFKA_ROLES:
            raise ValueError(f"unknown Kafka role {role!r}")
        login = getattr(settings, f"kafka_{role}_login")
        if login is not None:
            user, _, password = login.get_secret_value().partition(":")
            return user, password
    if all(getattr(settings, f"kafka_{role}_login") is None for role in KAFKA_ROLES):
        return None
    names = " or ".join(variable(f"kafka_{role}_login") for role in wanted)
    raise UserError(
        f"{names} is not set: the Kafka logins of other roles are, so the broker requires one (user:password)"
    )


def creates_topics(settings: Settings) -> bool:
    """Whether this process may create the topics: it holds the operator's or the ledger's login, or none is needed.

    A channel or meeting administration alone may not (nor see the topics it does not use): it relies
    on the ledger, which creates them when it starts.
    """
    try:
        login_of(settings, TOPIC_ROLES)
    except UserError:
        return False
    return True


def client_options(settings: Settings, roles: Roles) -> dict[str, Any]:
    """aiokafka keyword options for a client acting as the role(s): bootstrap servers and, with a login, SASL/SCRAM."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    login = login_of(settings, roles)
    if login is not None:
        options |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": login[0],
            "sasl_plain_password": login[1],
        }
    return options


def faststream_security(settings: Settings, roles: Roles) -> BaseSecurity | None:
    """FastStream's security option for a broker acting as the role(s) (None: PLAINTEXT), as client_options."""
    from faststream.security import SASLScram256, SASLScram512

    login = login_of(settings, roles)
    if login is None:
        return None
    scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(login[0], login[1])


def unreachable(exc: BaseException, bootstrap: str | None) -> str | None:
    """One line for a failure to reach Kafka (where it tried, what to do); None for any other error.

    aiokafka raises KafkaConnectionError when no broker answers at start; the CLI's main prints this.
    """
    if not isinstance(exc, KafkaConnectionError):
        return None
    # aiokafka raises the same error when the broker closes the connection on a missing or refused
    # SASL login (it only logs SaslAuthenticationFailed), so the line names the logins too.
    return (
        f"cannot reach Kafka at {bootstrap} (VOTE_LEDGER_KAFKA_BOOTSTRAP): no broker answered; is it running?"
        ' for the local stack run `eval "$(vote-ledger stack up)"`, or fix VOTE_LEDGER_KAFKA_BOOTSTRAP;'
        " a broker that requires a login closes the connection alike when VOTE_LEDGER_KAFKA_<ROLE>_LOGIN"
        " (user:password) is unset or wrong"
    )


# How long starting a client may wait for the brokers' first answer. Something else listening on the
# address (a web server, say) accepts the connection and never answers a Kafka request, and aiokafka
# then waited its whole request timeout (40 s) per attempt. Once started, a client keeps its own
# timeouts and the services their reconnect loops.
CONNECT_TIMEOUT_S = 10.0


async def started(client: AIOKafkaAdminClient | AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Start a client; KafkaConnectionError (a one-line "no broker answered") if none answers in CONNECT_TIMEOUT_S."""
    try:
        await asyncio.wait_for(client.start(), CONNECT_TIMEOUT_S)
    except TimeoutError:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise KafkaConnectionError(f"no Kafka answer within {CONNECT_TIMEOUT_S:g} s") from None


def topic_for(event: AnyEvent, settings: Settings) -> str:
    """The topic an event belongs on (wire contract: submissions vs meeting administration)."""
    if isinstance(event, (VoteCast, VoteRevoked, ProxySubstituted)):
        return settings.submissions_topic
    return settings.admin_topic


def key_for(event: AnyEvent) -> bytes:
    """The message key: the control number (UTF-8) for votes, else the meeting id."""
    control_number = getattr(event, "control_number", None)
    return (control_number or event.meeting_id).encode()


async def ensure_topics(settings: Settings, roles: Roles = TOPIC_ROLES) -> None:
    """Create the ledger's topics if missing (the local broker does not auto-create them)."""
    admin = AIOKafkaAdminClient(**client_options(settings, roles))
    await started(admin)
    try:
        existing = set(await admin.list_topics())
        replicas = settings.topic_replication
        durable = {"min.insync.replicas": str(settings.topic_min_insync)}  # see Settings.topic_replication
        wanted = [
            # LogAppendTime: each record carries the broker's clock, which the ledger records (appended_at)
            # and judges the cut-off on; a channel's producer cannot set it (issue 11).
            NewTopic(
                settings.submissions_topic,
                settings.submission_partitions,
                replicas,
                topic_configs={"message.timestamp.type": "LogAppendTime"} | durable,
            ),
            # Answers to channels, keyed like the submissions (as many partitions: an answer lands on the
            # partition number its submission went to). Never expired: they are receipts a channel may
            # come back for, and the answers relay resumes from the topic's last answers (emptied, it
            # could not tell what was answered; services/runtime/answers.py).
            NewTopic(
                settings.decisions_topic,
                settings.submission_partitions,
                replicas,
                topic_configs={"retention.ms": "-1", "retention.bytes": "-1"} | durable,
            ),
            # One partition: meeting administration is rare and its order matters to readers. LogAppendTime
            # too: an amendment may not take effect before the broker appended it (docs/rules.md, Amendments).
            NewTopic(
                settings.admin_topic, 1, replicas, topic_configs={"message.timestamp.type": "LogAppendTime"} | durable
            ),
            NewTopic(settings.parked_topic, 1, replicas, topic_configs=durable),
            # Heads anchor the log for as long as it may be audited: never expire them.
            NewTopic(
                settings.heads_topic,
                1,
                replicas,
                topic_configs={"retention.ms": "-1", "retention.bytes": "-1"} | durable,
            ),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it between our list and create
    finally:
        await admin.close()


@asynccontextmanager
async def producer(settings: Settings, roles: Roles = "operator", **overrides) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer acting as the role(s), tuned for throughput (batching, lz4-free to keep deps light)."""
    options = {"linger_ms": 20, "max_batch_size": 1 << 20, "acks": "all", "enable_idempotence": True}
    options.update(overrides)
    client = AIOKafkaProducer(**client_options(settings, roles), **options)
    await started(client)
    try:
        yield client
    finally:
        await client.stop()


async def publish(client: AIOKafkaProducer, settings: Settings, events: Iterable[AnyEvent]) -> int:
    """Publish events in order on their topics; wait until the broker acknowledged all of them."""
    pending = []
    for event in events:
        pending.append(await client.send(topic_for(event, settings), encode(event), key=key_for(event)))
    if pending:
        await asyncio.gather(*pending)
    return len(pending)


async def publish_raw(client: AIOKafkaProducer, topic: str, payloads: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Publish pre-encoded (key, value) payloads: for benchmarks and malformed-input tests."""
    pending = [await client.send(topic, value, key=key) for key, value in payloads]
    if pending:
        await asyncio.gather(*pending)
    return len(pending)


class AdminWatermark:
    """Reads the admin topic's end offsets on a connection of its own.

    The subscriber's connection is usually blocked by a long-polling fetch, which made each
    ListOffsets request wait ~250 ms behind it; a separate, idle client answers in about 1 ms.
    """

    def __init__(self, settings: Settings, roles: Roles = "ledger") -> None:
        self.settings = settings
        self.roles = roles
        self.client: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        """Connect and learn the admin topic's partitions."""
        self.partitions = await partitions_of(self.settings, [self.settings.admin_topic], self.roles) or [
            TopicPartition(self.settings.admin_topic, 0)
        ]
        # Read committed, as the ledger reads: the end is the last stable offset, so an open
        # transaction on the admin topic does not hold every vote back until it ends.
        self.client = AIOKafkaConsumer(**client_options(self.settings, self.roles), isolation_level="read_committed")
        await started(self.client)

    async def stop(self) -> None:
        """Disconnect."""
        if self.client is not None:
            await self.client.stop()

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        """End offset per admin partition: what has been published so far."""
        ends = await self.client.end_offsets(self.partitions)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def partitions_of(settings: Settings, topics: list[str], roles: Roles = TOPIC_ROLES) -> list[TopicPartition]:
    """Every partition of the topics, as the cluster describes them (none for a topic it does not have)."""
    admin = AIOKafkaAdminClient(**client_options(settings, roles))
    await started(admin)
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def partition_offsets(
    settings: Settings, topics: list[str], roles: Roles = TOPIC_ROLES
) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (first offset Kafka still has, end offset) for every partition of the topics.

    The end is read committed, as the ledger reads: the last stable offset, so records of an open
    transaction do not count as waiting. Short-lived clients of its own, for `status`.
    """
    tps = await partitions_of(settings, topics, roles)
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(**client_options(settings, roles), isolation_level="read_committed")
    await started(consumer)
    try:
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): (starts[tp], end) for tp, end in ends.items()}

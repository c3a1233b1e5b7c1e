"""Which clock stamps votes.submissions' records (message.timestamp.type), and what it means if not the broker's.

On a topic that keeps the producer's clock (CreateTime) every row's ``appended_at`` is NULL, so key
validity (S3) and the broker cut-off (R12 with ``broker_grace_s``) fall back to the channel's own
``received_at``: the holder of a revoked key could back-date it (review M4). ``ensure_topics`` sets
LogAppendTime only on a topic it creates; a topic created before keeps CreateTime until an operator
changes it. The ledger says so when it starts, and ``vote-ledger status`` in every report.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.adapters.kafka.topics import Roles, client_options, started
from services.settings import Settings

TIMESTAMP_TYPE = "message.timestamp.type"
LOG_APPEND_TIME = "LogAppendTime"
_NO_ERROR, _UNKNOWN_TOPIC, _NOT_AUTHORIZED = 0, 3, 29  # Kafka's error codes in a DescribeConfigs answer


@dataclass(frozen=True)
class TopicClock:
    """A topic's message.timestamp.type as the broker describes it, or why it could not be read."""

    topic: str
    timestamp_type: str | None  # "LogAppendTime", "CreateTime"; None: not read (see error)
    error: str | None = None  # the broker's answer when it could not be read (no such topic, not authorized)

    @property
    def broker_clock(self) -> bool:
        """Whether each record carries the broker's append time (what S3 and R12 judge on)."""
        return self.timestamp_type == LOG_APPEND_TIME

    def warning(self, bootstrap: str | None) -> str | None:
        """The operator's warning when the topic does not carry the broker's clock (None: it does)."""
        if self.broker_clock:
            return None
        fix = (
            f"kafka-configs.sh --bootstrap-server {bootstrap or 'HOST:PORT'} --command-config admin.properties"
            f" --alter --entity-type topics --entity-name {self.topic} --add-config {TIMESTAMP_TYPE}={LOG_APPEND_TIME}"
        )
        if self.timestamp_type is None:
            return (
                f"cannot tell which clock stamps {self.topic} ({self.error}): if it is not {LOG_APPEND_TIME},"
                " key validity (S3) and the broker cut-off (R12, broker_grace_s) fall back to each channel's"
                f" own received_at. Check it as the operator, and fix it if need be: {fix}"
            )
        return (
            f"{self.topic} keeps the producer's clock ({TIMESTAMP_TYPE}={self.timestamp_type}): appended_at is"
            " NULL on every row it logs, so key validity (S3) and the broker cut-off (R12, broker_grace_s) fall"
            " back to each channel's own received_at, which a channel sets as it likes (a revoked key's holder"
            f" can back-date it). Fix it, as the operator (rows logged before keep NULL): {fix}"
        )


async def topic_clock(settings: Settings, topic: str, roles: Roles) -> TopicClock:
    """Describe the topic's message.timestamp.type; a TopicClock saying why when the broker does not tell."""
    admin = AIOKafkaAdminClient(**client_options(settings, roles))
    await started(admin)
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {TIMESTAMP_TYPE: None})]
        )
    finally:
        await admin.close()
    for response in responses:
        for error_code, error_message, _type, name, entries in response.resources:
            if name != topic:
                continue
            if error_code == _UNKNOWN_TOPIC:
                return TopicClock(topic, None, "no such topic yet")
            if error_code == _NOT_AUTHORIZED:
                return TopicClock(
                    topic, None, "this login may not describe the topic's configuration (DescribeConfigs)"
                )
            if error_code != _NO_ERROR:
                return TopicClock(topic, None, f"Kafka error {error_code}: {error_message or 'no message'}")
            for entry in entries:
                if entry[0] == TIMESTAMP_TYPE:
                    return TopicClock(topic, entry[1])
    return TopicClock(topic, None, "the broker did not describe it")

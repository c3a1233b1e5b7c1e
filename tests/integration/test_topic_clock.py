"""A votes.submissions topic that keeps the producer's clock (CreateTime) is named at ledger start and in `status`."""

import json
import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from services.adapters.kafka import acl
from services.adapters.kafka.topic_clock import topic_clock
from services.adapters.kafka.topics import client_options, ensure_topics, started
from services.runtime.ledger_app import warn_of_topic_clock
from tests.integration.helpers import cli, running_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
async def create_time(settings):
    """The test's settings on topics of their own, whose votes.submissions was created with CreateTime."""
    cfg = settings.model_copy(update={"topic_prefix": f"ct{uuid.uuid4().hex[:10]}."})
    admin = AIOKafkaAdminClient(**client_options(cfg, "operator"))
    await started(admin)
    try:
        topic = NewTopic(cfg.submissions_topic, 2, 1, topic_configs={"message.timestamp.type": "CreateTime"})
        await admin.create_topics([topic])
    finally:
        await admin.close()
    await ensure_topics(cfg)  # creates the others, leaves this one as it is
    return cfg


async def test_the_ledger_warns_at_start_when_submissions_keep_the_producers_clock_and_says_how_to_fix_it(
    create_time, caplog
):
    with caplog.at_level(logging.WARNING, logger="vote_ledger.ledger"):
        async with running_ledger(create_time):
            pass
    (line,) = [r.getMessage() for r in caplog.records if "keeps the producer's clock" in r.getMessage()]
    assert f"{create_time.submissions_topic} keeps the producer's clock (message.timestamp.type=CreateTime)" in line
    assert "fall back to each channel's own received_at" in line
    assert (
        f"--alter --entity-type topics --entity-name {create_time.submissions_topic}"
        " --add-config message.timestamp.type=LogAppendTime" in line
    )


async def test_status_reports_the_submissions_clock_and_warns_on_create_time(create_time, settings):
    code, out, err = await cli(create_time, "status", "--format", "json")
    assert code == 0, err
    clock = json.loads(out)["submissions_clock"]
    assert (clock["timestamp_type"], clock["broker_clock"]) == ("CreateTime", False)
    assert "keeps the producer's clock" in clock["warning"]
    code, out, err = await cli(create_time, "status")
    assert code == 0 and "WARNING clock      " in out and "--add-config message.timestamp.type=LogAppendTime" in out
    # The topic the ledger creates carries the broker's clock: no warning, at start or in status.
    code, out, err = await cli(settings, "status", "--format", "json")
    clock = json.loads(out)["submissions_clock"]
    assert code == 0 and (clock["timestamp_type"], clock["broker_clock"], clock["warning"]) == (
        "LogAppendTime",
        True,
        None,
    )
    found = await warn_of_topic_clock(settings)
    assert found is not None and found.broker_clock


async def test_the_ledgers_own_login_may_read_the_topics_clock_but_nothing_else_of_its_configuration(
    endpoints, settings
):
    login = endpoints.kafka_ledger_login
    if not login:
        pytest.skip("the Kafka in use has no SASL login for the ledger")
    user = login.partition(":")[0]
    await acl.grant(settings, "ledger", user)  # as the operator, on the test's topics
    try:
        own = settings.model_copy(update={"kafka_operator_login": None, "kafka_ledger_login": SecretStr(login)})
        clock = await topic_clock(own, own.submissions_topic, "ledger")
        assert (clock.timestamp_type, clock.error) == ("LogAppendTime", None)
        other = await topic_clock(own, own.decisions_topic, "ledger")  # granted on the submissions topic only
        assert other.timestamp_type is None and "may not describe" in other.error
        assert "cannot tell which clock" in other.warning(own.kafka_bootstrap)
    finally:
        await acl.revoke(settings, "ledger", user)

"""Which login a Kafka client of each role presents (services/adapters/kafka/topics.py client_options)."""

from __future__ import annotations

import pytest

from services.adapters.kafka.acl import CREATE, PREFIXED, READ, TOPIC, WRITE, Acl, role_acls
from services.adapters.kafka.topics import client_options, creates_topics, faststream_security
from services.errors import UserError
from services.settings import Settings, kafka_login_env

BOOTSTRAP = "127.0.0.1:9092"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No VOTE_LEDGER_* variable set (Settings reads them), whatever the shell running the tests exported."""
    import os

    for name in list(os.environ):
        if name.startswith("VOTE_LEDGER_"):
            monkeypatch.delenv(name)


def test_without_any_login_a_client_speaks_plaintext():
    options = client_options(Settings(kafka_bootstrap=BOOTSTRAP), "ledger")
    assert options == {"bootstrap_servers": BOOTSTRAP}
    assert faststream_security(Settings(kafka_bootstrap=BOOTSTRAP), "ledger") is None


def test_a_client_presents_its_roles_login_with_scram():
    current = Settings(kafka_bootstrap=BOOTSTRAP, kafka_ledger_login="ledger:pw", kafka_admin_login="admin:a:b")
    assert client_options(current, "ledger") == {
        "bootstrap_servers": BOOTSTRAP,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": "pw",
    }
    assert client_options(current, "admin")["sasl_plain_password"] == "a:b"  # split at the first ':'
    security = faststream_security(current.model_copy(update={"kafka_sasl_mechanism": "SCRAM-SHA-256"}), "ledger")
    assert (type(security).__name__, security.username, security.password) == ("SASLScram256", "ledger", "pw")


def test_the_first_role_with_a_login_is_used_and_none_of_them_is_one_line_naming_the_variables():
    current = Settings(kafka_bootstrap=BOOTSTRAP, kafka_ledger_login="ledger:pw")
    assert client_options(current, ("operator", "ledger"))["sasl_plain_username"] == "ledger"
    with pytest.raises(UserError, match=r"^VOTE_LEDGER_KAFKA_CHANNEL_LOGIN is not set: "):
        client_options(current, "channel")
    assert creates_topics(current)
    assert not creates_topics(Settings(kafka_bootstrap=BOOTSTRAP, kafka_admin_login="admin:pw"))
    assert creates_topics(Settings(kafka_bootstrap=BOOTSTRAP))  # a broker without logins


def test_a_subprocess_gets_the_logins_that_are_set_and_the_mechanism():
    current = Settings(kafka_bootstrap=BOOTSTRAP, kafka_operator_login="operator:pw")
    assert kafka_login_env(current) == {
        "VOTE_LEDGER_KAFKA_OPERATOR_LOGIN": "operator:pw",
        "VOTE_LEDGER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    }
    assert kafka_login_env(Settings(kafka_bootstrap=BOOTSTRAP)) == {}


def test_acls_name_the_settings_topics_with_their_prefix():
    current = Settings(kafka_bootstrap=BOOTSTRAP, topic_prefix="t1.", consumer_group="g1")
    channel = role_acls(current, "channel", "channel-acme")
    assert channel == [
        Acl(TOPIC, "t1.votes.submissions", WRITE),
        Acl(TOPIC, "t1.votes.decisions", READ),
        Acl(3, "channel-acme", READ, PREFIXED),
    ]
    assert role_acls(current, "admin", "admin") == [
        Acl(TOPIC, "t1.meetings.admin", WRITE),
        Acl(TOPIC, "t1.meetings.admin", READ),
    ]
    ledger = role_acls(current, "ledger", "ledger")
    assert {a.name for a in ledger if a.operation == WRITE and a.resource_type == TOPIC} == {
        "t1.ledger.parked",
        "t1.ledger.heads",
        "t1.votes.decisions",
    }
    assert {a.name for a in ledger if a.operation == CREATE} == {
        f"t1.{t}" for t in ("votes.submissions", "meetings.admin", "ledger.parked", "ledger.heads", "votes.decisions")
    }
    # Nobody but the operator (the super user) may delete or alter anything: no DELETE, ALTER or ALTER_CONFIGS.
    granted = {a.operation for role in ("channel", "admin", "ledger") for a in role_acls(current, role, "x")}
    assert granted.isdisjoint({6, 7, 11})


def test_a_broker_that_closes_the_connection_is_said_to_maybe_want_a_login():
    from aiokafka.errors import KafkaConnectionError

    from services.adapters.kafka.topics import unreachable

    line = unreachable(KafkaConnectionError("Unable to bootstrap"), BOOTSTRAP)
    assert "VOTE_LEDGER_KAFKA_<ROLE>_LOGIN (user:password) is unset or wrong" in line and "\n" not in line

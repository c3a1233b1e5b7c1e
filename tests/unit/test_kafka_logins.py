"""Which login a Kafka client of each role presents (services/adapters/kafka/topics.py client_options)."""

from __future__ import annotations

import re

import pytest

from services.adapters.kafka.acl import CREATE, GROUP, PREFIXED, READ, TOPIC, WRITE, Acl, role_acls, superseded_acls
from services.adapters.kafka.topics import client_options, creates_topics, faststream_security
from services.devtools.stack.common import StackError
from services.devtools.stack.kafka_auth import refuse_overlap
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
        Acl(3, "channel-acme.", READ, PREFIXED),
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


def test_no_grant_is_a_bare_name_prefix_covering_the_ledgers_group_or_another_principals():
    # PREFIXED `vote` covered the ledger's group `vote-ledger`; `channel-dem` covered `channel-demo`'s groups.
    current = Settings(kafka_bootstrap=BOOTSTRAP, consumer_group="vote-ledger")
    prefixes = [
        a.name
        for role, user in (("channel", "vote"), ("channel", "channel-dem"), ("ledger", "ledger"))
        for a in role_acls(current, role, user)
        if a.pattern == PREFIXED
    ]
    assert prefixes and all(p.endswith(".") for p in prefixes)
    groups = [a.name for a in role_acls(current, "channel", "vote") if a.resource_type == GROUP]
    assert groups == ["vote."] and not any("vote-ledger".startswith(g) for g in groups)
    assert not any("channel-demo.reader".startswith(a.name) for a in role_acls(current, "channel", "channel-dem"))
    # The older, wider grants are what `grant` deletes first.
    assert Acl(GROUP, "vote", READ, PREFIXED) in superseded_acls(current, "channel", "vote")
    assert {a.name for a in superseded_acls(current, "ledger", "ledger")} == {"vote-ledger"}


@pytest.mark.parametrize(
    "name, error",
    [
        ("vote", "prefix of the ledger's consumer group 'vote-ledger'"),
        ("channel-dem", "'channel-dem' and the principal 'channel-demo'"),
        ("channel-demo-2", "'channel-demo-2' and the principal 'channel-demo'"),
        ("bank", "'bank' and the principal 'bank.2'"),
    ],
)
def test_a_principal_name_overlapping_the_ledgers_group_or_another_principals_is_refused(name, error):
    others = ["admin", "bank.2", "channel-demo", "ledger", "operator"]
    with pytest.raises(StackError, match=re.escape(error)):
        refuse_overlap(name, "vote-ledger", others)
    refuse_overlap("channel-acme", "vote-ledger", others)  # no overlap: accepted


def test_a_broker_that_closes_the_connection_is_said_to_maybe_want_a_login():
    from aiokafka.errors import KafkaConnectionError

    from services.adapters.kafka.topics import unreachable

    line = unreachable(KafkaConnectionError("Unable to bootstrap"), BOOTSTRAP)
    assert "VOTE_LEDGER_KAFKA_<ROLE>_LOGIN (user:password) is unset or wrong" in line and "\n" not in line

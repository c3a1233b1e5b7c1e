"""The one settings object: every VOTE_LEDGER_* variable, its default, and one line for a malformed value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.cli import UserError
from services.settings import Settings, expected_form, load, variable

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def clean_env(monkeypatch):
    """No VOTE_LEDGER_* variable set, whatever the shell running the tests exported."""
    import os

    for name in list(os.environ):
        if name.startswith("VOTE_LEDGER_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_unset_variables_give_the_documented_defaults(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    current = load()
    assert current.kafka_bootstrap is None and current.pg_dsn is None and current.pg_reader_dsn is None
    assert current.home == tmp_path.resolve() / ".vote-ledger"
    assert current.cache == tmp_path.resolve() / ".cache"
    assert (current.consumer_group, current.submission_partitions, current.batch_max) == ("vote-ledger", 4, 20000)
    assert (current.instance_id, current.session_timeout_ms, current.topic_prefix) == ("", 6000, "")
    assert (current.stall_check_s, current.stall_after_s) == (2.0, 10.0)
    assert (current.heads_every_rows, current.heads_every_seconds) == (10000, 10.0)
    assert (current.kafka_port, current.kafka_controller_port, current.pg_port) == (19092, 19093, 15432)
    assert current.pg_bindir is None


def test_each_field_reads_its_own_variable_and_an_empty_one_counts_as_unset(clean_env):
    clean_env.setenv("VOTE_LEDGER_PARTITIONS", "8")
    clean_env.setenv("VOTE_LEDGER_BATCH_MAX", "50")
    clean_env.setenv("VOTE_LEDGER_TOPIC_PREFIX", "")
    clean_env.setenv("VOTE_LEDGER_PG_PORT", "25432")
    clean_env.setenv("VOTE_LEDGER_HEADS_EVERY_SECONDS", "0.5")
    current = load()
    assert (current.submission_partitions, current.batch_max, current.pg_port) == (8, 50, 25432)
    assert current.topic_prefix == "" and current.heads_every_seconds == 0.5
    assert current.submissions_topic == "votes.submissions"


def test_keyword_arguments_win_over_the_environment_and_a_copy_changes_only_what_it_names(clean_env):
    clean_env.setenv("VOTE_LEDGER_BATCH_MAX", "50")
    given = Settings(kafka_bootstrap="k:9092", batch_max=7)
    assert (given.kafka_bootstrap, given.batch_max) == ("k:9092", 7)
    changed = given.model_copy(update={"topic_prefix": "t1."})
    assert changed.admin_topic == "t1.meetings.admin" and changed.batch_max == 7 and given.topic_prefix == ""


@pytest.mark.parametrize(
    ("name", "value", "form"),
    [
        ("VOTE_LEDGER_BATCH_MAX", "abc", "a whole number from 1 to 1000000"),
        ("VOTE_LEDGER_BATCH_MAX", "0", "a whole number from 1 to 1000000"),
        ("VOTE_LEDGER_PG_PORT", "99999", "a whole number from 1 to 65535"),
        ("VOTE_LEDGER_KAFKA_PORT", "-1", "a whole number from 1 to 65535"),
        ("VOTE_LEDGER_PARTITIONS", "four", "a whole number from 1 to 10000"),
        ("VOTE_LEDGER_STALL_CHECK_S", "0", "a number of seconds above 0 and at most 86400"),
        ("VOTE_LEDGER_HEADS_EVERY_SECONDS", "soon", "a number of seconds above 0 and at most 86400"),
    ],
)
def test_a_malformed_value_is_one_line_naming_the_variable_the_value_and_the_form(clean_env, name, value, form):
    clean_env.setenv(name, value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"{name}={value!r} is not valid: expected {form}"


BOOTSTRAP_FORM = "host:port[,host:port...] with each port from 1 to 65535"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("::::", "'::::' is not host:port"),
        ("127.0.0.1:abc", "'127.0.0.1:abc' is not host:port"),
        ("127.0.0.1:99999", "port 99999 is not from 1 to 65535"),
        ("127.0.0.1:0", "port 0 is not from 1 to 65535"),
        (":9092", "':9092' is not host:port"),
        ("localhost", "'localhost' is not host:port"),
        ("k1:9092,", "an empty entry"),
    ],
)
def test_a_malformed_kafka_bootstrap_is_one_line_naming_the_variable_and_the_form(clean_env, value, why):
    clean_env.setenv("VOTE_LEDGER_KAFKA_BOOTSTRAP", value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"VOTE_LEDGER_KAFKA_BOOTSTRAP={value!r} is not valid ({why}): expected {BOOTSTRAP_FORM}"


def test_well_formed_kafka_bootstraps_are_accepted(clean_env):
    for value in ("127.0.0.1:19092", "k1:9092, k2.example.org:9093", "[::1]:9092", "kafka-0_a:1"):
        clean_env.setenv("VOTE_LEDGER_KAFKA_BOOTSTRAP", value)
        assert load().kafka_bootstrap == value


@pytest.mark.parametrize(
    ("dsn", "why"),
    [
        ("postgresql://::::@@//", "more than one '@'"),
        ("postgresql://u:p@w@h:5432/db", "more than one '@'"),
        ("mysql://u:p@h/db", "the scheme is not postgresql://"),
        ("postgresql://u:p@h:99999/db", "a port is not from 1 to 65535"),
        ("postgresql://u:p@h:abc/db", "a host is not host[:port]"),
        ("postgresql://u:p@[::1/db", "it does not parse as a URL"),
        ("postgresql://u:p@h/db?sslmode", "it does not parse as a URL"),
        ("postgresql://u:p@h/db/more", "the database name holds '/'"),
    ],
)
def test_a_malformed_dsn_says_malformed_naming_the_variable_and_never_echoes_the_password(clean_env, dsn, why):
    clean_env.setenv("VOTE_LEDGER_PG_READER_DSN", dsn)
    with pytest.raises(UserError) as caught:
        load()
    line = str(caught.value)
    assert line.startswith(f"VOTE_LEDGER_PG_READER_DSN is malformed ({why}): expected postgresql://user:password@")
    assert dsn not in line and "\n" not in line


def test_well_formed_dsns_are_accepted(clean_env):
    for dsn in (
        "postgresql://vl_reader:Zx-_9@127.0.0.1:15432/vote_ledger",
        "postgres://u@h1:5432,h2:5433/db?sslmode=require",
        "postgresql:///db",
        "postgresql://u@%2Fvar%2Frun%2Fpostgresql/db",
        "postgresql://u:p%40ss@[::1]:5432/db",
    ):
        clean_env.setenv("VOTE_LEDGER_PG_DSN", dsn)
        assert load().pg_dsn == dsn


@pytest.mark.parametrize(
    ("name", "value", "form"),
    [
        ("VOTE_LEDGER_PARTITIONS", "100000000000000000000000", "a whole number from 1 to 10000"),
        ("VOTE_LEDGER_SESSION_TIMEOUT_MS", "1", "a whole number from 6000 to 1800000"),
        ("VOTE_LEDGER_SESSION_TIMEOUT_MS", "99999999999", "a whole number from 6000 to 1800000"),
        ("VOTE_LEDGER_BATCH_MAX", "100000000000000000000000", "a whole number from 1 to 1000000"),
        ("VOTE_LEDGER_HEADS_EVERY_ROWS", "100000000000000000000000", "a whole number from 1 to 2147483647"),
        ("VOTE_LEDGER_STALL_CHECK_S", "inf", "a number of seconds above 0 and at most 86400"),
        ("VOTE_LEDGER_STALL_AFTER_S", "nan", "a number of seconds above 0 and at most 86400"),
        ("VOTE_LEDGER_HEADS_EVERY_SECONDS", "1e99", "a number of seconds above 0 and at most 86400"),
    ],
)
def test_a_number_out_of_its_range_is_refused_with_the_range(clean_env, name, value, form):
    clean_env.setenv(name, value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"{name}={value!r} is not valid: expected {form}"


def test_every_numeric_variable_has_an_upper_bound():
    numeric = [field for field, info in Settings.model_fields.items() if info.annotation in (int, float)]
    assert numeric and all(" to " in expected_form(f) or "at most" in expected_form(f) for f in numeric)


PREFIX_FORM = (
    "letters, digits, '.', '_' and '-', at most 232 characters"
    " (a Kafka topic name is at most 249, and the longest topic adds 17)"
)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a/b", "a character other than a letter, digit, '.', '_' or '-'"),
        ("\u00e9.", "a character other than a letter, digit, '.', '_' or '-'"),
        ("x" * 233, "233 characters"),
    ],
)
def test_a_topic_prefix_kafka_would_refuse_is_one_line(clean_env, value, why):
    clean_env.setenv("VOTE_LEDGER_TOPIC_PREFIX", value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"VOTE_LEDGER_TOPIC_PREFIX={value!r} is not valid ({why}): expected {PREFIX_FORM}"


def test_the_longest_allowed_prefix_gives_topic_names_kafka_accepts(clean_env):
    clean_env.setenv("VOTE_LEDGER_TOPIC_PREFIX", "t-1_." + "x" * 227)
    current = load()
    topics = (current.submissions_topic, current.admin_topic, current.parked_topic, current.heads_topic)
    assert max(len(topic) for topic in topics) == 249


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VOTE_LEDGER_CONSUMER_GROUP", "   "),
        ("VOTE_LEDGER_CONSUMER_GROUP", "g\x07"),
        ("VOTE_LEDGER_CONSUMER_GROUP", "g" * 250),
        ("VOTE_LEDGER_INSTANCE_ID", "host 1"),
        ("VOTE_LEDGER_INSTANCE_ID", "h" * 250),
    ],
)
def test_a_group_or_instance_id_kafka_would_refuse_is_one_line(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(UserError, match=rf"^{name}=.* is not valid \(.*\): expected .*at most 249 characters"):
        load()


def test_a_malformed_flag_is_named_as_the_flag(clean_env):
    with pytest.raises(UserError, match=r"^--pg-port=0 is not valid: expected a whole number from 1 to 65535$"):
        load(pg_port=0)


def test_every_malformed_variable_is_reported_at_once(clean_env):
    clean_env.setenv("VOTE_LEDGER_BATCH_MAX", "abc")
    clean_env.setenv("VOTE_LEDGER_PG_PORT", "99999")
    with pytest.raises(UserError) as caught:
        load()
    assert "VOTE_LEDGER_BATCH_MAX='abc'" in str(caught.value) and "VOTE_LEDGER_PG_PORT='99999'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_expected_forms_read_as_words():
    assert expected_form("pg_port") == "a whole number from 1 to 65535"
    assert expected_form("consumer_group") == "printable text, not blank, at most 249 characters"
    assert expected_form("stall_check_s") == "a number of seconds above 0 and at most 86400"
    assert expected_form("home") == "text"


def test_the_readme_configuration_table_names_every_variable_and_only_those():
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    table = [line for line in section.splitlines() if line.startswith("| `VOTE_LEDGER_")]
    documented = set()
    for row in table:
        documented |= set(re.findall(r"`(VOTE_LEDGER_[A-Z_]+)`", row.split("|")[1]))
    assert documented == {variable(field) for field in Settings.model_fields}


@pytest.mark.parametrize("value", ["operator", "operator:", ":secret", ""])
def test_a_malformed_kafka_login_is_one_line_naming_the_variable_and_never_echoes_it(clean_env, value):
    clean_env.setenv("VOTE_LEDGER_KAFKA_LEDGER_LOGIN", value or ":")
    with pytest.raises(UserError) as caught:
        load()
    said = str(caught.value)
    assert said.startswith("VOTE_LEDGER_KAFKA_LEDGER_LOGIN is malformed (no user, ':' or password): expected user:")
    assert "\n" not in said and "secret" not in said and "'operator" not in said


def test_kafka_logins_are_secret_and_a_password_may_hold_a_colon(clean_env):
    clean_env.setenv("VOTE_LEDGER_KAFKA_CHANNEL_LOGIN", "channel-acme:pa:ss")
    current = load()
    assert current.kafka_channel_login.get_secret_value() == "channel-acme:pa:ss"
    assert "pa:ss" not in repr(current) and current.kafka_operator_login is None
    assert current.kafka_sasl_mechanism == "SCRAM-SHA-512"


def test_only_the_two_scram_mechanisms_are_accepted(clean_env):
    clean_env.setenv("VOTE_LEDGER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    assert load().kafka_sasl_mechanism == "SCRAM-SHA-256"
    clean_env.setenv("VOTE_LEDGER_KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(
        UserError,
        match=r"^VOTE_LEDGER_KAFKA_SASL_MECHANISM='PLAIN' is not valid: expected SCRAM-SHA-512 or SCRAM-SHA-256$",
    ):
        load()


def test_min_insync_above_the_replication_factor_is_refused_as_unwritable(clean_env, monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_TOPIC_REPLICATION", "3")
    assert load().topic_min_insync == 1
    monkeypatch.setenv("VOTE_LEDGER_TOPIC_MIN_INSYNC", "2")
    assert (load().topic_replication, load().topic_min_insync) == (3, 2)
    monkeypatch.setenv("VOTE_LEDGER_TOPIC_MIN_INSYNC", "4")
    with pytest.raises(UserError, match="VOTE_LEDGER_TOPIC_MIN_INSYNC=4 exceeds VOTE_LEDGER_TOPIC_REPLICATION=3"):
        load()

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
        ("VOTE_LEDGER_BATCH_MAX", "abc", "a whole number of at least 1"),
        ("VOTE_LEDGER_BATCH_MAX", "0", "a whole number of at least 1"),
        ("VOTE_LEDGER_PG_PORT", "99999", "a whole number from 1 to 65535"),
        ("VOTE_LEDGER_KAFKA_PORT", "-1", "a whole number from 1 to 65535"),
        ("VOTE_LEDGER_PARTITIONS", "four", "a whole number of at least 1"),
        ("VOTE_LEDGER_STALL_CHECK_S", "0", "a number of seconds above 0"),
        ("VOTE_LEDGER_HEADS_EVERY_SECONDS", "soon", "a number of seconds above 0"),
    ],
)
def test_a_malformed_value_is_one_line_naming_the_variable_the_value_and_the_form(clean_env, name, value, form):
    clean_env.setenv(name, value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"{name}={value!r} is not valid: expected {form}"


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
    assert expected_form("consumer_group") == "text"


def test_the_readme_configuration_table_names_every_variable_and_only_those():
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    table = [line for line in section.splitlines() if line.startswith("| `VOTE_LEDGER_")]
    documented = set()
    for row in table:
        documented |= set(re.findall(r"`(VOTE_LEDGER_[A-Z_]+)`", row.split("|")[1]))
    assert documented == {variable(field) for field in Settings.model_fields}

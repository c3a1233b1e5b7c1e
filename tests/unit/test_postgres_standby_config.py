"""The replicated stack's PostgreSQL configuration texts (services/devtools/stack/postgres.py, postgres_standby.py)."""

from pathlib import Path

from services.devtools.stack import postgres, postgres_standby
from services.devtools.stack.common import StackConfig

HOME = Path("/nonexistent/vote-ledger-home")  # never created: these read no file


def config(replicated: bool) -> StackConfig:
    return StackConfig(HOME, HOME / "cache", 19092, 19093, 15432, replicated=replicated)


def test_only_a_replicated_home_lets_the_replication_login_stream():
    assert "replication" not in postgres.hba_text(config(False))
    line = postgres.hba_text(config(True)).splitlines()[-1].split()
    assert line == ["host", "replication", "vl_replicator", "127.0.0.1/32", "scram-sha-256"]
    assert postgres.hba_text(config(False), replication=True) == postgres.hba_text(config(True))


def test_every_server_includes_its_replication_settings_file_and_listens_on_its_own_port():
    text = postgres.settings_text(15433)
    assert "port = 15433" in text
    assert f"include_if_exists = '{postgres.REPLICATION_CONF}'" in text


def test_the_standby_listens_one_port_above_the_primary():
    assert postgres_standby.standby_port(config(True)) == 15433


def test_the_primary_waits_for_the_standby_by_name_and_the_standby_for_no_one():
    primary = postgres_standby.PRIMARY_REPLICATION.format(names=postgres_standby.STANDBY_NAME)
    assert "synchronous_standby_names = 'vl_standby'" in primary
    # The standby's application_name is its cluster_name; promoted, it must not wait for a standby of its own.
    assert f"cluster_name = '{postgres_standby.STANDBY_NAME}'" in postgres_standby.STANDBY_REPLICATION
    assert "synchronous_standby_names = ''" in postgres_standby.STANDBY_REPLICATION

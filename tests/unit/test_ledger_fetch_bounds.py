"""The ledger's Kafka consumer fetches ahead in bounded bytes, from the settings, whatever the backlog."""

from __future__ import annotations

import pytest

from services.errors import UserError
from services.runtime.ledger_app import build_app
from services.settings import Settings, load


def consumer_config(settings: Settings) -> dict:
    """The options the ledger's subscriber builds its aiokafka consumer with."""
    _, ledger = build_app(settings)
    return ledger.subscriber._connection_args


def test_the_ledgers_consumer_fetches_at_most_1_mib_a_partition_and_16_mib_in_all_by_default(monkeypatch):
    monkeypatch.delenv("VOTE_LEDGER_PARTITION_FETCH_BYTES", raising=False)
    monkeypatch.delenv("VOTE_LEDGER_FETCH_MAX_BYTES", raising=False)
    config = consumer_config(Settings(kafka_bootstrap="127.0.0.1:9"))
    # aiokafka's own fetch_max_bytes default is 50 MiB, and the ledger asked 8 MiB a partition before issue 15:
    # a batch was then 20,000 signed records and the ledger's RSS 817 MiB at a 1,000,000-submission backlog.
    assert config["max_partition_fetch_bytes"] == 1 << 20
    assert config["fetch_max_bytes"] == 16 << 20


def test_the_fetch_bounds_are_taken_from_the_settings():
    config = consumer_config(
        Settings(kafka_bootstrap="127.0.0.1:9", partition_fetch_bytes=256 << 10, fetch_max_bytes=4 << 20)
    )
    assert config["max_partition_fetch_bytes"] == 256 << 10
    assert config["fetch_max_bytes"] == 4 << 20


def test_the_fetch_bounds_are_read_from_their_variables(monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_PARTITION_FETCH_BYTES", "524288")
    monkeypatch.setenv("VOTE_LEDGER_FETCH_MAX_BYTES", "8388608")
    settings = load()
    assert (settings.partition_fetch_bytes, settings.fetch_max_bytes) == (524288, 8388608)


@pytest.mark.parametrize("variable", ["VOTE_LEDGER_PARTITION_FETCH_BYTES", "VOTE_LEDGER_FETCH_MAX_BYTES"])
@pytest.mark.parametrize("value", ["0", "1023", "2147483648", "1MiB"])
def test_a_fetch_bound_outside_1_kib_to_kafkas_int32_is_refused_in_one_line(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError) as caught:
        load()
    assert str(caught.value) == f"{variable}={value!r} is not valid: expected a whole number from 1024 to 2147483647"

"""The one line a command ends with: plain text, or a JSON log line for `services run` logging JSON."""

from __future__ import annotations

import json

import pytest

from services import cli


@pytest.fixture
def json_logs(monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_LOG_FORMAT", "json")


LINE = "cannot listen on 127.0.0.1:48472: Address already in use"


def test_services_run_logging_json_ends_with_a_json_error_line(json_logs, capsys):
    cli.say_fatal(cli.build_parser().parse_args(["services", "run", "ledger"]), LINE)
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["event"]) == ("error", "vote_ledger.cli", LINE)
    assert record["timestamp"].endswith("Z")


def test_other_commands_keep_the_plain_line_even_when_logs_are_json(json_logs, capsys):
    cli.say_fatal(cli.build_parser().parse_args(["tally", "--meeting", "m1"]), LINE)
    assert capsys.readouterr().err.splitlines() == [f"vote-ledger: {LINE}"]


def test_services_run_logging_text_keeps_the_plain_line(monkeypatch, capsys):
    monkeypatch.setenv("VOTE_LEDGER_LOG_FORMAT", "text")
    cli.say_fatal(cli.build_parser().parse_args(["services", "run"]), LINE)
    assert capsys.readouterr().err.splitlines() == [f"vote-ledger: {LINE}"]


def test_a_malformed_log_format_is_said_in_the_plain_line(monkeypatch, capsys):
    monkeypatch.setenv("VOTE_LEDGER_LOG_FORMAT", "xml")
    cli.say_fatal(cli.build_parser().parse_args(["services", "run"]), "VOTE_LEDGER_LOG_FORMAT must be text or json")
    assert capsys.readouterr().err.splitlines() == ["vote-ledger: VOTE_LEDGER_LOG_FORMAT must be text or json"]

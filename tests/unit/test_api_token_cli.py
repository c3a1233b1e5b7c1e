"""`vote-ledger api token revoke` never echoes what it was given unless it is a token id: it may be a whole token."""

from __future__ import annotations

import pytest

from services.api.auth import new_token
from services.cli import main


def test_revoke_given_a_whole_token_names_its_id_and_never_prints_the_secret(capsys, monkeypatch):
    monkeypatch.setenv("VOTE_LEDGER_PG_DSN", "postgresql://nobody@127.0.0.1:1/none")  # refused before any connect
    text, token_id, _ = new_token()
    assert main(["api", "token", "revoke", text]) == 2
    err = capsys.readouterr().err
    assert "that looks like a token, not a token id" in err and token_id in err and err.count("\n") == 1
    assert text not in err and text.split("_", 2)[2] not in err


@pytest.mark.parametrize("given", ["not-an-id", "0123456789AB", "0123456789abc", "hunter2-my-password"])
def test_revoke_given_anything_else_that_is_not_an_id_says_what_an_id_is_without_repeating_it(given, capsys):
    assert main(["api", "token", "revoke", given]) == 2
    err = capsys.readouterr().err
    assert "a token id is 12 lower-case hex digits" in err and given not in err

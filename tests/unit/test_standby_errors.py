"""What a command says when a hot standby refuses it: one line, not a traceback (services.adapters.postgres.connect)."""

from __future__ import annotations

import asyncpg

from services.adapters.postgres.connect import unreachable


def test_a_read_the_standby_cancelled_for_a_recovery_conflict_is_one_line_saying_to_run_it_again():
    line = unreachable(asyncpg.SerializationError("canceling statement due to conflict with recovery"))
    assert line is not None
    assert line.startswith("the standby cancelled this read (canceling statement due to conflict with recovery)")
    assert "run it again" in line and "hot_standby_feedback = on" in line


def test_a_serialization_failure_on_a_primary_is_not_mistaken_for_a_standby_conflict():
    assert unreachable(asyncpg.SerializationError("could not serialize access due to concurrent update")) is None


def test_a_write_refused_by_a_read_only_server_names_the_primary_as_the_place_for_writers():
    # Also the reader's read-only login on the primary: the same error, so both causes are named.
    line = unreachable(asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"))
    assert line == (
        "PostgreSQL refused a write (cannot execute INSERT in a read-only transaction): this command's DSN points"
        " at a hot standby, or logs in read-only (e.g. the reader's login); point it at the primary, with a login"
        " that may write"
    )

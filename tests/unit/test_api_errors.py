"""The API's error answers: an outage is logged once per 30 s with a count, not once per request."""

from __future__ import annotations

import logging

from services.api.errors import OutageLog


def test_an_outage_logs_its_first_failure_then_one_line_per_interval_with_the_count_in_between(caplog):
    now = [100.0]
    outages = OutageLog(interval_s=30.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="services.api.errors")
    for _ in range(5):
        outages.note(ConnectionRefusedError())
        now[0] += 1
    assert len(caplog.records) == 1 and "ConnectionRefusedError" in caplog.records[0].getMessage()
    now[0] = 131.0
    outages.note(TimeoutError())
    assert len(caplog.records) == 2 and "4 more requests answered 503" in caplog.records[1].getMessage()


def test_a_recently_verified_secret_is_admitted_for_10_minutes_and_never_once_the_database_refused_it():
    from services.api.auth import Caller, RecentlyVerified, secret_digest

    now = [0.0]
    memory = RecentlyVerified(clock=lambda: now[0])
    caller = Caller("0123456789ab", "prometheus", "ops")
    memory.remember(secret_digest("s" * 43), caller)
    now[0] = 600.0
    assert memory.recent(secret_digest("s" * 43)) == caller and memory.recent(secret_digest("t" * 43)) is None
    now[0] = 600.5
    assert memory.recent(secret_digest("s" * 43)) is None
    memory.remember(secret_digest("s" * 43), caller)
    memory.forget(secret_digest("s" * 43))  # revoked: the next lookup that reached the database refused it
    assert memory.recent(secret_digest("s" * 43)) is None
    assert all(isinstance(key, bytes) and len(key) == 32 for key in memory.seen)  # digests only, never a token

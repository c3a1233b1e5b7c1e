"""The ledger's JSON log lines carry the Kafka record, event and meeting they are about (issue 13, Logs)."""

from __future__ import annotations

import io
import json
import logging

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish, publish_raw
from services.observability import logs
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def json_lines():
    """The root logger's records rendered as VOTE_LEDGER_LOG_FORMAT=json renders them; a function parses them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


async def test_a_garbage_record_and_a_vote_that_fails_log_their_partition_offset_event_and_meeting(
    settings, monkeypatch, json_lines
):
    from projections.judge import Judge

    original = Judge.judge

    def judge(self, event, received=None):
        if getattr(event, "control_number", None) == "R-2":
            raise ArithmeticError("a bug of ours, triggered by one record")
        return original(self, event, received)

    monkeypatch.setattr(Judge, "judge", judge)  # a fault of our own code on one vote: it is parked, logged
    failing = cast("R-2", {"2": "for"})
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        await publish_raw(client, settings.submissions_topic, [(b"R-9", b"garbage, not JSON")])
        await publish(client, settings, [cast("R-1", {"2": "for"}), failing])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 2)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        parked = {
            r["reason"]: (r["source_partition"], r["source_offset"])
            for r in await conn.fetch("SELECT reason, source_partition, source_offset FROM ledger_parked")
        }
    finally:
        await conn.close()
    lines = json_lines()
    about = lambda reason: [  # noqa: E731
        line for line in lines if line["event"].startswith(("parked", "parking")) and reason in line["event"]
    ]
    garbage = about("invalid_json")
    assert garbage, lines
    for line in garbage:
        assert (line["partition"], line["offset"]) == parked["invalid_json"]
        assert line["topic"] == settings.submissions_topic and "event_id" not in line  # nothing to decode it from
    vote = about("ArithmeticError") + about("unprocessable")
    assert {line["event"].split()[0] for line in vote} == {"parking", "parked"}, vote  # its failure, its parking
    for line in vote:
        assert (line["partition"], line["offset"]) == parked["unprocessable"]
        assert (line["event_id"], line["meeting_id"]) == (failing.event_id, "m1")
    # The batch that failed and was committed one by one says which records it held.
    retried = [line for line in lines if "committing one by one" in line["event"]]
    assert retried and all(f"{settings.submissions_topic}/" in line["batch"] for line in retried), retried

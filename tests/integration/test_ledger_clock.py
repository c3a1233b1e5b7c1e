"""The broker's clock on every row (appended_at): recorded, covered by the chain, and the cut-off judged on it (R12)."""

import asyncio
import hashlib
import json
import zipfile
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from events import Cutoffs
from projections.chain import ChainRow
from services.adapters.kafka.topics import producer, publish
from services.read.offline import verify_file
from services.read.verify import verify_meeting
from tests.chain_helpers import rechain
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for
from tests.integration.test_export_offline import rewrite

pytestmark = pytest.mark.integration


def _at(vote, when: datetime):
    """The vote as its channel would date it: executed and received at ``when``."""
    return msgspec.structs.replace(vote, executed_at=when, received_at=when)


async def test_the_broker_append_time_is_recorded_and_an_edit_of_it_breaks_the_chain(settings):
    vote = cast("R-1", {"2": "for"})  # dated 2023 by its channel
    before = datetime.now(UTC)
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event(), vote])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT position, appended_at, received_at, recorded_at, chain_version FROM ledger_log WHERE event_id = $1",
            vote.event_id,
        )
        # The broker's clock, not the channel's: within the test's run, whatever received_at says.
        assert before - timedelta(seconds=5) <= row["appended_at"] <= row["recorded_at"]
        assert row["received_at"] == vote.received_at and row["chain_version"] == 3
        assert (await verify_meeting(conn, "m1")).ok
        await conn.execute("SET session_replication_role = replica")  # a superuser past the append-only trigger
        await conn.execute(
            "UPDATE ledger_log SET appended_at = appended_at - interval '1 hour' WHERE position = $1", row["position"]
        )
        result = await verify_meeting(conn, "m1")
        assert result.chain_break is not None and result.chain_break.position == row["position"]
    finally:
        await conn.close()


async def test_a_back_dated_submission_the_broker_appended_past_the_cutoff_and_grace_is_rejected(settings):
    async with running_ledger(settings), producer(settings) as client:
        # The cut-off counts from a running ledger and producer: counted from before they started, 2 s were
        # gone under a loaded machine (load average 12) before the in-time vote was even appended.
        now = datetime.now(UTC)
        cutoff = now + timedelta(seconds=3)
        meeting = small_meeting(
            meeting_at=now + timedelta(days=1),
            cutoffs=Cutoffs(internet=cutoff, phone=cutoff),
            broker_grace_s=1,
        )
        in_time = _at(cast("R-1", {"2": "for"}), now - timedelta(minutes=5))
        late = _at(cast("R-2", {"2": "for"}), now - timedelta(minutes=5))  # says it was received before the cut-off
        await publish(client, settings, [meeting, register_event(), in_time])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
        await asyncio.sleep(max(0.0, (cutoff + timedelta(seconds=1.5) - datetime.now(UTC)).total_seconds()))
        await publish(client, settings, [late])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = {
        r["event_id"]: r
        for r in await conn.fetch("SELECT event_id, decision, reason, appended_at, received_at FROM ledger_log")
    }
    assert (await verify_meeting(conn, "m1")).ok  # the audit re-judges on the recorded broker time too
    await conn.close()
    assert (rows[in_time.event_id]["decision"], rows[in_time.event_id]["reason"]) == ("accepted", None)
    late_row = rows[late.event_id]
    assert late_row["received_at"] < cutoff < late_row["appended_at"] - timedelta(seconds=1)
    assert (late_row["decision"], late_row["reason"]) == ("rejected", "cutoff_passed")


async def test_an_export_carries_the_broker_time_and_a_changed_one_fails_at_that_row(exported, tmp_path):
    path, manifest, _tally, _report = exported
    with zipfile.ZipFile(path) as original:
        rows = [json.loads(line) for line in original.read("log.jsonl").splitlines()]
    assert [r["appended_at"] is not None for r in rows[:3]] == [True, True, True]  # both topics: LogAppendTime

    def later(log: bytes) -> bytes:
        edited = [json.loads(line) for line in log.splitlines()]
        edited[2]["appended_at"] = "2023-11-01T00:00:00+00:00"  # e.g. to bring a late vote before the cut-off
        return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in edited)

    rewrite(path, tmp_path / "later.zip", "log.jsonl", later)
    result = verify_file(tmp_path / "later.zip", expect_hash=manifest.final_hash)
    assert not result.ok and (result.chain_break.position, result.chain_break.problem) == (3, "altered")


async def test_an_export_of_format_v2_without_broker_times_still_verifies(exported, tmp_path):
    """Exports written before chain v3 hold v2 rows with no appended_at; they must keep verifying."""
    path, _manifest, _tally, _report = exported
    with zipfile.ZipFile(path) as original:
        rows = [json.loads(line) for line in original.read("log.jsonl").splitlines()]
        manifest = json.loads(original.read("manifest.json"))
        parked = original.read("parked.jsonl")
    keep = ("position", "prev_position", "meeting_id", "event_id", "type", "decision", "reason", "payload")
    source = ("source_topic", "source_partition", "source_offset")
    chained = rechain(
        [
            ChainRow(
                **{k: r[k] for k in keep + source},
                hash=None,
                chain_version=2,
                recorded_at=datetime.fromisoformat(r["recorded_at"]),
            )
            for r in rows
        ]
    )
    old_rows = [
        {k: v for k, v in r.items() if k != "appended_at"} | {"hash": c.hash.hex(), "chain_version": 2}
        for r, c in zip(rows, chained, strict=True)
    ]
    log = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in old_rows)
    manifest.update(format_version=2, final_hash=old_rows[-1]["hash"], log_sha256=hashlib.sha256(log).hexdigest())
    with zipfile.ZipFile(tmp_path / "v2.zip", "w") as out:
        out.writestr("log.jsonl", log)
        out.writestr("manifest.json", json.dumps(manifest))
        out.writestr("parked.jsonl", parked)
    result = verify_file(tmp_path / "v2.zip", expect_hash=old_rows[-1]["hash"])
    assert result.ok, result.as_dict()

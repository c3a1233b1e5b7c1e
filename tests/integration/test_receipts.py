"""Holders' receipts through the real stack: votes published on Kafka, logged by the ledger, proven against the head
it published on ledger.heads, and checked offline with the CLI alone; consistency between two published heads."""

import asyncio
import json
import os
import sys
from dataclasses import replace

import asyncpg
import pytest

from events import encode
from services.adapters.kafka.topics import producer, publish, publish_raw
from services.adapters.postgres.log.verify import CHAIN_ROWS, chain_row
from services.runtime.chain_heads import read_heads
from tests.chain_helpers import rechain
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import cli, running_ledger, wait_for

pytestmark = pytest.mark.integration

# Unsigned ids outside every channel's namespace: S6 refuses an unsigned "internet:..." (rules.md S6).
FIRST = cast("R-1", {"2": "for"}, executed=1, event_id="internet/R-1/first")
PHONE = cast("R-2", {"2": "against"}, executed=2, channel="phone", event_id="phone/R-2/only", submitted_by="Dana")
LATER = cast("R-1", {"2": "against", "3": "for"}, executed=3, event_id="internet/R-1/later")
EARLY = [small_meeting(), register_event(), FIRST, PHONE]
LATE = [LATER]  # alone: rows of one batch on two partitions may be logged in either order


async def offline(*args: str) -> tuple[int, str, str]:
    """Run `vote-ledger` as a holder would: no database, no Kafka in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from services.cli import main; sys.exit(main())",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def meeting_heads(settings):
    return [h for h in await read_heads(settings) if h.meeting_id == "m1" and h.tree_size]


@pytest.fixture
async def logged(settings):
    """The meeting logged in two runs of the ledger, each publishing its heads as it stops; yields the heads."""
    async with producer(settings) as client:
        async with running_ledger(settings):
            await publish(client, settings, EARLY)
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY))
        async with running_ledger(settings):
            await publish(client, settings, LATE)
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY) + len(LATE))
    heads = await meeting_heads(settings)
    assert [h.tree_size for h in heads][-1] == len(EARLY) + len(LATE)
    return heads


async def test_a_vote_proven_from_the_live_log_checks_offline_against_the_published_head(settings, logged, tmp_path):
    bundle, head = tmp_path / "receipt.json", logged[-1]
    code, out, err = await cli(settings, "audit", "prove", LATER.event_id, "--out", str(bundle))
    assert code == 0, err
    assert f"published on ledger.heads at {head.published_at}" in out and head.merkle_root in out
    code, out, err = await offline("audit", "receipt", str(bundle), "--head-size", "5", "--root", head.merkle_root)
    assert code == 0, out + err
    assert out.startswith(f"VALID receipt: event {LATER.event_id} of meeting m1, log position 5")
    assert "Decision: accepted" in out and "COUNTS: the instruction the tally counts for control number R-1" in out
    assert "Dana" not in bundle.read_text()  # another holder's vote is a hash on a path, never its contents


async def test_a_superseded_vote_reports_what_superseded_it(settings, logged, tmp_path):
    bundle = tmp_path / "first.json"
    code, _out, err = await cli(settings, "audit", "prove", FIRST.event_id, "--out", str(bundle))
    assert code == 0, err
    code, out, err = await offline("audit", "receipt", str(bundle), "--json")
    report = json.loads(out)
    assert code == 0 and report["valid"] and not report["pinned"], err
    assert (report["status"], report["rule"], report["by"]) == (
        "superseded",
        "R5",
        {"position": 5, "event_id": LATER.event_id},
    )
    code, out, _err = await offline("audit", "receipt", str(bundle))
    assert f"DOES NOT COUNT: superseded under R5 by #5 {LATER.event_id}" in out


async def test_proving_from_an_export_gives_the_same_bundle_as_the_live_log(settings, logged, tmp_path):
    export = tmp_path / "m1.zip"
    code, _out, err = await cli(settings, "export", "--meeting", "m1", "--out", str(export))
    assert code == 0, err
    live, from_file = tmp_path / "live.json", tmp_path / "file.json"
    for args, out in (((), live), (("--file", str(export)), from_file)):
        code, _out, err = await cli(
            settings, "audit", "prove", FIRST.event_id, "--head-size", "5", *args, "--out", str(out)
        )
        assert code == 0, err
    assert live.read_bytes() == from_file.read_bytes()
    assert json.loads(live.read_text())["submission"]["appended_at"] is not None  # the broker's time, hashed (v3)
    code, stdout, _err = await offline("audit", "prove", FIRST.event_id, "--file", str(export))
    assert code == 0 and json.loads(stdout)["submission"]["event_id"] == FIRST.event_id


async def test_a_receipt_against_the_earlier_head_is_invalid_when_the_later_head_is_pinned(settings, logged, tmp_path):
    early, late = logged[0], logged[-1]
    assert early.tree_size == len(EARLY)
    bundle = tmp_path / "early.json"
    code, _out, err = await cli(
        settings, "audit", "prove", FIRST.event_id, "--head-size", str(early.tree_size), "--out", str(bundle)
    )
    assert code == 0, err
    code, out, _err = await offline("audit", "receipt", str(bundle), "--head-size", "4", "--root", early.merkle_root)
    assert code == 0 and "COUNTS" in out and "a later submission may change it" in out
    code, out, _err = await offline("audit", "receipt", str(bundle), "--head-size", "5", "--root", late.merkle_root)
    assert code == 1 and out.startswith("INVALID receipt") and "not the pinned head of 5" in out


async def test_the_later_published_head_is_consistent_with_the_earlier_and_a_rewrite_breaks_it(
    settings, logged, tmp_path
):
    early, late = logged[0], logged[-1]
    proof = tmp_path / "consistency.json"
    code, out, err = await cli(
        settings, "audit", "consistency", "--meeting", "m1", "--old-size", "4", "--old-root", early.merkle_root,
        "--out", str(proof),
    )  # fmt: skip
    assert code == 0 and out.rstrip().endswith("CONSISTENT") and f"published at {late.published_at}" in out, err
    pins = ["--old-size", "4", "--old-root", early.merkle_root, "--new-size", "5", "--new-root", late.merkle_root]
    code, out, err = await offline("audit", "consistency", "--check", str(proof), *pins)
    assert code == 0 and out.rstrip().endswith("CONSISTENT"), out + err

    # A superuser rewrites the phone vote and re-hashes the chain to its end, as test_tamper's attacker does.
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        rows = [chain_row(r) for r in await conn.fetch(CHAIN_ROWS, "m1")]
        at = next(i for i, r in enumerate(rows) if r.event_id == PHONE.event_id)
        edited = replace(rows[at], payload=rows[at].payload.replace('"against"', '"for"'))
        for row in rechain([edited, *rows[at + 1 :]], (rows[at - 1].position, rows[at - 1].hash)):
            await conn.execute(
                "UPDATE ledger_log SET hash = $2, payload = $3::json WHERE position = $1",
                row.position,
                row.hash,
                row.payload,
            )
    finally:
        await conn.close()
    code, out, err = await cli(
        settings, "audit", "consistency", "--meeting", "m1", "--old-size", "4", "--old-root", early.merkle_root,
        "--new-size", "5",
    )  # fmt: skip
    assert code == 1 and "NOT CONSISTENT" in out and "rows before it were rewritten or removed" in out, out + err
    code, _out, err = await cli(settings, "audit", "prove", LATER.event_id)
    assert code == 2 and "no longer hash to the root published at" in err, err  # a one-line UserError


async def test_the_receipt_of_a_rejected_submission_naming_anothers_control_number_shows_none_of_their_votes(
    settings, tmp_path
):
    # Anyone able to publish sends a vote naming R-1's control number that is rejected (here: the Kafka
    # key names R-2), then asks for its receipt: it proves that row alone, live or from an export.
    probe = cast("R-1", {"2": "against"}, executed=4, event_id="prober-1", submitted_by="nobody")
    async with producer(settings) as client, running_ledger(settings):
        await publish(client, settings, EARLY)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY))
        await publish_raw(client, settings.submissions_topic, [(b"R-2", encode(probe))])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY) + 1)
    export = tmp_path / "m1.zip"
    code, _out, err = await cli(settings, "export", "--meeting", "m1", "--out", str(export))
    assert code == 0, err
    for args, out in (((), tmp_path / "live.json"), (("--file", str(export)), tmp_path / "file.json")):
        code, _out, err = await cli(settings, "audit", "prove", probe.event_id, *args, "--out", str(out))
        assert code == 0, err
        bundle = json.loads(out.read_text())
        assert (bundle["submission"]["decision"], bundle["submission"]["reason"]) == ("rejected", "key_mismatch")
        assert (bundle["others"], bundle["meeting"], bundle["register"], bundle["state"]) == ([], [], None, None)
        assert FIRST.event_id not in out.read_text()  # R-1's accepted vote is a hash on a path, never its contents
        code, text, err = await offline("audit", "receipt", str(out))
        assert code == 0 and "DOES NOT COUNT: rejected by the ledger (key_mismatch)" in text, text + err


async def test_an_attackers_rejected_row_logged_first_under_a_victims_id_does_not_take_the_victims_receipt(
    settings, tmp_path
):
    # The attacker guesses the victim's event id and gets a row logged under it first (rejected: the
    # Kafka key names R-2); the victim's own vote under that id is accepted after it. `audit prove` proves
    # the accepted row; the ledger's answer's row hash selects the attacker's. Two rejected rows under an
    # id and none accepted: a selector is required.
    squat = cast("R-1", {"2": "for"}, executed=4, event_id="internet/R-1/victim", submitted_by="attacker")
    victim = cast("R-1", {"2": "against"}, executed=5, event_id="internet/R-1/victim", submitted_by="holder")
    ghosts = [cast("R-1", {"2": c}, executed=6, event_id="internet/R-1/ghost") for c in ("for", "against")]
    async with producer(settings) as client, running_ledger(settings):
        await publish(client, settings, EARLY)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY))
        await publish_raw(client, settings.submissions_topic, [(b"R-2", encode(squat))])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY) + 1)
        await publish(client, settings, [victim])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY) + 2)
        await publish_raw(client, settings.submissions_topic, [(b"R-2", encode(g)) for g in ghosts])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(EARLY) + 4)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch("SELECT position, decision, event_id, hash FROM ledger_log ORDER BY position")
    finally:
        await conn.close()
    squatted = [r for r in rows if r["event_id"] == victim.event_id]
    assert [r["decision"] for r in squatted] == ["rejected", "accepted"]
    export = tmp_path / "m1.zip"
    code, _out, err = await cli(settings, "export", "--meeting", "m1", "--out", str(export))
    assert code == 0, err
    for args in ((), ("--file", str(export))):
        out = tmp_path / "victim.json"
        code, _out, err = await cli(settings, "audit", "prove", victim.event_id, *args, "--out", str(out))
        assert code == 0, err
        assert json.loads(out.read_text())["submission"]["position"] == squatted[1]["position"]
        code, text, err = await offline("audit", "receipt", str(out), "--row-hash", squatted[1]["hash"].hex())
        assert code == 0 and "Decision: accepted" in text and "COUNTS" in text and "attacker" not in text, text + err
        code, _out, err = await cli(
            settings,
            "audit",
            "prove",
            victim.event_id,
            *args,
            "--row-hash",
            squatted[0]["hash"].hex(),
            "--out",
            str(out),
        )
        assert code == 0, err
        assert json.loads(out.read_text())["submission"]["reason"] == "key_mismatch"
        code, _out, err = await cli(settings, "audit", "prove", "internet/R-1/ghost", *args)
        ghost_positions = [r["position"] for r in rows if r["event_id"] == "internet/R-1/ghost"]
        assert code == 2 and "has 2 rows, none accepted" in err and "--position N or --row-hash HASH" in err, err
        assert all(f"position {p} (rejected: key_mismatch)" in err for p in ghost_positions)
        code, _out, err = await cli(
            settings,
            "audit",
            "prove",
            "internet/R-1/ghost",
            *args,
            "--position",
            str(ghost_positions[1]),
            "--out",
            str(out),
        )
        assert code == 0 and json.loads(out.read_text())["submission"]["position"] == ghost_positions[1], err

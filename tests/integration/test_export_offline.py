"""Offline audit: export a meeting, verify it and reproduce its reports with no services at all."""

import hashlib
import json
import zipfile

import pytest

from projections.chain import ChainRow
from projections.report import render_json, render_markdown
from services.read.export_file import read_manifest
from services.read.offline import final_report_from_file, tally_from_file, verify_file
from tests.chain_helpers import rechain
from tests.integration.helpers import EXPORT_TOTAL, cli

pytestmark = pytest.mark.integration


async def test_an_export_verifies_offline_and_its_manifest_anchors_the_log(exported):
    path, manifest, _tally, _report = exported
    result = verify_file(path)
    assert result.ok, result.as_dict()
    assert (manifest.rows, manifest.accepted, manifest.rejected) == (EXPORT_TOTAL, EXPORT_TOTAL - 1, 1)
    assert result.final_hash == manifest.final_hash and manifest.as_of_position == EXPORT_TOTAL
    assert (manifest.format_version, manifest.parked_rows, result.parked.rows) == (3, 1, 1)
    assert result.v1_rows == 0 and result.parked.first_break is None


def rewrite(path, out, member: str, edit) -> None:
    """Copy an export, changing one member's bytes: what a forger handing out a file could do."""
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(out, "w") as forged:
        for name in original.namelist():
            data = original.read(name)
            forged.writestr(name, edit(data) if name == member else data)


async def test_a_changed_recorded_at_in_an_export_fails_at_that_row(exported, tmp_path):
    path, manifest, _tally, _report = exported

    def earlier(log: bytes) -> bytes:
        rows = [json.loads(line) for line in log.splitlines()]
        rows[3]["recorded_at"] = "2023-11-01T00:00:00+00:00"  # e.g. to move it before a `tally --as-of TIME`
        return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows)

    rewrite(path, tmp_path / "earlier.zip", "log.jsonl", earlier)
    result = verify_file(tmp_path / "earlier.zip", expect_hash=manifest.final_hash)
    assert not result.ok and (result.chain_break.position, result.chain_break.problem) == (4, "altered")


async def test_a_changed_parked_message_in_an_export_fails_on_its_chain(exported, tmp_path):
    path, _manifest, _tally, _report = exported

    def reworded(data: bytes) -> bytes:
        message = json.loads(data)
        assert message["detail"] and message["value"]
        return json.dumps({**message, "detail": "nothing to see"}).encode() + b"\n"

    rewrite(path, tmp_path / "parked.zip", "parked.jsonl", reworded)
    result = verify_file(tmp_path / "parked.zip")
    assert not result.ok and result.parked.first_break.problem == "altered"


async def test_an_export_of_format_v1_without_parked_messages_still_verifies(exported, tmp_path):
    """Exports written before chain v2 hold v1 rows and no parked.jsonl; they must keep verifying."""
    path, _manifest, _tally, _report = exported
    with zipfile.ZipFile(path) as original:
        rows = [json.loads(line) for line in original.read("log.jsonl").splitlines()]
        manifest = json.loads(original.read("manifest.json"))
    keep = ("position", "prev_position", "meeting_id", "event_id", "type", "decision", "reason", "payload")
    chained = rechain([ChainRow(**{k: r[k] for k in keep}, hash=None) for r in rows])
    old_rows = [
        {**{k: r[k] for k in keep}, "hash": c.hash.hex(), "recorded_at": r["recorded_at"]}
        for r, c in zip(rows, chained, strict=False)
    ]
    log = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in old_rows)
    manifest.update(format_version=1, final_hash=old_rows[-1]["hash"], log_sha256=hashlib.sha256(log).hexdigest())
    for key in ("parked_rows", "parked_final_hash", "parked_sha256"):
        del manifest[key]
    with zipfile.ZipFile(tmp_path / "v1.zip", "w") as out:
        out.writestr("log.jsonl", log)
        out.writestr("manifest.json", json.dumps(manifest))
    result = verify_file(tmp_path / "v1.zip", expect_hash=old_rows[-1]["hash"])
    assert result.ok, result.as_dict()
    assert result.v1_rows == EXPORT_TOTAL and result.parked is None


async def test_the_offline_tally_and_final_report_equal_the_online_ones_byte_for_byte(exported):
    path, _manifest, online_tally, online_report = exported
    assert tally_from_file(path) == online_tally
    offline = final_report_from_file(path)
    assert online_report["log"]["chain"].startswith(f"{EXPORT_TOTAL}:")
    assert render_markdown(offline) == render_markdown(online_report)
    assert render_json(offline) == render_json(online_report)


async def test_an_edited_export_fails_verification_at_the_edited_row(exported, tmp_path):
    path, _manifest, _tally, _report = exported
    with zipfile.ZipFile(path) as original:
        log = original.read("log.jsonl").replace(b'\\"against\\"', b'\\"for\\"')
        manifest = original.read("manifest.json")
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as out:
        out.writestr("log.jsonl", log)
        out.writestr("manifest.json", manifest)
    result = verify_file(forged)
    assert not result.ok and result.chain_break.problem == "altered"
    assert read_manifest(forged).meeting_id == "m1"


async def test_the_cli_verifies_and_tallies_an_export_with_no_services_configured(exported, tmp_path):
    import json
    import os
    import subprocess
    import sys

    path, manifest, online_tally, _report = exported
    # No Kafka, no PostgreSQL: the variables that would point at them are removed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_")}
    cli = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]
    verified = subprocess.run(
        [*cli, "audit", "verify", "--file", str(path), "--expect-hash", manifest.final_hash],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0 and "VERIFIED" in verified.stdout, verified.stdout + verified.stderr
    tally = subprocess.run(
        [*cli, "tally", "--file", str(path), "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(tally.stdout) == online_tally
    wrong = subprocess.run(
        [*cli, "audit", "verify", "--file", str(path), "--expect-hash", "00" * 32],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1 and "NOT VERIFIED" in wrong.stdout
    assert "SKIP published chain heads: NOT CHECKED (offline)" in verified.stdout
    assert "ok   parked messages' chain: 1 message(s)" in verified.stdout


async def test_exporting_or_verifying_nothing_is_a_user_error(settings, exported, tmp_path):
    code, _out, err = await cli(settings, "export", "--meeting", "no-such-meeting", "--out", str(tmp_path / "x.zip"))
    assert code == 2 and "no row of meeting 'no-such-meeting'" in err and not (tmp_path / "x.zip").exists()
    path = exported[0]
    rewrite(path, tmp_path / "empty.zip", "log.jsonl", lambda data: b"")
    code, _out, err = await cli(settings, "audit", "verify", "--file", str(tmp_path / "empty.zip"))
    assert code == 2 and "holds no log row" in err


async def test_the_final_reports_chain_value_anchors_an_offline_verification(exported):
    path, _manifest, _tally, online_report = exported
    assert verify_file(path, expect_hash=online_report["log"]["chain"]).ok
    assert not verify_file(path, expect_hash=f"{EXPORT_TOTAL}:{'ab' * 32}").ok


async def test_an_exported_duplicate_event_id_rejection_needs_an_accepted_row_of_its_id_in_the_meeting(
    settings, tmp_path
):
    """R18 is per meeting, so the row a duplicate_event_id rejection stands behind is in the export."""
    import asyncpg

    from services.read.export import export_meeting
    from tests.factories import cast, register_event, small_meeting
    from tests.integration.helpers import append, log_row

    vote = cast("R-1", {"2": "for"}, executed=1, event_id="e-ok")
    other_bytes = cast("R-1", {"2": "against"}, executed=2, event_id="e-ok")
    applied_elsewhere = cast("R-1", {"2": "for"}, executed=1, event_id="hidden-1", meeting_id="m2")
    hidden = cast("R-2", {"2": "for"}, executed=1, event_id="hidden-1")
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await append(conn, [log_row(small_meeting()), log_row(register_event()), log_row(vote)])
        await append(conn, [log_row(other_bytes, "rejected", "duplicate_event_id"), log_row(applied_elsewhere)])
        honest, forged = tmp_path / "honest.zip", tmp_path / "forged.zip"
        await export_meeting(conn, "m1", honest)  # a squat after the id was applied in the meeting: fine
        await append(conn, [log_row(hidden, "rejected", "duplicate_event_id")])  # applied only in m2
        position = await conn.fetchval(
            "SELECT position FROM ledger_log WHERE meeting_id = 'm1' AND event_id = $1", "hidden-1"
        )
        await export_meeting(conn, "m1", forged)
    finally:
        await conn.close()
    # (Not projected, so neither export is ok as a whole: only the R18 check is looked at here.)
    assert [p for p in verify_file(honest).problems if "duplicate_event_id" in p] == []
    result = verify_file(forged)
    assert not result.ok
    assert [p for p in result.problems if "duplicate_event_id" in p] == [
        f"row {position} is rejected as duplicate_event_id, but no earlier row of its meeting applied its id"
    ]

"""`meeting load` says what the ledger decided: accepted, already loaded, or rejected, each event named.

Through Kafka and the ledger: the example register loaded, loaded again unchanged (R18: already
loaded, exit 0), then changed by one share moved between two owners (same totals: the ledger rejects
the new meeting.scheduled and chunk; exit 1, nothing mixed). An interrupted load completed by loading
the same files again is accepted, the events logged before said so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.adapters.kafka.topics import producer, publish
from services.registers.build import load_register
from tests.integration.helpers import cli, running_ledger, wait_for

pytestmark = pytest.mark.integration

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
REGISTER = MEETINGS / "alder-2025-agm-register"
ROWS = "SELECT count(*) FROM ledger_log WHERE meeting_id = 'alder-2025-agm'"


def moved_one_share(tmp_path: Path) -> Path:
    """The example register with one share moved from one Harbor Securities owner to another: same totals."""
    register = Path(shutil.copytree(REGISTER, tmp_path / "moved"))
    path = register / "beneficial.csv"
    text = path.read_text()
    for old, new in (
        ("0015,Brian Murphy,420240", "0015,Brian Murphy,420239"),
        ("0015,Paula Novak,714320", "0015,Paula Novak,714321"),
    ):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return register


async def test_a_load_reports_accepted_then_already_loaded_then_a_changed_register_rejected_event_by_event(
    settings, tmp_path
):
    loaded = load_register(MEETING, REGISTER)
    moved = moved_one_share(tmp_path)
    changed = load_register(MEETING, moved)
    assert changed.meeting.register.shares == loaded.meeting.register.shares
    load = ("meeting", "load", str(MEETING), "--quiet", "--wait", "60")
    async with running_ledger(settings):
        code, out, err = await cli(settings, *load, "--register", str(REGISTER))
        assert code == 0, out + err
        assert "the ledger accepted all 2 events\n" in out
        assert out.rstrip().endswith("register each real channel's key with `vote-ledger channel register`")

        code, out, err = await cli(settings, *load, "--register", str(REGISTER))
        assert code == 0, out + err
        assert "already loaded: the ledger had accepted all 2 events before (R18: applied once)" in out
        await wait_for(settings.pg_dsn, ROWS, 2)  # the same records again: no row

        code, out, err = await cli(settings, *load, "--register", str(moved))
        assert code == 1, out + err
        lines = out.splitlines()
        at = lines.index("the ledger rejected 2 of 2 events:")
        assert lines[at + 1 : at + 4] == [
            f"  meeting.scheduled (event {changed.meeting.event_id}): duplicate_meeting",
            f"  positions.recorded chunk 0 (event {changed.chunks[0].event_id}): duplicate_chunk",
            "the log holds another version of this meeting or its register, which stands: a changed register needs "
            "a new meeting id (docs/register.md)",
        ]
        assert "channel register" not in out
        await wait_for(settings.pg_dsn, ROWS + " AND decision = 'rejected'", 2)

        # The changed register again: the same records, rejected before; the ledger skips them, still rejected.
        code, out, err = await cli(settings, *load, "--register", str(moved))
        assert code == 1 and "the ledger rejected 2 of 2 events:" in out, out + err


async def test_an_interrupted_load_completed_by_loading_again_is_accepted_and_says_what_was_logged_before(
    settings, tmp_path
):
    loaded = load_register(MEETING, REGISTER)
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [loaded.meeting])  # the load stopped after the meeting
        await wait_for(settings.pg_dsn, ROWS, 1)
        code, out, err = await cli(settings, "meeting", "load", str(MEETING), "--register", str(REGISTER), "-q")
        assert code == 0, out + err
        assert "the ledger accepted all 2 events, 1 of them logged before" in out


async def test_without_waiting_a_load_says_the_decisions_were_not_checked(settings):
    async with running_ledger(settings):
        code, out, err = await cli(
            settings, "meeting", "load", str(MEETING), "--register", str(REGISTER), "-q", "--no-wait"
        )
        assert code == 0, out + err
        assert "the ledger's decisions not checked (--no-wait)" in out
        await wait_for(settings.pg_dsn, ROWS, 2)

"""Before and after a load publishes: what the ledger would reject is refused first; what it decided is read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main
from services.registers.build import load_register
from services.registers.decisions import REJECTIONS_SHOWN, Sent, decide

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
ADMIN = "meetings.admin"


def over_the_bound(tmp_path: Path) -> tuple[Path, Path]:
    """A meeting of 10^15 + 101 shares outstanding and a register that reconciles with it (the adversarial over15)."""
    meeting = tmp_path / "over15.toml"
    text = MEETING.read_text()
    assert "outstanding = 12480000 " in text
    meeting.write_text(text.replace("outstanding = 12480000 ", "outstanding = 1000000000000101 "))
    register = tmp_path / "over15"
    register.mkdir()
    (register / "registered.csv").write_text(
        "control_number,holders,shares\nA1,Big Holder,1000000000000000\nA2,Other,1\nC1,Cede & Co.,100\n"
    )
    (register / "dtc_positions.csv").write_text("participant,name,shares\n15,Harbor,100\n")
    (register / "beneficial.csv").write_text("control_number,participant,shares\nB1,15,100\n")
    return meeting, register


def test_a_meeting_the_ledger_would_reject_is_refused_in_one_line_before_anything_is_published(tmp_path, capsys):
    meeting, register = over_the_bound(tmp_path)
    with pytest.raises(ValueError, match=r"the ledger would reject meeting\.scheduled \(event [0-9a-f-]{36}\)"):
        load_register(meeting, register)
    for command in (["show"], ["load", "--quiet"]):
        assert main(["meeting", *command, str(meeting), "--register", str(register)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1, out + err
        assert err.startswith(f"vote-ledger: {meeting}: the ledger would reject meeting.scheduled (event ")
        assert err.rstrip().endswith("): shares_out_of_range; nothing published")


def sent(number: int) -> Sent:
    return Sent(f"id-{number}", f"positions.recorded chunk {number} (event id-{number})", ADMIN, 0, 100 + number)


def row(event_id: str, decision: str, offset: int, reason: str | None = None, position: int = 1) -> dict:
    return {
        "event_id": event_id,
        "position": position,
        "decision": decision,
        "reason": reason,
        "source_topic": ADMIN,
        "source_partition": 0,
        "source_offset": offset,
    }


def test_rows_logged_from_the_records_just_published_are_this_loads_decisions():
    decisions = decide([sent(0), sent(1)], [row("id-0", "accepted", 100), row("id-1", "accepted", 101)])
    assert (len(decisions.accepted), decisions.before, decisions.rejected, decisions.undecided) == (2, [], [], [])
    assert decisions.lines() == ["the ledger accepted all 2 events"]


def test_an_identical_reload_is_already_loaded_and_a_partial_one_says_how_much_was_logged_before():
    again = decide([sent(0), sent(1)], [row("id-0", "accepted", 7), row("id-1", "accepted", 8)])
    assert again.lines() == ["already loaded: the ledger had accepted all 2 events before (R18: applied once)"]
    resumed = decide([sent(0), sent(1)], [row("id-0", "accepted", 7), row("id-1", "accepted", 101)])
    assert resumed.lines() == ["the ledger accepted all 2 events, 1 of them logged before"]


def test_a_rejection_now_or_before_names_the_event_and_its_reason_and_the_rest_is_counted():
    events = [sent(n) for n in range(REJECTIONS_SHOWN + 3)]
    rows = [row(s.event_id, "rejected", s.offset, "duplicate_chunk") for s in events[1:]]
    rows.append(row("id-0", "rejected", 3, "unknown_meeting"))  # the same record, rejected by an earlier load
    decisions = decide(events, rows)
    assert decisions.accepted == [] and decisions.undecided == []
    lines = decisions.lines()
    assert lines[0] == f"the ledger rejected {len(events)} of {len(events)} events:"
    assert lines[1] == "  positions.recorded chunk 0 (event id-0): unknown_meeting"
    assert lines[2] == "  positions.recorded chunk 1 (event id-1): duplicate_chunk"
    assert lines[REJECTIONS_SHOWN + 1] == "  ... and 3 more"
    assert lines[-1].startswith("the log holds another version of this meeting or its register")


def test_an_event_without_a_row_yet_is_undecided():
    decisions = decide([sent(0), sent(1)], [row("id-0", "accepted", 100)])
    assert decisions.undecided == [sent(1)] and len(decisions.accepted) == 1

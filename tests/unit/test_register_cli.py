"""`meeting show|load FILE --register DIR`: the reconciliation printed, problems listed, nothing published."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.cli import main
from services.registers.build import load_register

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = str(MEETINGS / "alder-2025-agm.toml")
REGISTER = MEETINGS / "alder-2025-agm-register"


@pytest.fixture
def no_kafka(monkeypatch):
    """No broker configured: a command that reached Kafka would fail saying so."""
    for name in ("VOTE_LEDGER_KAFKA_BOOTSTRAP", "VOTE_LEDGER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOTE_LEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # nothing listens on the discard port


def test_show_prints_each_participants_books_and_warns_of_the_over_reported_one(capsys):
    assert main(["meeting", "show", MEETING, "--register", str(REGISTER)]) == 0
    out = capsys.readouterr().out
    assert "declared register: 1 chunks, 39 positions, 12,476,500 shares" in out
    assert "register: 13 registered holdings 2,483,000 + Cede & Co. 9,997,000 = 12,480,000 shares outstanding" in out
    (northgate,) = [line for line in out.splitlines() if "0164 Northgate" in line]
    assert northgate.split()[4:9] == ["2,705,150", "7", "2,707,650", "+2,500", "OVER:"]
    assert "warning: beneficial positions exceed the DTC entitlement of 1 participant(s) (0164)" in out


def test_show_as_json_gives_exact_integers(capsys):
    assert main(["meeting", "show", MEETING, "--register", str(REGISTER), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    digest = load_register(MEETING, REGISTER).meeting.register.digest
    assert summary["declared_register"] == {"chunks": 1, "positions": 39, "shares": 12_476_500, "digest": digest}
    by_number = {p["participant"]: p for p in summary["register"]["participants"]}
    assert by_number["0226"]["difference"] == -6_000 and by_number["0164"]["difference"] == 2_500
    assert summary["register"]["cede_and_co"] == 9_997_000


def test_a_register_with_problems_is_refused_before_kafka_is_touched(tmp_path, capsys, no_kafka):
    register = Path(shutil.copytree(REGISTER, tmp_path / "register"))
    path = register / "beneficial.csv"
    path.write_text(path.read_text().replace("0902,Derek Olsen,219200", "0902,Derek Olsen,219 200"))
    assert main(["meeting", "load", MEETING, "--register", str(register), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:27:4: shares: '219 200' is not a whole number of shares (digits only, no separators)",
        f"vote-ledger: register {register}: 1 problem(s); nothing published",
    ]


def test_many_problems_are_listed_up_to_fifty_then_counted(tmp_path, capsys):
    register = Path(shutil.copytree(REGISTER, tmp_path / "register"))
    rows = "".join(f"C-{n},{n % 7 + 1}x,{n + 1}\n" for n in range(60))  # 60 rows, each a bad participant
    (register / "beneficial.csv").write_text("control_number,participant,shares\n" + rows)
    assert main(["meeting", "show", MEETING, "--register", str(register)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 52 and lines[-2] == "... and 10 more"
    assert lines[0].startswith(f"{register}/beneficial.csv:2:2: participant: '1x' is not a DTC participant number")
    assert lines[-1] == f"vote-ledger: register {register}: 60 problem(s); nothing published"


def test_simulated_channels_are_refused_for_a_real_register(capsys, no_kafka):
    assert main(["meeting", "load", MEETING, "--register", str(REGISTER), "--simulated-channels"]) == 2
    assert "--simulated-channels is for a simulated register" in capsys.readouterr().err


def test_a_real_meeting_without_register_or_simulation_says_which_it_needs(capsys, no_kafka):
    assert main(["meeting", "load", MEETING]) == 2
    err = capsys.readouterr().err
    assert "no simulation file" in err and "--register DIR" in err and err.count("\n") == 1


def test_a_participant_name_its_nominee_cannot_carry_is_refused_before_kafka_is_touched(tmp_path, capsys, no_kafka):
    register = Path(shutil.copytree(REGISTER, tmp_path / "register"))
    path = register / "dtc_positions.csv"
    path.write_text(path.read_text().replace("0015,Harbor Securities LLC,", "0015," + "N" * 195 + ","))
    assert main(["meeting", "load", MEETING, "--register", str(register), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:2:2: name: longer than 189 characters: its nominee, NAME (DTC NNNN), may have 200",
        f"vote-ledger: register {register}: 1 problem(s); nothing published",
    ]


@pytest.mark.parametrize("action", ["load", "show"])
def test_a_meeting_file_that_is_not_a_regular_file_is_one_line_error_not_a_read_without_end(action, capsys, no_kafka):
    assert main(["meeting", action, "/dev/zero", "--register", str(REGISTER)]) == 2
    assert capsys.readouterr().err == "vote-ledger: /dev/zero: not a regular file: a meeting file is one\n"

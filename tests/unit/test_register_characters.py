"""Look-alike and invisible characters in a register are refused where they are (the adversarial run's cases).

A control number is ASCII letters, digits, '-', '.', '_' and '/'; no name or control number holds a
line break, control or format character (Unicode Cc, Cf, Zl, Zp); DTC participant numbers start at 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.registers.build import RegisterError, load_register

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
REGISTER = MEETINGS / "alder-2025-agm-register"
HAROLD = "4444-6117-7219-0976,Harold J. Benning,12000"  # registered.csv line 5
BRIAN = "7495-0374-8679-5547,0015,Brian Murphy,420240"  # beneficial.csv line 2
RULE = "(a control number is ASCII letters, digits, '-', '.', '_' and '/')"
INVISIBLE = "a line break, control or format character"


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            "registered.csv",
            HAROLD,
            "4444-6117\u0085-7219-0976,Harold J. Benning,12000",
            f"registered.csv:5:1: control_number: {INVISIBLE} (U+0085 a control character)",
        ),
        (
            "registered.csv",
            HAROLD,
            "4444-6117\u2028-7219-0976,Harold J. Benning,12000",
            f"registered.csv:5:1: control_number: {INVISIBLE} (U+2028 LINE SEPARATOR)",
        ),
        (
            "registered.csv",
            HAROLD,
            "4444-6117-7219-0976,Harold\u2028J. Benning,12000",
            f"registered.csv:5:2: holders: {INVISIBLE} in a name (U+2028 LINE SEPARATOR)",
        ),
        (
            "registered.csv",
            HAROLD,
            "4444-6117-7219-0976,Harold \u202egninneB,12000",
            f"registered.csv:5:2: holders: {INVISIBLE} in a name (U+202E RIGHT-TO-LEFT OVERRIDE)",
        ),
        (
            "dtc_positions.csv",
            "0015,Harbor Securities LLC,",
            "0015,Harbor\u200b Securities LLC,",
            f"dtc_positions.csv:2:2: name: {INVISIBLE} (U+200B ZERO WIDTH SPACE)",
        ),
        (  # Harold's number again with a zero-width space after it: not a second holding of one printed number
            "beneficial.csv",
            BRIAN,
            "4444-6117-7219-0976\u200b,0015,Brian Murphy,420240",
            f"beneficial.csv:2:1: control_number: {INVISIBLE} (U+200B ZERO WIDTH SPACE)",
        ),
        (
            "beneficial.csv",
            BRIAN,
            "4444\u20116117-7219-0976,0015,Brian Murphy,420240",
            f"beneficial.csv:2:1: control_number: '4444\u20116117-7219-0976': U+2011 NON-BREAKING HYPHEN {RULE}",
        ),
        (
            "beneficial.csv",
            BRIAN,
            "\uff14444-6117-7219-0976,0015,Brian Murphy,420240",
            f"beneficial.csv:2:1: control_number: '\uff14444-6117-7219-0976': U+FF14 FULLWIDTH DIGIT FOUR {RULE}",
        ),
        (
            "beneficial.csv",
            BRIAN,
            "7495 0374 8679 5547,0015,Brian Murphy,420240",
            f"beneficial.csv:2:1: control_number: '7495 0374 8679 5547': U+0020 SPACE {RULE}",
        ),
        (
            "dtc_positions.csv",
            "0015,Harbor Securities LLC,",
            "0000,Harbor Securities LLC,",
            "dtc_positions.csv:2:1: participant: 0000 is not a DTC participant number (they start at 1)",
        ),
    ],
)
def test_an_invisible_or_look_alike_character_or_participant_zero_is_refused_at_its_cell(
    tmp_path, name, old, new, expected
):
    register = Path(shutil.copytree(REGISTER, tmp_path / "register"))
    path = register / name
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    with pytest.raises(RegisterError) as refused:
        load_register(MEETING, register)
    found = [str(p).removeprefix(f"{register}/") for p in refused.value.problems]
    assert expected in found, found


def test_a_control_number_of_every_allowed_character_loads(tmp_path):
    register = Path(shutil.copytree(REGISTER, tmp_path / "register"))
    path = register / "registered.csv"
    path.write_text(path.read_text().replace("4444-6117-7219-0976,", "Acct_07/b-9.Z,"))
    numbers = [p.control_number for p in load_register(MEETING, register).chunks[0].positions]
    assert "Acct_07/b-9.Z" in numbers

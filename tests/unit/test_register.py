"""The synthetic register of a meeting spec file: exact, deterministic, realistic (no I/O)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from events import PositionsRecorded, decode, encode
from projections.meeting import Meeting
from services.devtools.demo.register import build_register, nominee_books, register_events
from services.devtools.demo.spec import load_spec

SPEC = Path(__file__).resolve().parents[2] / "deploy" / "meetings" / "cbak-2023-agm.toml"
SIMULATION = SPEC.parents[1] / "simulations" / SPEC.name
KNOWN = {
    "Yunfei Li": 11_100_871,
    "Dawei Li": 6_733_359,
    "Xiangyu Pei": 292_983,
    "Martha C. Agee": 55_000,
    "Jianjun He": 51_665,
    "J. Simon Xue": 35_000,
    "Jiewei Li": 9_000,
}


@pytest.fixture(scope="module")
def spec():
    """The reference meeting spec file, parsed."""
    return load_spec(SPEC)


@pytest.fixture(scope="module")
def register(spec):
    """The reference meeting's synthetic register: (positions, entitlements)."""
    meeting, register_spec, _ = spec
    return build_register(meeting, register_spec)


def test_the_register_sums_exactly_to_the_outstanding_shares(spec, register):
    positions, _ = register
    assert sum(p.shares for p in positions) == spec[0].outstanding == 89_467_190
    assert len(positions) == spec[1].positions


def test_every_position_holds_a_positive_whole_number_of_shares(register):
    positions, _ = register
    assert all(type(p.shares) is int and p.shares >= 1 for p in positions)


def test_the_register_includes_the_known_holders_with_their_exact_shares(register):
    positions, _ = register
    found = {
        p.holders[0]: p.shares
        for p in positions
        if len(p.holders) == 1 and p.holders[0] in KNOWN and p.shares in KNOWN.values()
    }
    assert found == KNOWN


def test_control_numbers_are_unique_and_printed_in_groups_of_four(register):
    positions, _ = register
    numbers = [p.control_number for p in positions]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{4}", n) for n in numbers)


def test_the_register_is_deterministic_for_a_seed_and_differs_for_another(spec, register):
    meeting, register_spec, _ = spec
    assert build_register(meeting, register_spec) == register
    other = build_register(meeting, msgspec.structs.replace(register_spec, seed=register_spec.seed + 1))
    assert other[0] != register[0]
    assert sum(p.shares for p in other[0]) == meeting.outstanding


def test_it_holds_registered_joint_and_beneficial_positions_under_every_nominee(spec, register):
    positions, _ = register
    kinds = Counter("joint" if len(p.holders) > 1 else p.kind for p in positions)
    assert kinds["registered"] > 0 and kinds["joint"] > 0 and kinds["beneficial"] > kinds["registered"]
    assert all(2 <= len(p.holders) <= 3 for p in positions if len(p.holders) > 1)
    assert all(p.kind == "registered" for p in positions if len(p.holders) > 1)
    assert all(p.nominee for p in positions if p.kind == "beneficial")
    assert {p.nominee for p in positions if p.kind == "beneficial"} == {n.name for n in spec[1].nominees}


def test_share_sizes_are_long_tailed_with_no_unnamed_holder_at_five_percent(spec, register):
    positions, _ = register
    sizes = sorted(p.shares for p in positions)
    median = sizes[len(sizes) // 2]
    top_percent = sum(sizes[-len(sizes) // 100 :])
    assert median < 2_000 < sizes[-100]
    assert top_percent > sum(sizes) // 2
    unnamed = [p.shares for p in positions if p.holders[0] not in KNOWN]
    assert max(unnamed) * 20 < spec[0].outstanding


def test_entitlements_follow_the_books_and_some_nominees_books_exceed_them(spec, register):
    positions, entitlements = register
    books = nominee_books(positions)
    by_name = {e.nominee: e.shares for e in entitlements}
    assert set(by_name) == set(books)
    short = {name for name in books if books[name] > by_name[name]}
    assert short == {n.name for n in spec[1].nominees if n.entitlement_slack < 0}
    bank_e = "Bank E (DTC 0902)"  # entitlement_slack = -0.06: 94 % of its books, floored
    assert by_name[bank_e] == books[bank_e] * 94 // 100


def test_chunk_events_round_trip_through_the_codec(spec, register):
    events = register_events(spec[0], *register)
    assert [e.chunk for e in events] == list(range(len(events))) and len(events) == 10
    assert all(e.chunks == len(events) for e in events)
    for event in events:
        assert decode(encode(event)) == event
    assert sum(len(e.positions) for e in events) == len(register[0])
    assert len(events[0].entitlements) == len(spec[1].nominees)


def test_chunk_ids_are_deterministic_so_loading_twice_is_idempotent(spec, register):
    first = register_events(spec[0], *register)
    again = register_events(spec[0], *build_register(spec[0], spec[1]))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first)
    changed = build_register(spec[0], msgspec.structs.replace(spec[1], seed=1))
    assert not {e.event_id for e in first} & {e.event_id for e in register_events(spec[0], *changed)}


def test_the_meeting_event_is_deterministic_and_round_trips(spec):
    meeting = spec[0]
    assert load_spec(SPEC)[0].event_id == meeting.event_id
    assert decode(encode(meeting)) == meeting
    assert meeting.cutoffs.internet.isoformat() == "2023-12-13T23:59:00-05:00"
    assert [i.id for i in meeting.items if i.routine] == ["2"]


def test_recording_every_chunk_completes_the_meeting_register(spec, register):
    meeting = Meeting.scheduled(spec[0])
    for event in register_events(spec[0], *register):
        assert isinstance(event, PositionsRecorded)
        meeting.record_positions(event)
    assert meeting.register_complete
    assert meeting.registered_shares == spec[0].outstanding


def test_a_spec_file_with_a_mistyped_field_is_refused_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "meetings" / "bad.toml"
    bad.parent.mkdir()
    bad.write_text(SPEC.read_text().replace("outstanding = 89467190", "outstandin = 89467190"))
    with pytest.raises(ValueError, match=r"bad\.toml: meeting: unknown field\(s\) outstandin"):
        load_spec(bad)
    bad.write_text(SPEC.read_text())
    simulation = tmp_path / "simulations" / "bad.toml"  # the meeting file's simulation, beside its folder
    simulation.parent.mkdir()
    simulation.write_text(SIMULATION.read_text().replace("positions = 20000", 'positions = "many"'))
    with pytest.raises(ValueError, match=r"simulations/bad\.toml: .*\$\.register\.positions"):
        load_spec(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")

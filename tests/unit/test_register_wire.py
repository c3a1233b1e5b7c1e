"""A register's events checked as Kafka and the ledger will take them, before any is published (no I/O but files)."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from deploy import meeting_file
from events import Position, decode, encode
from projections.judge import Judge
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import load_spec
from services.registers.build import CHUNK_SIZE, RegisterError, chunk_events, load_register
from services.registers.meeting_file import load_meeting_file
from services.registers.reading import read_register
from services.registers.wire import MAX_EVENT_BYTES, wire_problems

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
REGISTER = MEETINGS / "alder-2025-agm-register"
KAFKA_MAX_REQUEST_SIZE = 1_048_576  # aiokafka's and the Java producer's default max.request.size


def write_register(directory: Path, holdings: list[str], participants: list[str], beneficial: list[str]) -> Path:
    """A register directory of these CSV rows (headers added), Cede & Co. holding the participants' shares."""
    directory.mkdir()
    cede = sum(int(row.rsplit(",", 1)[1]) for row in participants)
    registered = ["control_number,holders,shares", *holdings, f"CEDE-1,Cede & Co.,{cede}"]
    (directory / "registered.csv").write_text("\n".join(registered) + "\n")
    (directory / "dtc_positions.csv").write_text("\n".join(["participant,name,shares", *participants]) + "\n")
    (directory / "beneficial.csv").write_text("\n".join(["control_number,participant,shares", *beneficial]) + "\n")
    return directory


def meeting_with_outstanding(tmp_path: Path, outstanding: int) -> Path:
    """The example meeting with another outstanding share count."""
    path = tmp_path / "meeting.toml"
    path.write_text(MEETING.read_text().replace("outstanding = 12480000", f"outstanding = {outstanding}"))
    return path


def test_long_joint_holder_names_split_the_register_into_chunks_kafka_accepts_and_the_meeting_declares_them(tmp_path):
    names = "; ".join(c * 200 for c in "ABC")  # three joint holders, each name as long as allowed
    holdings = [f"R-{n:05d},{names},1" for n in range(CHUNK_SIZE)]
    register = write_register(tmp_path / "register", holdings, ["15,Harbor Securities LLC,1"], ["B-1,15,1"])
    loaded = load_register(meeting_with_outstanding(tmp_path, CHUNK_SIZE + 1), register)
    sizes = [len(encode(chunk)) for chunk in loaded.chunks]
    assert len(sizes) == 2 and max(sizes) <= MAX_EVENT_BYTES < KAFKA_MAX_REQUEST_SIZE  # by count alone: 1.4 MB
    assert all(chunk.chunks == 2 for chunk in loaded.chunks)
    assert loaded.meeting.register == msgspec.structs.replace(loaded.meeting.register, chunks=2, positions=2001)
    positions = [p.control_number for chunk in loaded.chunks for p in chunk.positions]
    assert positions == [f"R-{n:05d}" for n in range(CHUNK_SIZE)] + ["B-1"]  # file order kept across chunks
    judge = Judge()
    for event in loaded.events:
        assert judge.judge(decode(encode(event))) is None
    assert judge.meetings[loaded.meeting.meeting_id].register_complete


def test_participants_too_many_for_the_first_chunk_are_refused_at_the_listing_before_anything_is_published(tmp_path):
    participants = [f"{n},{'P' * 189},1" for n in range(1, 5001)]  # 5,000 entitlements of 200-character nominees
    register = write_register(tmp_path / "register", ["R-1,Ann Lee,1"], participants, ["B-1,1,1"])
    with pytest.raises(RegisterError) as refused:
        load_register(meeting_with_outstanding(tmp_path, 5001), register)
    (problem,) = refused.value.problems
    assert str(problem).startswith(
        f"{register}/dtc_positions.csv:5001:2: name: the participants' entitlements do not fit one chunk: "
        "positions.recorded chunk 0: encodes to "
    )
    assert str(problem).endswith("bytes, more than the 900,000 one Kafka message may carry")


def test_a_chunk_the_ledger_would_refuse_is_a_problem_at_the_row_and_column_it_comes_from():
    loaded = load_register(MEETING, REGISTER)
    files = read_register(REGISTER)
    rows = [h.row for h in files.registered] + [b.row for b in files.beneficial]
    participants = [p.row for p in files.participants.values()]
    (chunk,) = loaded.chunks
    # msgspec checks constraints when it decodes, not when a Struct is built: these are what the ledger parks.
    positions = list(chunk.positions)
    positions[3] = msgspec.structs.replace(positions[3], control_number="X" * 201)
    entitlements = list(chunk.entitlements)
    entitlements[1] = msgspec.structs.replace(entitlements[1], nominee="")
    bad = [
        msgspec.structs.replace(chunk, positions=positions),
        msgspec.structs.replace(chunk, entitlements=entitlements),
    ]
    found = [
        str(p).removeprefix(f"{REGISTER}/") for p in wire_problems(MEETING, loaded.meeting, bad, rows * 2, participants)
    ]
    assert found == [
        "registered.csv:5:1: control_number: positions.recorded chunk 0: the ledger would refuse it: Expected `str` "
        "of length <= 200 - at `$.positions[3].control_number`",
        "dtc_positions.csv:3:2: name: positions.recorded chunk 0: the ledger would refuse it: Expected `str` of "
        "length >= 1 - at `$.entitlements[1].nominee`",
    ]
    assert wire_problems(MEETING, loaded.meeting, loaded.chunks, rows, participants) == []


def test_small_registers_split_by_count_alone_so_their_event_ids_do_not_change():
    meeting = load_meeting_file(MEETING)
    positions = [
        Position(control_number=f"C-{n}", kind="registered", shares=1, holders=["Ann Lee"]) for n in range(4500)
    ]
    assert [len(c.positions) for c in chunk_events(meeting, positions, [])] == [2000, 2000, 500]
    for meeting_id in ("cbak-2023-agm", "contested-2024-agm"):  # the demo's synthetic registers, as declared
        spec, register, _ = load_spec(meeting_file(meeting_id))
        positions, entitlements = build_register(spec, register)
        chunks = register_events(spec, positions, entitlements)
        assert len(chunks) == math.ceil(len(positions) / CHUNK_SIZE) == spec.register.chunks
        assert max(len(encode(c)) for c in chunks) < MAX_EVENT_BYTES // 3  # far from the bound: count decides

"""Register completeness (issue 12): what a complete register is, what is missing, and the judge's caps."""

from hypothesis import given
from hypothesis import strategies as st

from events import Position, PositionsRecorded, RegisterTotals
from projections import validation as v
from projections.completeness import MISSING_LISTED, state_of
from projections.judge import Judge
from projections.replay import replay
from tests.factories import small_meeting

DECLARED = RegisterTotals(chunks=2, positions=3, shares=6_000)


def chunk(number: int, chunks: int, *positions: Position, meeting_id: str = "m1") -> PositionsRecorded:
    return PositionsRecorded(
        event_id=f"chunk-{meeting_id}-{number}-{chunks}-{len(positions)}",
        meeting_id=meeting_id,
        chunk=number,
        chunks=chunks,
        positions=list(positions),
        entitlements=[],
    )


def held(number: str, shares: int) -> Position:
    return Position(control_number=number, kind="registered", shares=shares, holders=[number])


def judge_with(register: RegisterTotals | None = None) -> Judge:
    judge = Judge()
    assert judge.judge(small_meeting(outstanding=10_000, register=register)) is None
    return judge


def test_a_meeting_with_no_chunk_at_all_has_an_incomplete_register():
    state = judge_with().meetings["m1"].register_state
    assert not state.complete and state.chunks_expected is None and state.chunks_recorded == 0
    assert state.shortfalls() == ["no register chunk recorded"]
    declared = judge_with(DECLARED).meetings["m1"].register_state
    assert not declared.complete and declared.chunks_expected == 2 and declared.missing_chunks == (0, 1)


def test_an_older_meeting_is_complete_once_every_chunk_its_chunks_announce_is_recorded():
    judge = judge_with()
    assert judge.judge(chunk(1, 2, held("B", 1_000))) is None
    meeting = judge.meetings["m1"]
    state = meeting.register_state
    assert not meeting.register_complete
    assert (state.chunks_recorded, state.chunks_expected, state.missing_chunks, state.chunks_missing) == (1, 2, (0,), 1)
    assert state.summary() == "INCOMPLETE: 1 of 2 chunks recorded (missing 0)"
    assert judge.judge(chunk(0, 2, held("A", 2_000))) is None
    assert meeting.register_complete and meeting.register_state.shortfalls() == []
    assert meeting.register_state.summary() == (
        "complete: 2 chunk(s), 2 positions, 3,000 shares (as announced by its chunks; no totals declared)"
    )


def test_a_declared_register_is_complete_only_with_every_chunk_and_exactly_its_positions_and_shares():
    judge = judge_with(DECLARED)
    assert judge.judge(chunk(0, 2, held("A", 1_000), held("B", 2_000))) is None
    assert judge.judge(chunk(1, 2, held("C", 2_000))) is None  # every chunk, but 1,000 shares short
    state = judge.meetings["m1"].register_state
    assert state.chunks_missing == 0 and not state.complete
    assert state.shortfalls() == ["5,000 of 6,000 declared shares"]
    assert state.as_dict() == {
        "complete": False,
        "chunks_recorded": 2,
        "chunks_expected": 2,
        "missing_chunks": [],
        "chunks_missing": 0,
        "positions": 3,
        "shares": 5_000,
        "digest": None,
        "declared": {"chunks": 2, "positions": 3, "shares": 6_000, "digest": None},
    }
    exact = judge_with(DECLARED)
    assert exact.judge(chunk(1, 2, held("C", 3_000))) is None
    assert not exact.meetings["m1"].register_complete
    assert exact.meetings["m1"].register_state.shortfalls() == [
        "1 of 2 chunks recorded (missing 0)",
        "1 of 3 declared positions",
        "3,000 of 6,000 declared shares",
    ]
    assert exact.judge(chunk(0, 2, held("A", 1_000), held("B", 2_000))) is None
    assert exact.meetings["m1"].register_complete
    assert exact.meetings["m1"].register_state.summary().endswith("(as declared)")


def test_a_chunk_announcing_another_count_than_declared_is_refused_even_as_the_first_chunk():
    judge = judge_with(DECLARED)
    assert judge.judge(chunk(0, 3, held("A", 1))) == v.CHUNKS_MISMATCH
    assert judge.judge(chunk(0, 1, held("A", 1))) == v.CHUNKS_MISMATCH
    assert judge.judge(chunk(2, 2, held("A", 1))) == v.CHUNK_OUT_OF_RANGE  # its own numbering first
    assert judge.judge(chunk(0, 2, held("A", 1))) is None
    assert judge.meetings["m1"].chunks == {0}


def test_positions_beyond_the_declared_count_are_refused_and_not_recorded():
    judge = judge_with(DECLARED)
    assert judge.judge(chunk(0, 2, held("A", 1), held("B", 1))) is None
    assert judge.judge(chunk(1, 2, held("C", 1), held("D", 1))) == v.REGISTER_EXCEEDS_DECLARED
    assert "C" not in judge.meetings["m1"].positions and judge.meetings["m1"].chunks == {0}
    assert judge.judge(chunk(1, 2, held("C", 1))) is None  # exactly the declared three


def test_shares_beyond_the_declared_total_are_refused_even_below_the_outstanding_shares():
    judge = judge_with(DECLARED)
    assert judge.judge(chunk(0, 2, held("A", 4_000))) is None
    assert judge.judge(chunk(1, 2, held("B", 2_001))) == v.REGISTER_EXCEEDS_DECLARED
    assert judge.judge(chunk(1, 2, held("B", 6_001))) == v.REGISTER_EXCEEDS_OUTSTANDING  # over both: the older code
    assert judge.judge(chunk(1, 2, held("B", 2_000))) is None
    assert judge.meetings["m1"].recorded_shares == 6_000


def test_without_a_declaration_the_chunks_are_capped_only_by_the_outstanding_shares_as_before():
    judge = judge_with()
    assert judge.judge(chunk(0, 1, *(held(f"P{i}", 1_000) for i in range(10)))) is None
    assert judge.meetings["m1"].register_complete


def test_register_exceeds_declared_is_part_of_the_public_vocabulary():
    assert v.REGISTER_EXCEEDS_DECLARED == "register_exceeds_declared"
    assert v.REGISTER_EXCEEDS_DECLARED in v.REASONS and len(set(v.REASONS)) == len(v.REASONS)


def test_a_huge_declared_register_lists_only_the_lowest_missing_chunks_and_counts_the_rest():
    state = state_of(RegisterTotals(chunks=1_000_000, positions=1, shares=1), {0, 2}, None, 1, 1)
    assert state.missing_chunks == (1, *range(3, MISSING_LISTED + 2)) and len(state.missing_chunks) == MISSING_LISTED
    assert state.chunks_missing == 999_998
    assert state.shortfalls()[0].endswith(f"and {999_998 - MISSING_LISTED:,} more)")


def test_the_replayed_meeting_knows_its_register_state_like_the_judge():
    events = [small_meeting(outstanding=10_000, register=DECLARED), chunk(0, 2, held("A", 1_000), held("B", 2_000))]
    judge = Judge()
    assert [judge.judge(event) for event in events] == [None, None]
    meeting = replay(events).tallies["m1"].meeting
    assert meeting.register_state == judge.meetings["m1"].register_state
    assert meeting.register_state.missing_chunks == (1,) and not meeting.register_complete


@given(st.permutations(range(4)), st.integers(min_value=0, max_value=4))
def test_completeness_does_not_depend_on_the_order_the_chunks_arrive_in(order, recorded):
    judge = judge_with(RegisterTotals(chunks=4, positions=4, shares=4_000))
    for number in order[:recorded]:
        assert judge.judge(chunk(number, 4, held(f"P{number}", 1_000))) is None
    state = judge.meetings["m1"].register_state
    assert state.complete == (recorded == 4)
    assert state.missing_chunks == tuple(sorted(set(range(4)) - set(order[:recorded])))

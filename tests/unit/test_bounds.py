"""Share bounds and register chunks: what keeps every stored tally sum inside a bigint (issue 9)."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Entitlement, Item, Position, PositionsRecorded, Quorum, RegisterTotals, decode, encode
from events.schema import MAX_SHARES
from projections import validation as v
from projections.judge import Judge
from projections.replay import replay
from tests.factories import POSITIONS, cast, register_event, small_meeting

BIGINT = 2**63 - 1


def chunk(number: int, chunks: int, positions=(), entitlements=(), meeting_id: str = "m1") -> PositionsRecorded:
    return PositionsRecorded(
        event_id=f"chunk-{meeting_id}-{number}-{chunks}-{len(positions)}",
        meeting_id=meeting_id,
        chunk=number,
        chunks=chunks,
        positions=list(positions),
        entitlements=list(entitlements),
    )


def position(number: str, shares: int, kind: str = "registered") -> Position:
    return Position(
        control_number=number,
        kind=kind,
        shares=shares,
        holders=["H"],
        nominee="Broker X" if kind == "beneficial" else None,
    )


def judge_with(spec=None) -> Judge:
    judge = Judge()
    assert judge.judge(spec or small_meeting()) is None
    return judge


def test_the_bound_leaves_every_stored_sum_far_below_a_bigint():
    # Shares present and every bucket are at most the outstanding shares (the register's bound).
    assert MAX_SHARES == 10**15 and MAX_SHARES * 9_000 < BIGINT


def test_a_meeting_with_more_than_the_bound_outstanding_is_refused_as_out_of_range():
    assert Judge().judge(small_meeting(outstanding=MAX_SHARES)) is None
    assert Judge().judge(small_meeting(outstanding=MAX_SHARES + 1)) == v.SHARES_OUT_OF_RANGE
    assert Judge().judge(small_meeting(outstanding=2**63 + 1)) == v.SHARES_OUT_OF_RANGE


def test_quorum_terms_are_bounded_and_a_quorum_above_everything_outstanding_is_refused():
    assert Judge().judge(small_meeting(quorum=Quorum(numerator=1, denominator=MAX_SHARES + 1))) == v.SHARES_OUT_OF_RANGE
    assert Judge().judge(small_meeting(quorum=Quorum(numerator=4, denominator=3))) == v.INVALID_QUORUM
    assert Judge().judge(small_meeting(quorum=Quorum(numerator=1, denominator=1))) is None


def test_seats_must_be_at_least_one_and_at_most_the_nominees_of_their_group():
    spec = small_meeting()
    directors = [i for i in spec.items if i.group == "1"]
    others = [i for i in spec.items if i.group != "1"]

    def with_seats(seats):
        return small_meeting(items=[msgspec.structs.replace(i, seats=seats) for i in directors] + others)

    assert Judge().judge(with_seats(2)) is None and Judge().judge(with_seats(1)) is None
    assert Judge().judge(with_seats(3)) == v.INVALID_SEATS
    assert Judge().judge(with_seats(0)) == v.INVALID_SEATS
    lone = Item(id="9", title="", options=["for", "against"], standard="plurality", seats=2)
    assert Judge().judge(small_meeting(items=[*spec.items, lone])) == v.INVALID_SEATS


def test_the_issues_position_of_two_to_the_63_shares_is_refused_with_a_reason_not_parked():
    spec = small_meeting(outstanding=MAX_SHARES)
    judge = judge_with(spec)
    huge = chunk(0, 1, [position("R-1", 2**63)])
    assert judge.judge(decode(encode(huge))) == v.SHARES_OUT_OF_RANGE  # decodes: a logged rejection
    assert judge.judge(cast("R-1", {"2": "for"})) == v.NOT_ENTITLED  # and nothing of it was recorded


def test_an_entitlement_above_the_bound_is_refused():
    judge = judge_with()
    assert (
        judge.judge(chunk(0, 1, POSITIONS, [Entitlement(nominee="Broker X", shares=MAX_SHARES + 1)]))
        == v.SHARES_OUT_OF_RANGE
    )
    assert judge.judge(chunk(0, 1, POSITIONS, [Entitlement(nominee="Broker X", shares=MAX_SHARES)])) is None


def test_votes_and_splits_above_the_bound_are_refused_as_out_of_range():
    judge = judge_with()
    assert judge.judge(register_event()) is None
    assert judge.judge(cast("R-1", {"2": "for"}, shares=MAX_SHARES + 1)) == v.SHARES_OUT_OF_RANGE
    assert judge.judge(cast("R-1", {"2": {"for": MAX_SHARES + 1}})) == v.SHARES_OUT_OF_RANGE
    # Within the bound the rules of R2 and R3 decide as before.
    assert judge.judge(cast("R-1", {"2": "for"}, shares=MAX_SHARES)) == v.EXCEEDS_POSITION
    assert judge.judge(cast("R-1", {"2": {"for": 3001}})) == v.OVER_VOTE


def test_a_chunk_taking_the_register_over_the_outstanding_shares_is_refused_and_not_recorded():
    judge = judge_with(small_meeting(outstanding=10_000))
    assert judge.judge(chunk(0, 3, [position("A", 6_000)])) is None
    assert judge.judge(chunk(1, 3, [position("B", 4_001)])) == v.REGISTER_EXCEEDS_OUTSTANDING
    assert judge.judge(chunk(1, 3, [position("B", 4_000)])) is None  # exactly the outstanding shares
    assert judge.judge(chunk(2, 3, [position("C", 1)])) == v.REGISTER_EXCEEDS_OUTSTANDING
    assert judge.judge(chunk(2, 3, [], [Entitlement(nominee="Broker X", shares=10)])) is None
    assert judge.meetings["m1"].recorded_shares == judge.meetings["m1"].registered_shares == 10_000


def test_a_meeting_declaring_a_register_over_its_outstanding_shares_is_refused():
    over = RegisterTotals(chunks=1, positions=1, shares=10_001)
    assert Judge().judge(small_meeting(outstanding=10_000, register=over)) == v.REGISTER_EXCEEDS_OUTSTANDING
    exact = RegisterTotals(chunks=1, positions=1, shares=10_000)
    assert Judge().judge(small_meeting(outstanding=10_000, register=exact)) is None


def test_chunk_numbers_must_lie_within_the_declared_number_of_chunks():
    judge = judge_with()
    assert judge.judge(chunk(2, 2, [position("A", 1)])) == v.CHUNK_OUT_OF_RANGE
    assert judge.judge(chunk(-1, 2, [position("A", 1)])) == v.CHUNK_OUT_OF_RANGE
    assert judge.judge(chunk(0, 0, [position("A", 1)])) == v.CHUNK_OUT_OF_RANGE
    assert judge.judge(chunk(1, 2, [position("A", 1)])) is None


def test_a_chunk_whose_number_of_chunks_disagrees_with_the_earlier_ones_is_refused():
    judge = judge_with()
    assert judge.judge(chunk(0, 3, [position("A", 1)])) is None
    assert judge.judge(chunk(1, 2, [position("B", 1)])) == v.CHUNKS_MISMATCH
    assert judge.judge(chunk(3, 4, [position("B", 1)])) == v.CHUNKS_MISMATCH
    assert judge.judge(chunk(1, 3, [position("B", 1)])) is None


def test_the_new_reason_codes_are_part_of_the_public_vocabulary():
    new = {
        v.SHARES_OUT_OF_RANGE,
        v.INVALID_QUORUM,
        v.INVALID_SEATS,
        v.REGISTER_EXCEEDS_OUTSTANDING,
        v.CHUNK_OUT_OF_RANGE,
        v.CHUNKS_MISMATCH,
    }
    assert new <= set(v.REASONS) and len(set(v.REASONS)) == len(v.REASONS)


# --- Properties -------------------------------------------------------------------------------------

share_counts = st.one_of(
    st.integers(1, 5_000),
    st.integers(1, 2**70),
    st.sampled_from([MAX_SHARES, MAX_SHARES + 1, 2**63 - 1, 2**63, 2**63 + 1]),
)


@st.composite
def chunk_streams(draw):
    """A meeting and a stream of register chunks, any numbering, any shares (many out of bounds)."""
    outstanding = draw(st.one_of(st.integers(1, 20_000), st.sampled_from([MAX_SHARES, MAX_SHARES + 1, 2**63])))
    chunks = []
    for i in range(draw(st.integers(0, 8))):
        positions = [
            position(f"P{i}-{j}", draw(share_counts), draw(st.sampled_from(["registered", "beneficial"])))
            for j in range(draw(st.integers(0, 4)))
        ]
        entitlements = [
            Entitlement(nominee="Broker X", shares=draw(st.one_of(st.integers(0, 9_000), share_counts)))
            for _ in range(draw(st.integers(0, 1)))
        ]
        chunks.append(
            PositionsRecorded(
                event_id=f"c{i}",
                meeting_id="m1",
                chunk=draw(st.integers(-1, 5)),
                chunks=draw(st.integers(0, 5)),
                positions=positions,
                entitlements=entitlements,
            )
        )
    return small_meeting(outstanding=outstanding), chunks


@settings(max_examples=300, deadline=None)
@given(chunk_streams())
def test_whatever_chunks_arrive_the_accepted_register_stays_within_its_outstanding_shares_and_numbering(stream):
    spec, chunks = stream
    judge = Judge()
    if judge.judge(spec) is not None:
        assert spec.outstanding > MAX_SHARES  # the only reason this spec can be refused
        assert all(judge.judge(c) == v.UNKNOWN_MEETING for c in chunks)
        return
    accepted = [c for c in chunks if judge.judge(c) is None]
    meeting = judge.meetings["m1"]
    assert meeting.recorded_shares == meeting.registered_shares <= spec.outstanding <= MAX_SHARES
    assert len({c.chunks for c in accepted}) <= 1
    assert all(0 <= c.chunk < c.chunks for c in accepted) and len(accepted) <= max([c.chunks for c in accepted] or [0])
    assert all(e.shares <= MAX_SHARES for c in accepted for e in c.entitlements)


@st.composite
def valid_registers(draw):
    """A register within the bounds, split into chunks in any order: the new rules must accept it."""
    shares = draw(st.lists(st.integers(1, MAX_SHARES // 64), min_size=1, max_size=12))
    outstanding = sum(shares) + draw(st.integers(0, 1_000))
    count = draw(st.integers(1, len(shares)))
    cuts = sorted(draw(st.lists(st.integers(0, len(shares)), min_size=count - 1, max_size=count - 1)))
    bounds = [0, *cuts, len(shares)]
    chunks = [
        chunk(i, count, [position(f"P{j}", shares[j]) for j in range(bounds[i], bounds[i + 1])]) for i in range(count)
    ]
    return small_meeting(outstanding=outstanding), draw(st.permutations(chunks))


@settings(max_examples=200, deadline=None)
@given(valid_registers())
def test_a_register_within_the_bounds_is_accepted_chunk_by_chunk_in_any_order(register):
    spec, chunks = register
    judge = judge_with(spec)
    assert [judge.judge(c) for c in chunks] == [None] * len(chunks)
    assert judge.meetings["m1"].register_complete


votes = st.builds(
    lambda number, shares, split, received: cast(
        number, {"2": split} if split else {"2": "for"}, shares=shares, executed=received, channel="broker"
    ),
    st.sampled_from(["R-1", "R-2", "B-1", "B-2", "X-1"]),
    st.one_of(st.none(), share_counts),
    st.one_of(st.none(), st.fixed_dictionaries({"for": share_counts, "against": st.integers(0, 2**64)})),
    st.integers(1, 100),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(share_counts, min_size=4, max_size=4), st.lists(votes, max_size=20))
def test_whatever_is_submitted_every_sum_the_projector_would_store_fits_a_bigint(register_shares, submitted):
    spec = small_meeting(outstanding=MAX_SHARES)
    judge = judge_with(spec)
    register = register_event(
        [msgspec.structs.replace(p, shares=n) for p, n in zip(POSITIONS, register_shares, strict=True)]
    )
    log = [spec] + ([register] if judge.judge(register) is None else [])
    log += [e for e in submitted if judge.judge(e) is None]
    tally = replay(log).tallies["m1"]
    assert 0 <= tally.present <= spec.outstanding <= MAX_SHARES < BIGINT
    assert all(0 < shares <= spec.outstanding for shares in tally.buckets.values())

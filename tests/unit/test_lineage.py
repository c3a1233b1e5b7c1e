"""Vote lineage: every row of a control number explained, consistent with the fold (R5-R7, R10, R12, R17)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from events import Entitlement, PollsClosed
from projections.fold import Tally, VoterState, discretion_fill, effective, record
from projections.lineage import COUNTS, FILLS, REJECTED, REVOKES, SUPERSEDED, LogEntry, Ref, counting_refs, lineage
from projections.meeting import Meeting
from tests.factories import at, cast, meeting, register_event, revoke, small_meeting
from tests.strategies import submissions


def entries(*events, rejected=None):
    """Log rows at positions 1.. in the given order; events in ``rejected`` map to their reason."""
    rejected = rejected or {}
    return [
        LogEntry(i, "rejected" if e.event_id in rejected else "accepted", rejected.get(e.event_id), e)
        for i, e in enumerate(events, start=1)
    ]


def by_id(statuses):
    return {s.event_id: s for s in statuses}


def test_r5_a_mail_card_dated_before_an_internet_vote_is_superseded_by_it_even_arriving_later():
    internet = cast("R-1", {"2": "for"}, executed=50, received=50)
    mail = cast("R-1", {"2": "against"}, executed=10, received=60, channel="mail", signatures=["Alice"])
    result = by_id(lineage(meeting(), entries(internet, mail)))
    assert result[internet.event_id].status == COUNTS
    assert (result[mail.event_id].status, result[mail.event_id].rule, result[mail.event_id].by) == (
        SUPERSEDED,
        "R5",
        Ref(1, internet.event_id),
    )


def test_r7_a_revocation_voids_the_earlier_vote_and_names_itself_and_the_re_vote_counts():
    first = cast("R-2", {"1.1": "against"}, executed=5, channel="phone")
    revocation = revoke("R-2", executed=6)
    again = cast("R-2", {"3": "against"}, executed=7, channel="phone")
    result = by_id(lineage(meeting(), entries(first, revocation, again)))
    assert (result[first.event_id].rule, result[first.event_id].by) == ("R7", Ref(2, revocation.event_id))
    assert result[revocation.event_id].status == REVOKES
    assert result[revocation.event_id].voids == (Ref(1, first.event_id),)
    assert result[again.event_id].status == COUNTS


def test_r7_a_revocation_after_every_instruction_leaves_nothing_counting():
    vote = cast("R-1", {"2": "for"}, executed=1)
    statuses = lineage(meeting(), entries(vote, revoke("R-1", executed=2)))
    assert counting_refs(statuses) == (None, None)
    assert statuses[0].rule == "R7"


def test_r6_an_in_person_ballot_supersedes_a_later_dated_card():
    ballot = cast("R-1", {"2": "against"}, executed=10, channel="in_person")
    card = cast("R-1", {"2": "for"}, executed=20, channel="mail", signatures=["Alice"])
    result = by_id(lineage(meeting(), entries(ballot, card)))
    assert result[ballot.event_id].status == COUNTS
    assert (result[card.event_id].rule, result[card.event_id].by) == ("R6", Ref(1, ballot.event_id))


def test_r10_the_owners_instruction_beats_discretion_which_still_fills_an_unmarked_routine_item():
    discretion = cast("B-2", {"2": "for"}, executed=5, channel="broker", discretionary=True)
    marked = cast("B-2", {"2": "against", "3": "for"}, executed=1, channel="broker")
    result = by_id(lineage(meeting(), entries(discretion, marked)))
    assert result[marked.event_id].status == COUNTS
    assert (result[discretion.event_id].rule, result[discretion.event_id].by) == ("R10", Ref(2, marked.event_id))

    unmarked = cast("B-2", {"3": "for"}, executed=1, channel="broker")
    result = by_id(lineage(meeting(), entries(discretion, unmarked)))
    assert (result[discretion.event_id].status, result[discretion.event_id].items) == (FILLS, ("2",))


def test_r12_a_ballot_received_after_the_polls_closed_is_ignored_and_names_the_closure():
    m = meeting()
    closure = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(24 * 30 + 0.5))
    m.close_polls(closure)
    card = cast("R-1", {"2": "for"}, executed=30)
    late = cast("R-1", {"2": "against"}, executed=24 * 30 + 1, channel="in_person")
    result = by_id(lineage(m, entries(card, late), closures=[(9, closure)]))
    assert result[card.event_id].status == COUNTS
    assert (result[late.event_id].rule, result[late.event_id].by) == ("R12", Ref(9, "close"))


def reject_meeting(entitlement=3000):
    """The small meeting under the reject policy, Broker X entitled to fewer shares than its books."""
    m = Meeting.scheduled(small_meeting(overvote_policy="reject"))
    chunk = register_event()
    m.record_positions(
        type(chunk)(
            event_id=chunk.event_id,
            meeting_id="m1",
            chunk=0,
            chunks=1,
            positions=chunk.positions,
            entitlements=[Entitlement(nominee="Broker X", shares=entitlement)],
        )
    )
    return m


def test_r17_an_instruction_refused_under_the_reject_policy_is_superseded_with_its_item():
    m = reject_meeting()
    b1 = cast("B-1", {"2": "for"}, channel="broker")
    b2 = cast("B-2", {"2": "for"}, channel="broker")  # takes Broker X to 6,000 of 3,000 on item 2
    tally = Tally(meeting=m)
    tally.apply_many([b1, b2])
    (status,) = lineage(m, entries(b2), tally.voters["B-2"])
    assert (status.status, status.rule, status.items) == (SUPERSEDED, "R17", ("2",))


def test_r17_a_discretionary_vote_revived_by_a_revocation_and_refused_takes_the_earlier_ones_with_it():
    m = reject_meeting()
    owner = cast("B-2", {"2": "against"}, executed=1, channel="broker", shares=2000)  # within 3,000
    earlier = cast("B-2", {"2": "for"}, executed=4, channel="broker", discretionary=True)
    later = cast("B-2", {"2": "abstain"}, executed=5, channel="broker", discretionary=True)
    revocation = revoke("B-2", executed=3, channel="broker")
    tally = Tally(meeting=m)
    for event in (owner, earlier, later, revocation):
        tally.apply(event)  # the revocation voids the owner: `later` would take Broker X over on item 2
    state = tally.voters["B-2"]
    assert state.overvote_rejected == [(later.event_id, "2")] and effective(state) is None
    result = by_id(lineage(m, entries(owner, earlier, later, revocation), state))
    assert (result[owner.event_id].rule, result[owner.event_id].by) == ("R7", Ref(4, revocation.event_id))
    assert (result[earlier.event_id].rule, result[earlier.event_id].by) == ("R5", Ref(3, later.event_id))
    assert (result[later.event_id].rule, result[later.event_id].items) == ("R17", ("2",))
    assert counting_refs(result.values()) == (None, None)


def test_rejected_rows_keep_their_reason_code_and_never_count():
    vote = cast("R-1", {"9": "for"})
    (status,) = lineage(meeting(), entries(vote, rejected={vote.event_id: "unknown_item"}))
    assert (status.decision, status.reason, status.status) == ("rejected", "unknown_item", REJECTED)


# --- Properties ---------------------------------------------------------------------------------


def check_against_state(m, events, state, given_state=False):
    mine = entries(*events)
    statuses = lineage(m, mine, state if given_state else None)
    vote, fill = counting_refs(statuses)
    expected = effective(state)
    assert vote == (
        Ref(next(e.position for e in mine if e.event is expected), expected.event_id) if expected is not None else None
    )
    filler = discretion_fill(state)
    if fill is not None:
        assert filler is not None and fill.event_id == filler.event_id
    assert sum(s.status == COUNTS for s in statuses) <= 1
    assert all(s.status is not None for s in statuses)


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25))
def test_r5_r6_r7_r10_the_instruction_lineage_says_counts_is_the_folds_effective_one(events):
    for number in {e.control_number for e in events}:
        mine = [e for e in events if e.control_number == number]
        state = VoterState()
        for event in mine:
            record(state, event)
        check_against_state(meeting(), mine, state)


@settings(max_examples=200, deadline=None)
@given(st.lists(submissions(), max_size=25), st.integers(0, 45), st.booleans())
def test_r12_r17_lineage_agrees_with_the_tallys_fold_after_closures_and_reject_refusals(events, closed, close):
    m = reject_meeting()
    if close:
        m.close_polls(PollsClosed(event_id="close", meeting_id="m1", closed_at=at(closed)))
    tally = Tally(meeting=m)
    for event in events:
        tally.apply(event)
    for number, state in tally.voters.items():
        mine = [e for e in events if e.control_number == number]
        check_against_state(m, mine, state, given_state=True)
        statuses = lineage(m, entries(*mine), state)
        refused = {s.event_id for s in statuses if s.rule == "R17"}
        assert refused == {event_id for event_id, _ in state.overvote_rejected}


@st.composite
def nominee_traffic(draw):
    """A nominee's owners' partial instructions, discretionary votes and revocations: R17 revivals."""
    number = draw(st.sampled_from(["B-1", "B-2"]))
    executed = draw(st.integers(0, 20))
    received = executed + draw(st.integers(0, 3))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return revoke(number, executed=executed, received=received, channel="broker")
    if kind == 1:
        return cast(
            number,
            {"2": draw(st.sampled_from(["for", "against"]))},
            executed=executed,
            received=received,
            channel="broker",
            discretionary=True,
        )
    choices = {"2": "for"} if draw(st.booleans()) else {"3": "for"}
    return cast(
        number,
        choices,
        executed=executed,
        received=received,
        channel="broker",
        shares=draw(st.sampled_from([None, 500, 1000])),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(nominee_traffic(), max_size=14), st.sampled_from([1000, 2500, 3000, 4500]))
def test_r17_lineage_places_refusals_on_arrival_or_at_the_reviving_revocation_as_the_fold_did(events, entitlement):
    m = reject_meeting(entitlement)
    tally = Tally(meeting=m)
    for event in events:
        tally.apply(event)
    for number, state in tally.voters.items():
        mine = [e for e in events if e.control_number == number]
        check_against_state(m, mine, state, given_state=True)
        refused = {s.event_id for s in lineage(m, entries(*mine), state) if s.rule == "R17"}
        assert refused == {event_id for event_id, _ in state.overvote_rejected}

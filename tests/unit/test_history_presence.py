"""audit history's header says what counts as the tally counts it: attendance (R6), per item (R12), present (R14)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from events import PollsClosed
from projections.fold import Tally, voter_contribution
from projections.lineage import lineage
from projections.lineage_status import LogEntry, Ref, presence
from services.cli.audit_cmd import _counting
from tests.factories import at, cast, meeting, revoke
from tests.strategies import submissions


def entries(*events):
    """Accepted log rows at positions 1.. in the given order."""
    return [LogEntry(i, "accepted", None, e) for i, e in enumerate(events, start=1)]


def header(statuses) -> str:
    """The "Counts:" of audit history, from the JSON services/read/audit.py gives."""
    p = presence(statuses)

    def ref(r):
        return {"position": r.position, "event_id": r.event_id} if r else None

    report = {
        "counts": ref(p.counts),
        "attends": ref(p.attends),
        "counts_on_items": [{"item": item, **ref(r)} for item, r in p.on_items],
    }
    return _counting(report)


def present_in_tally(m, events) -> bool:
    """Whether the fold counts the control number present (R14)."""
    tally = Tally(meeting=m)
    for event in events:
        tally.apply(event)
    state = tally.voters.get(events[0].control_number)
    return state is not None and voter_contribution(m, m.positions[events[0].control_number], state) is not None


def test_r6_a_holder_who_revoked_the_proxy_and_attended_is_present_and_votes_nothing():
    card = cast("R-1", {"2": "for"}, executed=1, channel="mail", signatures=["Alice"], event_id="card")
    revocation = revoke("R-1", executed=2, event_id="revoke")
    attendance = cast("R-1", {}, executed=3, channel="in_person", event_id="attend")
    m = meeting()
    statuses = lineage(m, entries(card, revocation, attendance))
    p = presence(statuses)
    assert p.counts is None and p.attends == Ref(3, "attend") and p.present
    assert present_in_tally(m, [card, revocation, attendance])
    assert header(statuses) == "attends #3 attend: present, votes nothing"


def test_r6_an_attendance_beside_a_counting_proxy_is_named_without_votes_nothing():
    card = cast("R-1", {"2": "for"}, executed=1, channel="mail", signatures=["Alice"], event_id="card")
    attendance = cast("R-1", {}, executed=3, channel="in_person", event_id="attend")
    statuses = lineage(meeting(), entries(card, attendance))
    assert header(statuses) == "#1 card; attends #2 attend: present"


def test_r12_a_revocation_after_item_2_closed_leaves_the_card_counting_there_and_the_header_says_so():
    card = cast("R-1", {"2": "for"}, executed=1, event_id="card")
    revocation = revoke("R-1", executed=6, event_id="revoke")
    m = meeting()
    close = PollsClosed(event_id="close-2", meeting_id="m1", closed_at=at(5), items=["2"])
    m.close_polls(close)
    statuses = lineage(m, entries(card, revocation), closures=[(9, close)])
    p = presence(statuses)
    assert p.counts is None and p.on_items == (("2", Ref(1, "card")),) and p.present
    assert present_in_tally(m, [card, revocation])
    assert header(statuses) == "on item 2: #1 card (R12 per item); nothing on the other items"


def test_nothing_counting_is_still_said_not_present():
    card = cast("R-1", {"2": "for"}, executed=1, event_id="card")
    statuses = lineage(meeting(), entries(card, revoke("R-1", executed=2)))
    assert not presence(statuses).present and header(statuses) == "nothing (not present)"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(submissions(), min_size=1, max_size=12),
    st.one_of(st.none(), st.integers(0, 45)),
    st.one_of(st.none(), st.integers(0, 45)),
)
def test_r14_the_history_calls_a_holder_present_exactly_when_the_tally_counts_it_present(events, item_2, every):
    m = meeting()
    if item_2 is not None:
        m.close_polls(PollsClosed(event_id="c2", meeting_id="m1", closed_at=at(item_2), items=["2"]))
    if every is not None:
        m.close_polls(PollsClosed(event_id="c", meeting_id="m1", closed_at=at(every)))
    for number in {e.control_number for e in events}:
        mine = [e for e in events if e.control_number == number]
        statuses = lineage(m, entries(*mine))
        assert presence(statuses).present == present_in_tally(m, mine)
        assert (header(statuses) == "nothing (not present)") != presence(statuses).present

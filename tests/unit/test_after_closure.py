"""After the polls closed on every item nothing changes the meeting, whatever the log order (R5, R12, R13).

A substitution received after that closure has no effect on the proxy book, and an amendment effective after
it is not in force (tally, recommendation, cut-offs, date, the reports' list), whether the closure reached
the log before them (the judge refuses them poll_closed) or after (accepted, then without effect).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    CutoffChanged,
    ItemCorrected,
    MeetingAdjourned,
    MeetingCorrected,
    PollsClosed,
    ProxySubstituted,
)
from projections.amendments import as_amended
from projections.judge import Judge, Received
from projections.replay import replay
from projections.validation import POLL_CLOSED
from tests.factories import at, cast, register_event, small_meeting

ANN, BOB = "Ann Proxy", "Bob Proxy"
SPEC = small_meeting()


def sub(holder: str, substitute: str, executed: float, received: float | None = None, event_id: str = "s1"):
    """A proxy.substituted of meeting m1 passing every proxy the holder holds."""
    return ProxySubstituted(
        event_id=event_id,
        meeting_id="m1",
        proxy_holder=holder,
        substitute=substitute,
        executed_at=at(executed),
        received_at=at(received if received is not None else executed),
    )


def closed(hour: float, items: list[str] | None = None, event_id: str = "close") -> PollsClosed:
    """A polls.closed of meeting m1 (every item, or the listed ones)."""
    return PollsClosed(event_id=event_id, meeting_id="m1", closed_at=at(hour), items=items)


def corrected(effective: float, item: str, recommendation: str, event_id: str) -> MeetingCorrected:
    """A correction of one item's recommendation (R9)."""
    return MeetingCorrected(
        event_id=event_id,
        meeting_id="m1",
        effective_at=at(effective),
        items=[ItemCorrected(id=item, recommendation=recommendation)],
        title=f"Annual meeting ({event_id})",
    )


def adjourned(effective: float, to_day: int, event_id: str) -> MeetingAdjourned:
    """An adjournment to another day, effective at ``effective``."""
    return MeetingAdjourned(event_id=event_id, meeting_id="m1", meeting_at=at(24 * to_day), effective_at=at(effective))


def cutoff(effective: float, new: float, event_id: str) -> CutoffChanged:
    """An internet cut-off change."""
    return CutoffChanged(
        event_id=event_id, meeting_id="m1", channel="internet", cutoff=at(new), effective_at=at(effective)
    )


def judged(events) -> tuple[Judge, list[object], list[str | None]]:
    """Judge the meeting, its register and ``events`` in this order: (judge, accepted events, reasons)."""
    judge, accepted, reasons = Judge(), [], []
    for event in (SPEC, register_event(), *events):
        reason = judge.judge(event, Received(payload=b""))
        reasons.append(reason)
        if reason is None:
            accepted.append(event)
    return judge, accepted, reasons[2:]


def book_answers(judge: Judge):
    """What the proxy book says: holders now and at each hour, and the links that had an effect."""
    b = judge.proxies["m1"]
    holders = [(b.holders("R-1", when), b.holdings(when)) for when in [None] + [at(h) for h in range(0, 8)]]
    return holders, [(link.event_id, link.not_held) for link in b.links() if link.effective]


def test_r13_a_substitution_received_after_every_poll_closed_has_no_effect_whichever_reached_the_log_first():
    carl, dana, close = sub(ANN, "Carl", 1, event_id="s1"), sub("Carl", "Dana", 4, event_id="s2"), closed(3)
    first, _, reasons = judged([carl, close, dana])
    assert reasons == [None, None, POLL_CLOSED]  # the ledger refuses it at ingest, as before
    second, _, reasons = judged([carl, dana, close])
    assert reasons == [None, None, None]  # logged before the closure: accepted...
    link = second.proxies["m1"].links()[-1]
    assert link.event_id == "s2" and not link.effective  # ...without effect: Carl still holds
    assert link.why == f"received after the polls closed at {at(3).isoformat()}"
    assert first.proxies["m1"].holders("R-1") == second.proxies["m1"].holders("R-1") == {"Carl", BOB}


def test_r13_a_substitution_received_at_the_closing_time_still_takes_effect():
    judge, _, reasons = judged([sub(ANN, "Carl", 2, received=3), closed(3)])
    assert reasons == [None, None] and judge.proxies["m1"].holders("R-1") == {"Carl", BOB}


def test_r13_per_item_closures_that_together_close_every_item_end_substitutions_too():
    items = [item.id for item in SPEC.items]
    late = sub(ANN, "Carl", 4, event_id="late")
    judge, _, reasons = judged([late, closed(2, items[:2], "c1")])
    assert judge.proxies["m1"].links()[0].effective  # items still open: a substitution still passes on
    judge.judge(closed(3, items[2:], "c2"), Received(payload=b""))
    link = judge.proxies["m1"].links()[0]
    assert not link.effective and link.why == f"received after the polls closed at {at(3).isoformat()}"
    assert judge.meetings["m1"].polls_closed_at == at(3)  # the latest item's closing time


@st.composite
def substitution_sets(draw):
    """A chain of whole-proxy substitutions at quarter hours, some received after the closing hour, and a closure."""
    people = [ANN, BOB, "Carl", "Dana", "Eli"]
    subs = []
    for i in range(draw(st.integers(1, 6))):
        executed = draw(st.integers(0, 24)) / 4
        received = executed + draw(st.sampled_from([0, 0.5, 3]))
        holder, substitute = draw(st.sampled_from(people)), draw(st.sampled_from(people))
        subs.append(sub(holder, substitute, executed, received, event_id=f"s{i}"))
    return subs, closed(draw(st.integers(4, 20)) / 4)


@settings(max_examples=200, deadline=None)
@given(substitution_sets(), st.randoms(use_true_random=False))
def test_r5_r13_substitutions_and_a_closure_in_any_order_give_the_same_holders_and_effective_links(scenario, rnd):
    subs, close = scenario
    expected = book_answers(judged([close, *subs])[0])  # the closure first: every late one refused
    for _ in range(4):
        order = [*subs, close]
        rnd.shuffle(order)
        assert book_answers(judged(order)[0]) == expected


def test_an_amendment_effective_after_every_poll_closed_is_refused_after_the_closure_and_ignored_before_it():
    vote = cast("R-1", {"2": "against"}, executed=6, received=2)  # post-dated: item 3 unmarked, R9 votes it
    fix = corrected(5, "3", "against", "fix")
    _, accepted, reasons = judged([vote, closed(4), fix])
    assert reasons == [None, None, POLL_CLOSED]
    first = replay(accepted).tallies["m1"]
    judge, accepted, reasons = judged([vote, fix, closed(4)])
    assert reasons == [None, None, None]
    second = replay(accepted).tallies["m1"]
    assert second.buckets == first.buckets and first.buckets[("3", "for", "")] == 3000  # the original recommendation
    m = judge.meetings["m1"]
    assert m.amendments == [] and m.logged_amendments == [fix] and m.as_amended() == SPEC
    assert m.recommendation("3", at(6)) == "for"


def test_a_closure_logged_after_a_correction_recounts_what_the_correction_had_changed_in_the_projection():
    vote = cast("R-1", {"2": "against"}, executed=6, received=2)
    projection = replay([SPEC, register_event(), vote, corrected(5, "3", "against", "fix")])
    tally = projection.tallies["m1"]
    assert tally.buckets[("3", "against", "")] == 3000  # in force while the polls are open
    projection.apply(closed(4))
    assert tally.buckets[("3", "for", "")] == 3000 and ("3", "against", "") not in tally.buckets
    assert tally.present == 3000


CHANGES = st.sampled_from(["fix", "adjourn", "cutoff"])


@st.composite
def amendment_sets(draw):
    """Votes (some post-dated), a closure of every item, amendments before it (logged before it) and after it."""
    hours = st.integers(0, 32).map(lambda quarter: quarter / 4)
    close_at = draw(st.integers(8, 24)) / 4
    votes = []
    for i in range(draw(st.integers(1, 8))):
        received = draw(hours)
        executed = received + draw(st.sampled_from([-1, 0, 0, 3]))  # a card may be dated after it was received
        number = draw(st.sampled_from(["R-1", "R-2", "B-1"]))
        choices = draw(st.fixed_dictionaries({}, optional={"2": st.sampled_from(["for", "against"])}))
        votes.append(cast(number, choices, executed, received, event_id=f"v{i}"))
    before, after = [], []
    for i in range(draw(st.integers(0, 5))):
        effective = draw(hours)
        kind = draw(CHANGES)
        if kind == "fix":
            event = corrected(effective, draw(st.sampled_from(["3", "5"])), "against" if i % 2 else "abstain", f"a{i}")
        elif kind == "adjourn":
            event = adjourned(effective, 31 + i, f"a{i}")
        elif effective > close_at or not any(isinstance(e, CutoffChanged) for e in before):
            event = cutoff(effective, draw(hours), f"a{i}")
        else:
            # One cut-off change in force at most: a second could reopen what the first made the ledger refuse
            # at ingest (cutoff_passed stays), an order dependence README's known limits keep.
            continue
        (before if effective <= close_at else after).append(event)
    return votes, before, after, closed(close_at)


def outcome(order):
    """The tally and the report fields of the meeting as amended, after judging and folding ``order``."""
    judge, accepted, _ = judged(order)
    tally = replay(accepted).tallies["m1"]
    section = as_amended(judge.meetings["m1"], list(enumerate(accepted)))
    rows = [{k: v for k, v in row.items() if k != "position"} for row in section.pop("amendments")]
    return tally.present, dict(tally.buckets), judge.meetings["m1"].as_amended(), section, rows


@settings(max_examples=200, deadline=None)
@given(amendment_sets(), st.randoms(use_true_random=False))
def test_r5_amendments_and_the_closure_in_any_order_give_the_same_tally_and_meeting_as_amended(scenario, rnd):
    votes, before, after, close = scenario
    # An amendment effective before the closure is logged before it (once the polls closed on every item the
    # judge refuses every amendment); those effective after it may come anywhere.
    expected = outcome([*votes, *before, close, *after])
    for _ in range(4):
        early = [*votes, *before]
        rnd.shuffle(early)
        order = [*early, close]
        for event in after:
            order.insert(rnd.randint(0, len(order)), event)
        for event in before:  # keep each one ahead of the closure
            if order.index(event) > order.index(close):
                order.remove(event)
                order.insert(order.index(close), event)
        got = outcome(order)
        # The amendments' list is in log order: compare it as a set.
        assert got[:4] == expected[:4]
        assert sorted(got[4], key=str) == sorted(expected[4], key=str)

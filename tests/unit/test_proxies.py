"""R13 proxy substitution: who holds each proxy at any time, who may substitute, and the report."""

import argparse
import itertools
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import PollsClosed, ProxySubstituted
from projections import validation as v
from projections.judge import Judge
from projections.proxies import ProxyBook
from projections.proxy_report import proxy_report
from services.cli.common import parse_timestamp as _timestamp
from services.cli.proxies_cmd import render
from tests.factories import at, cast, meeting, register_event, small_meeting

ANN, BOB = "Ann Proxy", "Bob Proxy"
NAMED = (ANN, BOB)
_ids = itertools.count(1)


def sub(holder, substitute, executed, control_numbers=None, received=None, event_id=None) -> ProxySubstituted:
    """A proxy.substituted of meeting m1."""
    return ProxySubstituted(
        event_id=event_id or f"s{next(_ids)}",
        meeting_id="m1",
        proxy_holder=holder,
        substitute=substitute,
        executed_at=at(executed),
        received_at=at(received if received is not None else executed),
        control_numbers=control_numbers,
    )


def book(*subs) -> ProxyBook:
    """A book of the small meeting's named proxies with these substitutions applied."""
    b = ProxyBook(NAMED)
    for s in subs:
        b.apply(s)
    return b


def judge_with(*events):
    """A judge of the small meeting (register recorded); returns it and each event's decision."""
    judge = Judge()
    for event in (small_meeting(), register_event()):
        assert judge.judge(event) is None
    return judge, [judge.judge(e) for e in events]


def test_r13_every_proxy_starts_held_jointly_by_all_named_proxies_and_either_may_substitute_alone():
    b = book()
    assert b.holders("R-1") == b.holders("any-number") == {ANN, BOB}
    assert b.holds(ANN, None, at(0)) and b.holds(BOB, ["R-1", "B-2"], at(0))
    assert b.may_substitute(sub(BOB, "Carl Sub", 1))
    assert not b.holds("Zed", None, at(0))


def test_r13_a_substitution_for_all_replaces_the_holder_from_its_execution_time_on():
    b = book(sub(ANN, "Carl Sub", 5))
    assert b.holders("R-1") == b.holders("B-2") == {"Carl Sub", BOB}
    assert b.holders("R-1", as_of=at(4.9)) == {ANN, BOB}
    assert b.holders("R-1", as_of=at(5)) == {"Carl Sub", BOB}  # inclusive: executed at T counts at T
    assert not b.holds(ANN, None, at(6)) and b.holds(ANN, None, at(4))
    assert b.holdings()["Carl Sub"].since == at(5) and b.holdings()["Carl Sub"].appointed_by == (ANN,)
    assert ANN not in b.holdings() and b.holdings()[BOB].since is None


def test_r13_a_substitution_for_listed_control_numbers_moves_only_those():
    b = book(sub(ANN, "Carl Sub", 5, ["R-1", "B-1"]))
    assert b.holders("R-1") == b.holders("B-1") == {"Carl Sub", BOB}
    assert b.holders("R-2") == b.holders("B-2") == {ANN, BOB}
    assert b.holds(ANN, ["R-2"], at(6)) and not b.holds(ANN, ["R-1"], at(6))
    default, exceptions = b.holder_sets()
    # Memory follows the substitutions: only the listed numbers are stored apart.
    assert default == {ANN, BOB} and set(exceptions) == {"R-1", "B-1"}


def test_r13_substitutes_may_substitute_again_and_the_chain_records_each_named_proxys_lineage():
    first, second, third = sub(ANN, "Carl Sub", 5), sub("Carl Sub", "Dana Sub", 6, ["R-1"]), sub(BOB, "Eli Sub", 7)
    b = book(third, second, first)
    assert b.holders("R-1") == {"Dana Sub", "Eli Sub"}
    assert b.holders("R-2") == {"Carl Sub", "Eli Sub"}
    chains = b.chains()
    assert [link.event_id for link in chains[ANN]] == [first.event_id, second.event_id]
    assert [link.event_id for link in chains[BOB]] == [third.event_id]
    assert chains[ANN][1].control_numbers == ("R-1",) and chains[ANN][1].lineage == {ANN}
    assert [link.event_id for link in b.chains(as_of=at(5.5))[ANN]] == [first.event_id]
    assert b.holdings()["Dana Sub"].appointed_by == ("Carl Sub",)


def test_r13_a_substitute_holds_each_number_once_appointed_by_both_joint_holders():
    b = book(sub(ANN, "Carl Sub", 5), sub(BOB, "Carl Sub", 6))
    assert b.holders("R-1") == {"Carl Sub"}
    assert b.holdings() == {"Carl Sub": b.holdings()["Carl Sub"]}
    assert b.holdings()["Carl Sub"].appointed_by == (ANN, BOB)
    assert b.chains()[BOB][0].lineage == {BOB}
    assert book(sub(ANN, "Carl Sub", 5), sub("Carl Sub", "Dana Sub", 6)).chains()[ANN][1].lineage == {ANN}


def test_r13_someone_holding_no_proxy_cannot_substitute():
    judge, reasons = judge_with(sub("Zed Stranger", "Carl Sub", 5), sub(ANN, "Carl Sub", 6, ["R-1"]))
    assert reasons == [v.NOT_PROXY_HOLDER, None]
    assert judge.proxies["m1"].holders("R-1") == {"Carl Sub", BOB}


def test_r13_a_substitute_cannot_act_for_control_numbers_it_was_not_given():
    _, reasons = judge_with(
        sub(ANN, "Carl Sub", 5, ["R-1"]),
        sub("Carl Sub", "Dana Sub", 6, ["R-2"]),  # Carl holds R-1 only
        sub("Carl Sub", "Dana Sub", 6, ["R-1", "R-2"]),  # every listed one must be held
        sub("Carl Sub", "Dana Sub", 6, ["R-1"]),
        sub("Carl Sub", "Eli Sub", 7),  # passed its only proxy on: holds nothing any more
    )
    assert reasons == [None, v.NOT_PROXY_HOLDER, v.NOT_PROXY_HOLDER, None, v.NOT_PROXY_HOLDER]


def test_r13_a_holder_cannot_substitute_before_its_appointment_or_after_giving_all_away():
    _, reasons = judge_with(
        sub(ANN, "Carl Sub", 5),
        sub("Carl Sub", "Dana Sub", 4),  # dated before Carl's appointment
        sub(ANN, "Eli Sub", 6),  # Ann gave every proxy to Carl at 5
        sub(ANN, "Eli Sub", 4, ["R-1"]),  # but before 5 Ann held them: a proxy bearing that date stands
    )
    assert reasons == [None, v.NOT_PROXY_HOLDER, v.NOT_PROXY_HOLDER, None]


def test_r13_an_earlier_dated_substitution_arriving_later_leaves_the_later_one_without_effect():
    earlier, later = sub(ANN, "Carl Sub", 4), sub(ANN, "Dana Sub", 6)
    judge, reasons = judge_with(later, earlier)
    assert reasons == [None, None]  # each was valid when judged: Ann held at 6, then at 4
    b = judge.proxies["m1"]
    assert b.holders("R-1") == {"Carl Sub", BOB}
    assert [(link.substitute, link.effective) for link in b.links()] == [("Carl Sub", True), ("Dana Sub", False)]
    assert b.holders("R-1", as_of=at(5)) == {"Carl Sub", BOB}


def test_r13_the_other_checks_stay_poll_closed_and_not_entitled():
    m = meeting()
    assert v.validate_proxy_substituted(m, sub(ANN, "Carl Sub", 5, ["X-404"]), book()) == v.NOT_ENTITLED
    m.close_polls(PollsClosed(event_id="c1", meeting_id="m1", closed_at=at(100)))
    assert v.validate_proxy_substituted(m, sub(ANN, "Carl Sub", 101), book()) == v.POLL_CLOSED
    # Bare names stand for the named proxies before any substitution.
    assert v.validate_proxy_substituted(meeting(), sub("Zed", "Carl Sub", 5), set(NAMED)) == v.NOT_PROXY_HOLDER


def test_r13_the_judge_rebuilt_from_accepted_events_answers_like_the_live_one():
    events = [
        sub(ANN, "Carl Sub", 5, ["R-1"]),
        sub("Carl Sub", "Dana Sub", 6),
        sub(BOB, "Eli Sub", 2),
        sub("Dana Sub", "Fay Sub", 7, ["R-2"]),
    ]
    live, reasons = judge_with(*events)
    assert reasons == [None, None, None, v.NOT_PROXY_HOLDER]
    rebuilt = Judge()
    for event in [small_meeting(), register_event()] + [e for e, r in zip(events, reasons, strict=False) if r is None]:
        rebuilt.apply_accepted(event)
    for cn in ("R-1", "R-2", "B-1"):
        for when in (None, at(3), at(5.5), at(6)):
            assert rebuilt.proxies["m1"].holders(cn, when) == live.proxies["m1"].holders(cn, when)
    assert rebuilt.proxies["m1"].chains() == live.proxies["m1"].chains()


def test_r13_the_same_event_id_applies_once():
    s = sub(ANN, "Carl Sub", 5)
    b = book(s, s, sub("Carl Sub", "Dana Sub", 6), s)
    assert len(b.substitutions) == 2 and b.holders("R-1") == {"Dana Sub", BOB}


# --- Order independence (hypothesis) ------------------------------------------------------------

PEOPLE = [ANN, BOB, "Carl Sub", "Dana Sub", "Eli Sub"]
NUMBERS = ["R-1", "R-2", "B-1", "B-2"]
UNLISTED = "Z-unlisted"  # stands for every control number no substitution lists


@st.composite
def substitutions(draw):
    """Any substitutions among a few people, with frequent ties of execution time."""
    count = draw(st.integers(0, 12))
    out = []
    for i in range(count):
        listed = draw(st.one_of(st.none(), st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3)))
        executed = draw(st.integers(0, 6))
        out.append(
            sub(
                draw(st.sampled_from(PEOPLE)),
                draw(st.sampled_from(PEOPLE)),
                executed,
                listed,
                received=executed + draw(st.integers(0, 2)),
                event_id=f"h{i}",
            )
        )
    return out


def naive_holders(subs, until=None):
    """Reference: every control number's holders, explicitly, replaying in R5 order."""
    holders = {cn: set(NAMED) for cn in NUMBERS + [UNLISTED]}
    for s in sorted(subs, key=lambda s: (s.executed_at, s.received_at, s.event_id)):
        if until is not None and s.executed_at > until:
            break
        scope = list(holders) if s.control_numbers is None else s.control_numbers
        for cn in scope:
            if s.proxy_holder in holders[cn]:
                holders[cn] = (holders[cn] - {s.proxy_holder}) | {s.substitute}
    return holders


def answers(b: ProxyBook):
    """Everything the book says, at every hour and at the end."""
    out = []
    for when in [None] + [at(h) for h in range(-1, 8)]:
        out.append(
            ({cn: b.holders(cn, when) for cn in NUMBERS + [UNLISTED]}, b.holdings(when), b.chains(when), b.links(when))
        )
    return out


@settings(max_examples=300, deadline=None)
@given(substitutions(), st.randoms(use_true_random=False))
def test_r13_the_holders_are_a_function_of_the_set_of_substitutions_not_their_arrival(subs, rnd):
    shuffled = subs + subs[: len(subs) // 2]  # R18: duplicates change nothing either
    rnd.shuffle(shuffled)
    assert answers(book(*subs)) == answers(book(*shuffled))


@settings(max_examples=300, deadline=None)
@given(substitutions(), st.integers(-1, 7))
def test_r13_the_book_equals_a_naive_per_control_number_replay_at_any_time(subs, hour):
    b = book(*subs)
    for when in (None, at(hour)):
        expected = naive_holders(subs, when)
        assert {cn: set(b.holders(cn, when)) for cn in expected} == expected


@settings(max_examples=200, deadline=None)
@given(substitutions())
def test_r13_queries_in_any_order_of_time_give_the_same_answers(subs):
    b = book(*subs)
    forward = answers(b)
    for when in (at(3), None, at(0), at(6)):  # move the cached state back and forth
        b.holders("R-1", when)
    assert answers(b) == forward


# --- The report (pure join with the tally's instructions) ---------------------------------------


def test_r13_the_report_counts_the_proxies_each_holder_votes_but_not_ballots():
    judge, _ = judge_with(sub(ANN, "Carl Sub", 5), sub("Carl Sub", "Dana Sub", 6, ["R-1"]))
    instructions = [
        ("R-1", cast("R-1", {"2": "for"})),
        ("R-2", cast("R-2", {"2": "for"}, channel="phone")),
        ("B-1", cast("B-1", {"2": "for"}, channel="broker", shares=1500)),  # R2: partial
        ("B-2", cast("B-2", {"2": "for"}, channel="in_person", legal_proxy_id="LP-1")),  # votes in person
    ]
    report = proxy_report(judge.meetings["m1"], judge.proxies["m1"], instructions)
    rows = {r["holder"]: (r["control_numbers"], r["shares"], r["appointed_by"]) for r in report["holders"]}
    assert rows == {BOB: (3, 5500, []), "Carl Sub": (2, 2500, [ANN]), "Dana Sub": (1, 3000, ["Carl Sub"])}
    assert report["proxies_voted"] == {"control_numbers": 3, "shares": 5500}
    assert [s["substitute"] for s in report["substitutions"]] == ["Carl Sub", "Dana Sub"]
    earlier = proxy_report(judge.meetings["m1"], judge.proxies["m1"], instructions, as_of=at(4))
    assert {r["holder"]: r["shares"] for r in earlier["holders"]} == {ANN: 5500, BOB: 5500}
    assert earlier["substitutions"] == [] and earlier["as_of"] == at(4).isoformat()
    text = render({**report, "log_position": 9, "votes_as_of_position": 9})
    assert "Dana Sub" in text and "Carl Sub -> Dana Sub: R-1" in text


def test_r13_the_cli_takes_as_of_only_as_an_rfc_3339_timestamp_with_offset():
    assert _timestamp("2023-12-14T20:00:00+08:00") == at(0).replace(day=14, month=12, hour=20)
    assert _timestamp("2023-12-14T12:00:00Z").utcoffset() == timedelta(0)
    for bad in ("2023-12-14T20:00:00", "yesterday"):
        with pytest.raises(argparse.ArgumentTypeError):
            _timestamp(bad)

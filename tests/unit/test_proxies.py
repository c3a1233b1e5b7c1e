"""R13 proxy substitution: who holds each proxy at any time, which substitutions took effect and why, the report."""

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
    assert not b.holds("Zed", None, at(0))
    b.apply(sub(BOB, "Carl Sub", 1))
    assert b.holders("R-1") == {ANN, "Carl Sub"} and b.links()[0].effective and b.links()[0].why is None


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


def effects(b: ProxyBook, as_of=None):
    """(event id, effective, not held, why) of each link, in R5 order."""
    return [(link.event_id, link.effective, link.not_held, link.why) for link in b.links(as_of)]


def test_r13_someone_holding_no_proxy_is_accepted_but_its_substitution_has_no_effect():
    stranger = sub("Zed Stranger", "Carl Sub", 5, event_id="z")
    judge, reasons = judge_with(stranger, sub(ANN, "Carl Sub", 6, ["R-1"], event_id="a"))
    assert reasons == [None, None]  # decided over the set in R5 order, not at ingest
    b = judge.proxies["m1"]
    assert b.holders("R-1") == {"Carl Sub", BOB} and b.holders("R-2") == {ANN, BOB}
    assert effects(b) == [
        ("z", False, (), f"Zed Stranger held no proxy at {at(5).isoformat()}"),
        ("a", True, (), None),
    ]
    assert b.links()[0].lineage == frozenset()  # outside every named proxy's chain
    assert "Zed Stranger" not in b.holdings() and b.holdings()["Carl Sub"].appointed_by == (ANN,)


def test_r13_a_substitute_passes_on_only_the_control_numbers_it_was_given():
    judge, reasons = judge_with(
        sub(ANN, "Carl Sub", 5, ["R-1"], event_id="a"),
        sub("Carl Sub", "Dana Sub", 6, ["R-2"], event_id="b"),  # Carl holds R-1 only
        sub("Carl Sub", "Dana Sub", 6, ["R-1", "R-2"], event_id="c"),  # R-1 passes on, R-2 stays with Ann
        sub("Carl Sub", "Dana Sub", 6, ["R-1"], event_id="d"),  # already passed on by c
        sub("Carl Sub", "Eli Sub", 7, event_id="e"),  # passed its only proxy on: holds nothing any more
    )
    assert reasons == [None] * 5
    b = judge.proxies["m1"]
    assert b.holders("R-1") == {"Dana Sub", BOB} and b.holders("R-2") == {ANN, BOB}
    six, seven = at(6).isoformat(), at(7).isoformat()
    assert effects(b) == [
        ("a", True, (), None),
        ("b", False, ("R-2",), f"Carl Sub held none of the listed proxies at {six}"),
        ("c", True, ("R-2",), f"Carl Sub did not hold R-2 at {six}; only the others passed on"),
        ("d", False, ("R-1",), f"Carl Sub held none of the listed proxies at {six}"),
        ("e", False, (), f"Carl Sub held no proxy at {seven}"),
    ]
    assert "Eli Sub" not in b.holdings()


def test_r13_a_substitution_dated_before_its_holders_appointment_or_after_it_gave_all_away_has_no_effect():
    judge, reasons = judge_with(
        sub(ANN, "Carl Sub", 5, event_id="a"),
        sub("Carl Sub", "Dana Sub", 4, event_id="b"),  # dated before Carl's appointment
        sub(ANN, "Eli Sub", 6, event_id="c"),  # Ann gave every proxy to Carl at 5
        sub(ANN, "Eli Sub", 4, ["R-1"], event_id="d"),  # but before 5 Ann held them: a proxy bearing that date stands
    )
    assert reasons == [None] * 4
    b = judge.proxies["m1"]
    assert [(event_id, effective) for event_id, effective, _, _ in effects(b)] == [
        ("b", False),
        ("d", True),
        ("a", True),
        ("c", False),
    ]
    assert b.holders("R-1") == {"Eli Sub", BOB} and b.holders("R-2") == {"Carl Sub", BOB}


def test_r13_a_holder_naming_itself_changes_nothing_and_the_link_says_so():
    b = book(sub(ANN, ANN, 5, event_id="a"))
    assert b.holders("R-1") == {ANN, BOB} and b.holdings()[ANN].appointed_by == ()
    assert effects(b) == [("a", False, (), "Ann Proxy named itself as substitute")]
    empty = book(sub(ANN, "Carl Sub", 5, [], event_id="e"))  # [] lists nothing; None would mean all
    assert empty.holders("R-1") == {ANN, BOB} and effects(empty) == [("e", False, (), "lists no control number")]


def test_r13_a_substitutes_substitution_arriving_before_his_appointment_ends_the_chain_as_in_date_order():
    chain = [
        sub(ANN, "Carl Sub", 5, event_id="a"),
        sub("Carl Sub", "Dana Sub", 6, ["R-1"], event_id="b"),
        sub("Dana Sub", "Eli Sub", 7, event_id="c"),
    ]
    in_date_order, reasons = judge_with(*chain)
    reversed_order, reversed_reasons = judge_with(*reversed(chain))
    assert reasons == reversed_reasons == [None] * 3  # arrival once gave not_proxy_holder to b and c
    for judge in (in_date_order, reversed_order):
        b = judge.proxies["m1"]
        assert b.holders("R-1") == {"Eli Sub", BOB} and b.holders("R-2") == {"Carl Sub", BOB}
        assert [link.effective for link in b.links()] == [True, True, True]
        assert [link.event_id for link in b.chains()[ANN]] == ["a", "b", "c"]
        assert b.holders("R-1", at(6.5)) == {"Dana Sub", BOB}


def test_r13_the_earlier_dated_of_two_substitutions_takes_effect_whichever_arrives_first():
    earlier, later = sub(ANN, "Carl Sub", 4, event_id="early"), sub(ANN, "Dana Sub", 6, event_id="late")
    for order in ([later, earlier], [earlier, later]):
        judge, reasons = judge_with(*order)
        assert reasons == [None, None]
        b = judge.proxies["m1"]
        assert b.holders("R-1") == {"Carl Sub", BOB} and b.holders("R-1", as_of=at(5)) == {"Carl Sub", BOB}
        assert effects(b) == [
            ("early", True, (), None),
            ("late", False, (), f"Ann Proxy held no proxy at {at(6).isoformat()}"),
        ]
        assert effects(b, at(5)) == [("early", True, (), None)]  # as of any time


def test_r13_the_judge_keeps_only_order_independent_checks_poll_closed_and_not_entitled():
    m = meeting()
    assert v.validate_proxy_substituted(m, sub(ANN, "Carl Sub", 5, ["X-404"])) == v.NOT_ENTITLED
    assert v.validate_proxy_substituted(m, sub("Zed", "Carl Sub", 5)) is None  # the book decides its effect
    m.close_polls(PollsClosed(event_id="c1", meeting_id="m1", closed_at=at(100)))
    assert v.validate_proxy_substituted(m, sub(ANN, "Carl Sub", 101)) == v.POLL_CLOSED
    assert v.validate_proxy_substituted(m, sub(ANN, "Carl Sub", 99, received=100)) is None
    # Older logs carry the code, so it stays in the vocabulary (auditors filter on it).
    assert v.NOT_PROXY_HOLDER == "not_proxy_holder" and v.NOT_PROXY_HOLDER in v.REASONS


def test_r13_the_judge_rebuilt_from_accepted_events_answers_like_the_live_one():
    events = [
        sub(ANN, "Carl Sub", 5, ["R-1"]),
        sub("Carl Sub", "Dana Sub", 6),
        sub(BOB, "Eli Sub", 2),
        sub("Dana Sub", "Fay Sub", 7, ["R-2"]),
    ]
    live, reasons = judge_with(*events)
    assert reasons == [None, None, None, None]
    rebuilt = Judge()
    for event in [small_meeting(), register_event(), *events]:
        rebuilt.apply_accepted(event)
    for cn in ("R-1", "R-2", "B-1"):
        for when in (None, at(3), at(5.5), at(6)):
            assert rebuilt.proxies["m1"].holders(cn, when) == live.proxies["m1"].holders(cn, when)
    assert rebuilt.proxies["m1"].chains() == live.proxies["m1"].chains()
    assert [link.effective for link in live.proxies["m1"].links()] == [True, True, True, False]  # Dana: R-1 only


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


def naive_replay(subs, until=None):
    """Reference: every control number's holders, explicitly, and each substitution's effect, in R5 order."""
    holders = {cn: set(NAMED) for cn in NUMBERS + [UNLISTED]}
    effects = []
    for s in sorted(subs, key=lambda s: (s.executed_at, s.received_at, s.event_id)):
        if until is not None and s.executed_at > until:
            break
        scope = list(holders) if s.control_numbers is None else list(dict.fromkeys(s.control_numbers))
        held = [cn for cn in scope if s.proxy_holder in holders[cn]]
        for cn in held:
            holders[cn] = (holders[cn] - {s.proxy_holder}) | {s.substitute}
        if s.proxy_holder == s.substitute:
            effects.append((s.event_id, False, ()))  # names itself: changes nothing, whatever it held
            continue
        not_held = () if s.control_numbers is None else tuple(cn for cn in scope if cn not in held)
        effects.append((s.event_id, bool(held), not_held))
    return holders, effects


def naive_holders(subs, until=None):
    """Reference: every control number's holders, explicitly, replaying in R5 order."""
    return naive_replay(subs, until)[0]


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


@settings(max_examples=300, deadline=None)
@given(substitutions(), st.integers(-1, 7))
def test_r13_each_links_effect_equals_a_naive_replay_whether_the_holder_held_it_at_that_time(subs, hour):
    b = book(*subs)
    for when in (None, at(hour)):
        expected = naive_replay(subs, when)[1]
        assert [(link.event_id, link.effective, link.not_held) for link in b.links(when)] == expected
        assert all((link.why is None) == (link.effective and not link.not_held) for link in b.links(when))


@settings(max_examples=200, deadline=None)
@given(substitutions(), st.randoms(use_true_random=False))
def test_r13_the_judge_accepts_any_arrival_order_of_a_set_alike_and_its_book_answers_alike(subs, rnd):
    shuffled = list(subs)
    rnd.shuffle(shuffled)
    first, first_reasons = judge_with(*subs)
    second, second_reasons = judge_with(*shuffled)
    # Every one is structurally valid: none is refused for what arrived before it (R5).
    assert first_reasons == second_reasons == [None] * len(subs)
    assert answers(first.proxies["m1"]) == answers(second.proxies["m1"])


def test_r13_every_arrival_order_of_a_chain_with_listed_numbers_and_ties_gives_the_same_book():
    chain = [
        sub(ANN, "Carl Sub", 5, event_id="a"),
        sub("Carl Sub", "Dana Sub", 6, ["R-1", "B-1"], event_id="b"),
        sub("Dana Sub", "Eli Sub", 6, ["R-1"], received=6, event_id="c"),  # same time as b: event id decides
        sub(BOB, "Dana Sub", 6, ["R-2"], received=7, event_id="d"),
        sub("Dana Sub", ANN, 7, event_id="e"),  # back to a named proxy
    ]
    expected = answers(book(*chain))
    for order in itertools.permutations(chain):
        assert answers(book(*order)) == expected
    b = book(*chain)
    assert b.holders("R-1") == {"Eli Sub", BOB} and b.holders("B-1") == {ANN, BOB}
    assert b.holders("R-2") == {"Carl Sub", ANN} and b.holders("B-2") == {"Carl Sub", BOB}


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


def test_r13_the_report_lists_substitutions_without_effect_and_why_as_of_any_time():
    judge, _ = judge_with(
        sub("Carl Sub", "Dana Sub", 6, ["R-1", "R-2"], event_id="b"),  # arrives first; Carl appointed at 5
        sub(ANN, "Carl Sub", 5, ["R-1"], event_id="a"),
        sub("Zed Stranger", "Eli Sub", 7, event_id="z"),
    )
    m, b = judge.meetings["m1"], judge.proxies["m1"]
    report = proxy_report(m, b, [])
    links = {link["event_id"]: link for link in report["substitutions"]}
    assert links["a"]["effective"] and links["a"]["why"] is None and links["a"]["not_held"] == []
    assert links["b"]["effective"] and links["b"]["not_held"] == ["R-2"]
    assert (links["z"]["effective"], links["z"]["lineage"], links["z"]["not_held"]) == (False, [], [])
    assert links["z"]["why"] == f"Zed Stranger held no proxy at {at(7).isoformat()}"
    assert report["without_effect"] == 1 and report["chains"][ANN] == ["a", "b"]
    text = render({**report, "log_position": 9, "votes_as_of_position": 9})
    assert f"Carl Sub -> Dana Sub: R-1, R-2  [partly: Carl Sub did not hold R-2 at {at(6).isoformat()}" in text
    assert (
        f"Zed Stranger -> Eli Sub: all proxies held  [no effect: Zed Stranger held no proxy at {at(7).isoformat()}]"
        in text
    )
    assert "1 accepted substitution(s) had no effect" in text
    earlier = proxy_report(m, b, [], as_of=at(5.5))
    assert [link["event_id"] for link in earlier["substitutions"]] == ["a"] and earlier["without_effect"] == 0


@settings(max_examples=100, deadline=None)
@given(substitutions())
def test_r13_a_judge_keeping_no_proxy_book_decides_alike_and_keeps_nothing_per_substitution(subs):
    lean = Judge(proxy_books=False)
    for event in (small_meeting(), register_event()):
        assert lean.judge(event) is None
    _, reasons = judge_with(*subs)
    assert [lean.judge(s) for s in subs] == reasons
    assert lean.proxies == {}  # the ledger's and the projector's judges: bounded whatever the channels send

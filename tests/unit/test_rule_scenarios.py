"""One named scenario per rule (R1-R19) and reason code that the other unit tests did not yet cover.

Already covered elsewhere (not repeated here):
  R1 not_entitled, R2 exceeds_position, R3 over_vote, R4 invalid_choice / unknown_item, R8 no_legal_proxy,
  R10 discretionary_not_allowed, R11 unsigned / missing_joint_signature, R12 cutoff_passed / poll_closed,
  unknown_meeting, duplicate_meeting / duplicate_chunk / duplicate_position: tests/unit/test_validation.py;
  R5 latest date and its tie-breaks, R6 ballot over a later card, R7 revoke and re-vote, R9, R10, R14 boundary,
  R15 standards and ties: tests/unit/test_fold.py; R10 filling, R17 prorate and reject: tests/unit/test_rules.py;
  R13 substitution and its effect in date order: tests/unit/test_proxies.py; wrong_topic through Kafka:
  tests/integration/test_ledger_robustness.py; every rule through Kafka: tests/integration/test_rules_through_kafka.py.
Expected numbers are computed by hand from tests/factories.py: R-1 3000 (Alice), R-2 1000 (Carl + Dana joint),
B-1 2000 and B-2 4000 under Broker X (entitlement 6000); outstanding 10000, quorum 1/3 (required 3334).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec.structs

from events import Entitlement, PollsClosed, Position, PositionsRecorded, encode
from projections import validation as v
from projections.fold import Tally
from projections.judge import Judge
from projections.meeting import Meeting
from projections.outcomes import tally_report
from projections.overvotes import counted_totals
from projections.replay import replay
from services.runtime import ingest
from tests.factories import POSITIONS, at, cast, meeting, register_event, revoke, small_meeting

MEETING_DAY = 24 * 30  # small_meeting(): the meeting is at(24 * 30), the internet/phone cut-off at(24 * 29)


def fold(events, m: Meeting | None = None) -> Tally:
    tally = Tally(meeting=m or meeting())
    for event in events:
        tally.apply(event)
    return tally


def report(tally: Tally) -> dict:
    """The tally JSON (R14-R17) of a folded meeting."""
    totals, _ = counted_totals(tally.meeting.spec, tally.meeting.entitlements, tally.buckets)
    return tally_report(tally.meeting.spec, tally.present, totals, as_of_position=0)


def columns(tally: Tally, item_id: str) -> dict:
    """An item's non-zero columns, outcome and margin left out."""
    return {k: n for k, n in report(tally)["items"][item_id].items() if k not in ("outcome", "margin") and n}


def judged_meeting() -> Judge:
    judge = Judge()
    assert judge.judge(small_meeting()) is None and judge.judge(register_event()) is None
    return judge


# --- R2 partial votes ----------------------------------------------------------------------------


def test_r2_a_partial_vote_makes_only_its_shares_present_and_voted_including_the_items_filled_per_the_board():
    tally = fold([cast("R-1", {"2": "against"}, shares=1200)])
    assert tally.present == 1200  # not R-1's 3000
    assert columns(tally, "2") == {"against": 1200}
    assert columns(tally, "1.1") == {"for": 1200} and columns(tally, "5") == {"3y": 1200}  # R9 on 1200 only


def test_r2_a_vote_for_exactly_the_whole_position_is_accepted():
    m = meeting()
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, shares=3000)) is None
    assert v.validate_vote_cast(m, cast("B-2", {"2": "for"}, shares=4000, channel="broker")) is None


# --- R3 split votes ------------------------------------------------------------------------------


def test_r3_the_unassigned_part_of_a_registered_split_is_reported_present_but_not_voted():
    tally = fold([cast("R-1", {"3": {"for": 1000, "against": 500}})])
    # 3000 represented: 1000 + 500 voted, 3000 - 1500 = 1500 present but not voted (not a broker non-vote).
    assert columns(tally, "3") == {"for": 1000, "against": 500, "not_voted": 1500}


# --- R4 unknown items in administration ------------------------------------------------------------


def test_r4_a_poll_closure_naming_an_unknown_item_is_refused_unknown_item():
    judge = judged_meeting()
    assert judge.judge(PollsClosed(event_id="c9", meeting_id="m1", closed_at=at(5), items=["9"])) == v.UNKNOWN_ITEM
    assert judge.meetings["m1"].closed_item_at == {}  # a refused closure closes nothing
    assert judge.judge(cast("R-1", {"2": "for"}, executed=6)) is None


# --- R5 latest-dated wins --------------------------------------------------------------------------


def test_r5_the_latest_date_compares_instants_not_the_clock_time_written_in_each_zone():
    # 20:00 in Shanghai (12:00 UTC) is EARLIER than 10:00 in New York (15:00 UTC) the same day.
    shanghai = msgspec.structs.replace(
        cast("R-1", {"2": "for"}),
        executed_at=_t("2023-11-30T20:00:00+08:00"),
        received_at=_t("2023-11-30T20:00:00+08:00"),
    )
    new_york = msgspec.structs.replace(
        cast("R-1", {"2": "against"}, channel="mail", signatures=["Alice"]),
        executed_at=_t("2023-11-30T10:00:00-05:00"),
        received_at=_t("2023-12-01T09:00:00-05:00"),
    )
    for order in ([shanghai, new_york], [new_york, shanghai]):
        assert columns(fold(order), "2") == {"against": 3000}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- R6 in-person ballots --------------------------------------------------------------------------


def test_r6_among_ballots_the_latest_dated_counts_whatever_the_arrival():
    first = cast("R-1", {"2": "for"}, executed=MEETING_DAY + 0.1, received=MEETING_DAY + 0.5, channel="in_person")
    second = cast("R-1", {"2": "against"}, executed=MEETING_DAY + 0.2, received=MEETING_DAY + 0.3, channel="in_person")
    for order in ([first, second], [second, first]):
        assert columns(fold(order), "2") == {"against": 3000}


def test_r6_a_ballot_beats_a_proxy_dated_and_received_after_it_and_a_revocation_does_not_void_it():
    ballot = cast("R-1", {"3": "against"}, executed=MEETING_DAY + 0.1, channel="in_person")
    later_card = cast("R-1", {"3": "for"}, executed=MEETING_DAY + 0.2, channel="mail", signatures=["Alice"])
    tally = fold([ballot, later_card, revoke("R-1", executed=MEETING_DAY + 0.3)])
    assert tally.present == 3000 and columns(tally, "3") == {"against": 3000}


# --- R7 revocation ---------------------------------------------------------------------------------


def test_r7_an_instruction_executed_exactly_at_the_revocation_time_stands():
    same_time = cast("R-1", {"2": "against"}, executed=5)
    earlier = cast("R-1", {"2": "for"}, executed=4.99)
    tally = fold([earlier, revoke("R-1", executed=5), same_time])
    assert tally.present == 3000 and columns(tally, "2") == {"against": 3000}
    tally = fold([earlier, revoke("R-1", executed=5)])
    assert tally.present == 0  # every instruction void: not present


def test_r7_a_revocation_executed_before_any_instruction_voids_nothing_later():
    tally = fold([revoke("R-2", executed=1), cast("R-2", {"2": "for"}, executed=2, channel="phone")])
    assert tally.present == 1000 and columns(tally, "2") == {"for": 1000}


# --- R8 legal proxy --------------------------------------------------------------------------------


def test_r8_a_beneficial_owners_ballot_with_a_legal_proxy_supersedes_the_nominees_votes():
    owner = cast("B-1", {"2": "for", "3": "for"}, executed=1, channel="broker")
    discretion = cast("B-1", {"2": "for"}, executed=2, channel="broker", discretionary=True)
    ballot = cast(
        "B-1",
        {"1.1": "for", "1.2": "for", "2": "against", "3": "against", "5": "1y"},
        executed=MEETING_DAY + 0.1,
        channel="in_person",
        legal_proxy_id="LP-42",
    )
    judge = judged_meeting()
    assert [judge.judge(e) for e in (owner, discretion, ballot)] == [None, None, None]
    tally = fold([owner, ballot, discretion])
    assert tally.present == 2000
    assert columns(tally, "2") == {"against": 2000} and columns(tally, "3") == {"against": 2000}
    assert columns(tally, "5") == {"1y": 2000}


# --- R9 unmarked items ------------------------------------------------------------------------------


def test_r9_registered_cards_fill_unmarked_items_per_the_board_but_a_ballot_does_not():
    card = cast("R-2", {"3": "against"}, channel="mail", signatures=["Carl", "Dana"])
    ballot = cast("R-1", {"3": "against"}, executed=MEETING_DAY + 0.1, channel="in_person")
    tally = fold([card, ballot])
    assert tally.present == 4000
    assert columns(tally, "3") == {"against": 4000}
    # Only the card (R-2, 1000) is voted per the board on the items both left unmarked.
    assert columns(tally, "2") == {"for": 1000, "not_voted": 3000}
    assert columns(tally, "5") == {"3y": 1000, "not_voted": 3000}


# --- R10 broker discretion -------------------------------------------------------------------------


def test_r10_the_discretionary_vote_fills_only_the_shares_the_owners_partial_instruction_represents():
    owner = cast("B-2", {"3": "for"}, shares=1500, executed=2, channel="broker")
    discretion = cast("B-2", {"2": "against"}, executed=1, channel="broker", discretionary=True)
    tally = fold([discretion, owner])
    assert tally.present == 1500
    assert columns(tally, "2") == {"against": 1500}  # not B-2's 4000
    assert columns(tally, "3") == {"for": 1500}


def test_r10_a_discretionary_vote_never_overrides_an_item_the_owner_marked():
    owner = cast("B-1", {"2": "abstain"}, executed=1, channel="broker")
    discretion = cast("B-1", {"2": "for"}, executed=9, channel="broker", discretionary=True)
    assert columns(fold([owner, discretion]), "2") == {"abstain": 2000}


# --- R12 polls and cut-offs -------------------------------------------------------------------------


def test_r12_ballots_are_accepted_after_the_internet_cutoff_until_the_polls_close():
    judge = judged_meeting()
    closing = MEETING_DAY + 2
    after_cutoff = cast("R-1", {"2": "for"}, executed=MEETING_DAY + 0.5, channel="in_person")
    at_closing = cast("R-2", {"2": "for"}, executed=MEETING_DAY + 1, received=closing, channel="in_person")
    assert judge.judge(after_cutoff) is None
    assert judge.judge(PollsClosed(event_id="close", meeting_id="m1", closed_at=at(closing))) is None
    assert judge.judge(at_closing) is None  # received exactly at the closing time: in time
    late = cast("R-2", {"2": "for"}, executed=MEETING_DAY + 1, received=closing + 1 / 3600, channel="in_person")
    assert judge.judge(late) == v.POLL_CLOSED


def test_r12_the_cutoff_is_inclusive_and_also_applies_to_internet_revocations_but_not_mail_ones():
    m = meeting()
    cutoff = 24 * 29
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=cutoff)) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=cutoff, channel="phone")) is None
    assert v.validate_vote_revoked(m, revoke("R-1", executed=cutoff + 1, channel="internet")) == v.CUTOFF_PASSED
    assert v.validate_vote_revoked(m, revoke("R-1", executed=cutoff + 1, channel="mail")) is None


def test_r12_after_a_per_item_closure_a_later_submission_is_refused_only_if_it_marks_closed_items_alone():
    judge = judged_meeting()
    assert judge.judge(PollsClosed(event_id="c2", meeting_id="m1", closed_at=at(10), items=["2"])) is None
    assert judge.judge(cast("B-1", {"3": "for"}, executed=11, channel="broker")) is None
    assert judge.judge(cast("B-1", {"2": "for"}, executed=11, channel="broker")) == v.POLL_CLOSED
    assert judge.judge(cast("B-1", {"2": "for"}, executed=9, received=10, channel="broker")) is None


def test_r12_a_ballot_received_after_the_polls_closed_never_counts_whatever_the_log_order():
    closure = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(MEETING_DAY + 1))
    late = cast("R-1", {"2": "against"}, executed=MEETING_DAY + 1.01, channel="in_person")  # 36 s after closing
    results = []
    for order in ([closure, late], [late, closure]):
        judge = Judge()
        events = [small_meeting(), register_event(), *order]
        accepted = [e for e in events if judge.judge(e) is None]
        tally = replay(accepted).tallies["m1"]
        results.append((tally.present, dict(tally.buckets)))
    assert results[0] == (0, {})  # closure first: poll_closed, nothing counts
    assert results[1] == results[0], f"logged before the closure, the late ballot counts: {results[1][0]} present"


# --- R14 quorum ----------------------------------------------------------------------------------------


def test_r14_abstain_only_partial_and_discretionary_only_positions_are_present():
    tally = fold(
        [
            cast("R-1", {"1.1": "abstain", "1.2": "abstain", "2": "abstain", "3": "abstain", "5": "abstain"}),
            cast("R-2", {"2": "for"}, shares=400, channel="phone"),
            cast("B-2", {"2": "for"}, channel="broker", discretionary=True),
        ]
    )
    # 3000 (abstain only) + 400 (partial of 1000) + 4000 (discretionary only) = 7400.
    assert report(tally)["quorum"] == {"required": 3334, "present": 7400, "met": True}


def test_r14_a_ballot_with_no_marks_is_present_but_a_fully_revoked_position_is_not():
    tally = fold(
        [
            cast("R-1", {}, executed=MEETING_DAY, channel="in_person"),
            cast("R-2", {"2": "for"}, executed=1, channel="phone"),
            revoke("R-2", executed=2),
        ]
    )
    assert report(tally)["quorum"] == {"required": 3334, "present": 3000, "met": False}


# --- R15 standards ----------------------------------------------------------------------------------


def test_r15_without_quorum_every_item_is_no_quorum_but_the_columns_are_still_reported():
    tally = fold([cast("R-1", {"2": "against"}, shares=3333)])  # 3333 * 3 = 9999 < 10000
    result = report(tally)
    assert result["quorum"] == {"required": 3334, "present": 3333, "met": False}
    assert {item["outcome"] for item in result["items"].values()} == {"no_quorum"}
    assert result["items"]["2"]["against"] == 3333 and result["items"]["1.1"]["for"] == 3333


def test_r15_abstentions_and_broker_non_votes_do_not_count_as_votes_cast():
    tally = fold(
        [
            cast("R-1", {"3": {"for": 1000, "against": 999, "abstain": 1001}}),
            cast("B-2", {"2": "for"}, channel="broker", discretionary=True),  # 4000 broker non-votes on 3
        ]
    )
    item = report(tally)["items"]["3"]
    assert (item["for"], item["against"], item["abstain"], item["broker_non_votes"]) == (1000, 999, 1001, 4000)
    assert item["outcome"] == "passed"  # 1000 For > 999 Against; 5001 others have no effect


# --- R16 broker non-votes ---------------------------------------------------------------------------


def test_r16_a_beneficial_split_remainder_is_a_broker_non_vote_but_an_unmarked_routine_item_is_not():
    tally = fold([cast("B-2", {"3": {"for": 2500, "against": 500}}, shares=3500, channel="broker")])
    assert tally.present == 3500
    # Non-routine 3: 3500 represented - 3000 voted = 500 broker non-votes; unmarked 1.1: all 3500.
    assert columns(tally, "3") == {"for": 2500, "against": 500, "broker_non_votes": 500}
    assert columns(tally, "1.1") == {"broker_non_votes": 3500}
    # Routine 2, unmarked and no discretionary vote: present, not voted, no broker non-votes.
    assert columns(tally, "2") == {"not_voted": 3500}


# --- R17 over-votes -------------------------------------------------------------------------------


def two_nominee_meeting(policy: str = "prorate") -> Meeting:
    """Broker X books 6000 with entitlement 5000; Bank Y books 1000 with entitlement 1000."""
    m = Meeting.scheduled(small_meeting(overvote_policy=policy, outstanding=11_000))
    m.record_positions(
        PositionsRecorded(
            event_id="r",
            meeting_id="m1",
            chunk=0,
            chunks=1,
            positions=[
                *POSITIONS,
                Position(control_number="Y-1", kind="beneficial", shares=1000, holders=["Gil"], nominee="Bank Y"),
            ],
            entitlements=[Entitlement(nominee="Broker X", shares=5000), Entitlement(nominee="Bank Y", shares=1000)],
        )
    )
    return m


def test_r17_prorate_touches_only_the_nominee_over_its_entitlement_never_registered_votes():
    m = two_nominee_meeting()
    tally = fold(
        [
            cast("R-1", {"2": "against"}),
            cast("B-1", {"2": "for"}, channel="broker"),
            cast("B-2", {"2": "against"}, channel="broker"),
            cast("Y-1", {"2": "for"}, channel="broker"),
        ],
        m,
    )
    totals, overvotes = counted_totals(m.spec, m.entitlements, tally.buckets)
    # Broker X: for 2000, against 4000 = 6000 > 5000 -> for 2000*5/6 = 1666.67, against 3333.33:
    # floors 1666 + 3333 = 4999, the last share to the larger remainder (for: 4000 vs 2000) -> 1667 / 3333.
    assert [(o.nominee, o.counted) for o in overvotes] == [("Broker X", {"for": 1667, "against": 3333})]
    # + R-1 against 3000 (registered, never prorated) + Bank Y for 1000 (within its entitlement).
    assert totals["2"] == {"for": 1667 + 1000, "against": 3333 + 3000}


def test_r17_reject_never_counts_more_than_the_entitlement_even_when_a_revocation_revives_a_discretionary_vote():
    m = two_nominee_meeting("reject")
    events = [
        cast("B-1", {"2": "for"}, executed=1, channel="broker"),  # Broker X: 2000
        cast("B-2", {"2": {"for": 100}}, executed=1, channel="broker"),  # 2100 <= 5000
        cast("B-2", {"2": "against"}, executed=5, channel="broker", discretionary=True),  # not effective yet
        revoke("B-2", executed=3),  # voids the owner's t=1 instruction: the t=5 discretionary 4000 counts
    ]
    tally = fold(events, m)
    refused = {}
    for number, state in tally.voters.items():
        for event_id, item_id in state.overvote_rejected:
            refused.setdefault((m.positions[number].nominee, item_id), []).append(event_id)
    totals, overvotes = counted_totals(m.spec, m.entitlements, tally.buckets, refused)
    broker_x = sum(
        n
        for (item, option, nominee), n in tally.buckets.items()
        if item == "2" and nominee == "Broker X" and option != "broker_non_vote"
    )
    assert broker_x <= 5000, f"Broker X counted {broker_x} on item 2 (entitlement 5000), report {overvotes}"


# --- R18 idempotency -----------------------------------------------------------------------------


@dataclass
class Rec:
    """The parts of a Kafka record that services.runtime.ingest reads."""

    topic: str
    offset: int
    value: bytes
    key: bytes | None = None
    partition: int = 0


ADMIN, VOTES = "meetings.admin", "votes.submissions"


def records_for(events, topic_of=None) -> list[tuple[Rec, object]]:
    topic_of = topic_of or (lambda e: ADMIN if e.event_id.startswith(("meeting", "reg")) else VOTES)
    return [(Rec(topic_of(e), i, encode(e)), e) for i, e in enumerate(events)]


def test_r18_an_exact_duplicate_is_appended_once_and_folds_once_however_often_it_is_delivered():
    vote = cast("R-1", {"2": "against"}, executed=3, event_id="dup-1")
    judge = Judge()
    first = ingest.decide(judge, records_for([small_meeting(), register_event(), vote, vote]), set(), ADMIN)
    assert [r.event_id for r in first.rows] == ["meeting-1", "reg-m1", "dup-1"] and first.duplicates == 1
    # Redelivered after a crash: the ids already in the log are skipped.
    again = ingest.decide(judge, records_for([vote]), {("m1", "dup-1")}, ADMIN)
    assert again.rows == [] and again.duplicates == 1
    tally = replay([small_meeting(), register_event(), vote, vote, vote]).tallies["m1"]
    assert tally.present == 3000 and columns(tally, "2") == {"against": 3000}


def test_r18_the_same_content_under_a_new_event_id_is_a_new_instruction():
    first = cast("R-1", {"2": "against"}, executed=3, event_id="vote-a")
    same = cast("R-1", {"2": "against"}, executed=3, event_id="vote-b")
    decided = ingest.decide(Judge(), records_for([small_meeting(), register_event(), first, same]), set(), ADMIN)
    assert [(r.event_id, r.decision) for r in decided.rows[2:]] == [("vote-a", "accepted"), ("vote-b", "accepted")]
    tally = fold([first, same])
    assert tally.voters["R-1"].owner.event_id == "vote-b"  # R5 tie on both dates: the greater event_id
    assert columns(tally, "2") == {"against": 3000}


# --- R19 nothing is lost -------------------------------------------------------------------------


def test_r19_every_submission_of_a_batch_gets_exactly_one_row_with_its_decision_and_reason():
    events = [
        small_meeting(),
        register_event(),
        cast("R-1", {"2": "for"}),  # accepted
        cast("X-9", {"2": "for"}),  # R1
        cast("R-1", {"2": "for"}, shares=3001),  # R2
        cast("R-1", {"2": {"for": 3000, "against": 1}}),  # R3
        cast("R-1", {"2": "1y"}),  # R4
        cast("B-1", {"2": "for"}, channel="in_person"),  # R8
        cast("B-1", {"3": "for"}, channel="broker", discretionary=True),  # R10
        cast("R-2", {"2": "for"}, channel="mail", signatures=["Dana"]),  # R11
        cast("R-1", {"2": "for"}, executed=24 * 29 + 1),  # R12
        revoke("R-2", executed=4),  # accepted
    ]
    decided = ingest.decide(Judge(), records_for(events), set(), ADMIN)
    assert [r.event_id for r in decided.rows] == [e.event_id for e in events]
    assert [r.reason for r in decided.rows[2:]] == [
        None,
        v.NOT_ENTITLED,
        v.EXCEEDS_POSITION,
        v.OVER_VOTE,
        v.INVALID_CHOICE,
        v.NO_LEGAL_PROXY,
        v.DISCRETIONARY_NOT_ALLOWED,
        v.MISSING_JOINT_SIGNATURE,
        v.CUTOFF_PASSED,
        None,
    ]
    for row, event in zip(decided.rows, events, strict=False):
        assert row.decision == ("accepted" if row.reason is None else "rejected")
        assert row.reason is None or row.reason in v.REASONS
        assert row.payload == encode(event).decode()  # kept exactly as received


def test_wrong_topic_an_admin_event_on_the_vote_topic_or_a_vote_on_the_admin_topic_is_refused():
    meeting_event, forged_register, misrouted_vote = small_meeting(), register_event(), cast("R-1", {"2": "for"})
    topics = {id(meeting_event): ADMIN, id(forged_register): VOTES, id(misrouted_vote): ADMIN}
    decided = ingest.decide(
        Judge(),
        records_for([meeting_event, forged_register, misrouted_vote], topic_of=lambda e: topics[id(e)]),
        set(),
        ADMIN,
    )
    assert {r.type: r.reason for r in decided.rows} == {
        "meeting.scheduled": None,
        "positions.recorded": v.WRONG_TOPIC,
        "vote.cast": v.WRONG_TOPIC,
    }

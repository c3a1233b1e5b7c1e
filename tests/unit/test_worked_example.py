"""The hand-computed worked example (tests/data/worked_example.json), folded in-process under both policies.

The ledger's path without I/O: decode each wire event, judge it in log order (projections.judge), fold
the accepted ones (projections.replay), then R17 (counted_totals) and R14/R15 (tally_report). The
expected numbers were computed by hand and are explained line by line in the JSON's `why` fields.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from events import VoteCast, VoteRevoked
from projections.fold import Tally
from projections.judge import Judge
from projections.outcomes import tally_report
from projections.overvotes import counted_totals
from projections.replay import replay
from tests import worked_example as we

MEETING_OPTIONS = {
    "1.1": ["for", "against", "abstain"],
    "1.2": ["for", "against", "abstain"],
    "2": ["for", "against", "abstain"],
    "3": ["for", "against", "abstain"],
    "5": ["1y", "2y", "3y", "abstain"],
}


def judged(policy: str):
    """(event, reason) in log order, as the ledger decides them."""
    judge = Judge()
    return [(event, judge.judge(event)) for event in we.events(policy)]


def accepted(policy: str):
    return [event for event, reason in judged(policy) if reason is None]


def report_of(projection_tally: Tally, refused: dict[tuple[str, str], list[str]]):
    """The tally JSON and the over-vote report of a folded meeting."""
    meeting = projection_tally.meeting
    totals, overvotes = counted_totals(meeting.spec, meeting.entitlements, projection_tally.buckets, refused)
    report = tally_report(meeting.spec, projection_tally.present, totals, as_of_position=0)
    del report["as_of_position"]
    return report, [dataclasses.asdict(o) for o in overvotes]


def fold_example(policy: str):
    projection = replay(accepted(policy))
    tally = projection.tallies[we.meeting_id(policy)]
    refused = we.refused_by_fold(tally)
    return tally, refused, *report_of(tally, refused)


def test_the_hand_computed_numbers_add_up_item_by_item_to_the_shares_present():
    """Guard on the JSON itself: options + broker non-votes + not voted = present (R14, R16)."""
    for policy in we.POLICIES:
        block = we.expected(policy)
        present = block["quorum"]["present"]
        for item_id, columns in block["items"].items():
            numbers = [v for k, v in columns.items() if k not in ("outcome", "margin")]
            assert sum(numbers) == present, (policy, item_id)
            assert list(columns)[: len(MEETING_OPTIONS[item_id])] == MEETING_OPTIONS[item_id]
        outstanding, q = block["outstanding"], block["quorum"]
        assert q["required"] == -(-outstanding // 3)
        assert q["met"] is (present * 3 >= outstanding)


def test_the_ledger_decides_every_event_of_the_example_as_written():
    """R11 missing_joint_signature (S06), R12 cutoff_passed (S13) and poll_closed (S17); the rest accepted."""
    for policy in we.POLICIES:
        entries = we.entries(policy)
        got = [(entry["label"], reason) for entry, (_, reason) in zip(entries, judged(policy), strict=True)]
        assert got == [(entry["label"], entry["expect"].get("reason")) for entry in entries]
        for entry in entries:
            assert entry["expect"]["decision"] == ("accepted" if "reason" not in entry["expect"] else "rejected")


@pytest.mark.parametrize("policy", we.POLICIES)
def test_the_folded_tally_equals_the_hand_computed_one(policy):
    """(a) R5 mail card dated earlier, (b) R7 revoke then re-vote, (c) R6 ballot over a later card,
    (d) R10/R16 discretionary item 2, (e) R17 Broker North over its entitlement, prorated or rejected."""
    _, _, report, _ = fold_example(policy)
    assert report == we.expected_tally(policy)


@pytest.mark.parametrize("policy", we.POLICIES)
def test_the_over_vote_report_shows_what_the_nominee_voted_and_what_counts(policy):
    """R17: both policies are reported; under `reject` the fold refused S09 (its log decision stays accepted)."""
    _, refused, _, overvotes = fold_example(policy)
    assert overvotes == we.expected(policy)["overvotes"]
    assert sorted(e for ids in refused.values() for e in ids) == we.expected(policy)["refused_by_fold"]


@pytest.mark.parametrize("policy", we.POLICIES)
def test_folding_event_by_event_equals_the_batched_replay(policy):
    """The projector folds batches (Tally.apply_many); one by one (Tally.apply) must agree."""
    batched, refused, report, overvotes = fold_example(policy)
    projection = replay([e for e in accepted(policy) if not isinstance(e, (VoteCast, VoteRevoked))])
    single = projection.tallies[we.meeting_id(policy)]
    for event in accepted(policy):
        if isinstance(event, (VoteCast, VoteRevoked)):
            single.apply(event)
    assert (single.present, dict(single.buckets)) == (batched.present, dict(batched.buckets))
    assert report_of(single, we.refused_by_fold(single)) == (report, overvotes)


def test_under_prorate_the_order_of_the_accepted_votes_does_not_matter():
    """R5: the prorated tally is a function of the set of accepted events (any permutation)."""
    events = accepted("prorate")
    admin = [e for e in events if not isinstance(e, (VoteCast, VoteRevoked))]
    votes = [e for e in events if isinstance(e, (VoteCast, VoteRevoked))]
    rnd = random.Random(2024)
    for _ in range(20):
        shuffled = list(votes)
        rnd.shuffle(shuffled)
        tally = replay(admin + shuffled).tallies[we.meeting_id()]
        assert report_of(tally, {})[0] == we.expected_tally("prorate")


def test_under_reject_the_instruction_refused_is_the_one_that_crosses_the_entitlement_in_log_order():
    """R17 `reject` (log order): had the discretionary S08 come after S09, S08 would be the one refused."""
    events = accepted("reject")
    labels = [e["label"] for e in we.entries("reject") if e["expect"]["decision"] == "accepted"]
    order = dict(zip(labels, events, strict=False))
    swapped = [order[label] for label in labels if label != "S08"]
    swapped.insert(swapped.index(order["S09"]) + 1, order["S08"])
    tally = replay(swapped).tallies[we.meeting_id("reject")]
    assert we.refused_by_fold(tally) == {("Broker North", "2"): ["we-S08"]}
    # B-3 (1,500, discretionary only) is then absent instead of B-2 (1,500): same presence.
    assert tally.present == we.expected("reject")["quorum"]["present"]

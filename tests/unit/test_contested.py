"""The contested meeting: a second spec, universal proxy cards in the traffic, and how the fold counts them."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from events import VoteCast, VoteRevoked
from projections import validation as v
from projections.fold import BROKER_NON_VOTE, Tally
from projections.judge import Judge
from projections.outcomes import outcomes, quorum
from services.devtools.demo.channels import Signer, key_events
from services.devtools.demo.choices import PAPER
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import load_spec
from services.devtools.demo.traffic import generate
from tests import reference_count

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
SPEC = MEETINGS / "contested-2024-agm.toml"
GROUP = ["1.1", "1.2", "1.3", "1.4", "1.5"]
BOARD, DISSIDENT = ["1.1", "1.2", "1.3"], ["1.4", "1.5"]
SEATS = 3
PROXY_CHANNELS = {"internet", "phone", "mail"}
# sha256 of the event ids, one per line, of cbak-2023-agm's first 500 submissions with seed 7,
# computed before universal proxy cards were added to the generator.
CBAK_SEED_7_COUNT_500 = "b034545a799640e5346354c5d47b6054e3fc93212f30cbb0073d95992cc9cc11"


@pytest.fixture(scope="module")
def world():
    """The contested meeting: spec, simulation, register, entitlements, a judge that knows it (and its
    simulated channels' keys) and the signer of its traffic."""
    spec, register_spec, sim = load_spec(SPEC)
    positions, entitlements = build_register(spec, register_spec)
    judge = Judge()
    assert judge.judge(spec) is None
    for admin in [*register_events(spec, positions, entitlements), *key_events(spec, register_spec, sim)]:
        assert judge.judge(admin) is None
    by_number = {p.control_number: p for p in positions}
    return spec, sim, by_number, entitlements, judge.meetings[spec.meeting_id], judge, Signer(spec, register_spec, sim)


@pytest.fixture(scope="module")
def decided(world):
    """The natural campaign, signed by its channels, each event with the judge's decision (None: accepted)."""
    spec, sim, positions, _, _, judge, signer = world
    signed = signer.received(generate(spec, list(positions.values()), sim))
    return [(event, judge.judge(event, received)) for event, received in signed]


@pytest.fixture(scope="module")
def accepted(decided):
    """The accepted vote.cast and vote.revoked events."""
    return [e for e, reason in decided if reason is None and isinstance(e, (VoteCast, VoteRevoked))]


def fors(card: VoteCast) -> int:
    """How many nominees of the contested group the card marks For."""
    return sum(1 for item_id in GROUP if card.choices.get(item_id) == "for")


def cards(accepted, **where):
    """Accepted owner instructions and ballots (not discretionary) whose fields equal ``where``."""
    return [
        e
        for e in accepted
        if isinstance(e, VoteCast) and not e.discretionary and all(getattr(e, k) == x for k, x in where.items())
    ]


def alone(meeting, card: VoteCast) -> dict[str, dict[str, int]]:
    """Per-item totals of a tally holding this one card."""
    tally = Tally(meeting)
    tally.apply(card)
    return tally.item_totals()


def test_the_contested_spec_loads_as_a_delaware_meeting_with_one_universal_proxy_group(world):
    spec = world[0]
    assert spec.meeting_id == "contested-2024-agm" and spec.company == "Northwind Industrial Holdings, Inc."
    assert (spec.quorum.numerator, spec.quorum.denominator) == (1, 2) and spec.timezone == "America/Chicago"
    group = [i for i in spec.items if i.universal_proxy]
    assert [i.id for i in group] == GROUP
    assert {(i.group, i.seats, i.standard) for i in group} == {("1", SEATS, "plurality")}
    assert [i.recommendation for i in group] == ["for"] * 3 + ["against"] * 2
    routine = {i.id: i.routine for i in spec.items if not i.universal_proxy}
    assert routine == {"2": True, "3": False, "4": False}


def test_the_contested_register_sums_to_its_outstanding_shares(world):
    spec, _, positions, _, meeting, *_ = world
    assert sum(p.shares for p in positions.values()) == spec.outstanding == meeting.registered_shares
    assert meeting.register_complete


def test_the_cbak_traffic_keeps_its_event_ids_for_seed_7_and_500_events():
    spec, register_spec, sim = load_spec(MEETINGS / "cbak-2023-agm.toml")
    positions, _ = build_register(spec, register_spec)
    ids = "\n".join(e.event_id for e in generate(spec, positions, sim, count=500, seed=7))
    assert hashlib.sha256(ids.encode()).hexdigest() == CBAK_SEED_7_COUNT_500


def test_the_contested_traffic_is_deterministic_and_almost_all_accepted(world, decided):
    spec, sim, positions = world[:3]
    signer = world[6]
    events = [e for e, _ in decided]
    generated = list(generate(spec, list(positions.values()), sim))
    # The same traffic, each event signed by its channel under an id in the channel's namespace (S6).
    assert [e.event_id for e in events] == [f"{signer.key_of(g).channel_id}:{g.event_id}" for g in generated]
    pairs = zip(events, generated, strict=True)
    unsigned = [msgspec.structs.replace(e, event_id=g.event_id, auth=None) for e, g in pairs]
    assert unsigned == generated
    reasons = Counter(reason for _, reason in decided)
    assert len(decided) > 5_000 and reasons[None] > 0.99 * len(decided)
    assert set(reasons) <= {
        None,
        v.NOT_ENTITLED,
        v.INVALID_CHOICE,
        v.UNSIGNED,
        v.MISSING_JOINT_SIGNATURE,
        v.CUTOFF_PASSED,
        v.NO_LEGAL_PROXY,
    }
    # NYSE Rule 452: no broker votes uninstructed shares in a contest, not even on the auditor.
    assert not [e for e in events if isinstance(e, VoteCast) and e.discretionary]


def test_most_cards_mark_for_on_exactly_three_nominees_mixing_the_two_sides(accepted):
    marked = [c for c in cards(accepted) if any(i in c.choices for i in GROUP)]
    counts = Counter(min(fors(c), SEATS + 1) for c in marked)
    assert counts[SEATS] > 0.8 * len(marked)
    assert 0 < counts[1] + counts[2] < 0.15 * len(marked)  # under-marked
    assert 0 < counts[SEATS + 1] < 0.02 * len(marked)  # over-marked
    slates = Counter(frozenset(i for i in GROUP if c.choices.get(i) == "for") for c in marked if fors(c) == SEATS)
    assert slates.most_common(1)[0][0] == frozenset(BOARD)
    assert slates[frozenset(["1.1", "1.4", "1.5"])] > 0  # the dissident's slate
    assert sum(n for slate, n in slates.items() if slate & set(BOARD) and slate & set(DISSIDENT)) > 0.2 * len(marked)
    marks = Counter(c.choices[i] for c in marked for i in GROUP if i in c.choices)
    assert marks["against"] > 0 and marks["abstain"] > 0


def test_only_paper_cards_and_ballots_mark_more_nominees_than_seats(accepted):
    over = [c for c in cards(accepted) if fors(c) > SEATS]
    assert over and {c.channel for c in over} <= PAPER


def test_folding_the_contested_traffic_elects_exactly_three_nominees_or_reports_a_tie(world, accepted):
    spec, meeting = world[0], world[4]
    tally = Tally(meeting)
    for event in accepted:
        tally.apply(event)
    q = quorum(spec, tally.present)
    assert q["met"] and q["present"] * 2 > spec.outstanding
    result = outcomes(spec, tally.item_totals(), q["met"])
    elected = [i for i in GROUP if result[i] == "elected"]
    assert len(elected) == SEATS or "tie" in {result[i] for i in GROUP}
    assert result["2"] == "passed" and result["4"] == "failed"


def test_the_fold_of_the_contested_traffic_equals_the_independent_count(world, accepted):
    spec, _, positions, entitlements, meeting, *_ = world
    tally = Tally(meeting)
    for event in accepted:
        tally.apply(event)
    expected = reference_count.count(spec, positions, accepted, {e.nominee: e.shares for e in entitlements})
    assert tally.present == expected["present"]
    for item_id, got in tally.item_totals().items():
        got = {("broker_non_votes" if k == BROKER_NON_VOTE else k): n for k, n in got.items() if n}
        assert got == expected["items"][item_id], item_id


def test_an_over_marked_card_counts_nothing_on_the_directors_but_counts_on_the_other_items(world, accepted):
    positions, meeting = world[2], world[4]
    over = [c for c in cards(accepted, channel="mail") if fors(c) > SEATS][:3]
    assert len(over) == 3
    for card in over:
        shares = card.shares or positions[card.control_number].shares
        totals = alone(meeting, card)
        assert all(totals[i] == {} for i in GROUP), card.choices
        # A registered holder's signed card votes its unmarked items as the board recommends (R9).
        assert totals["2"] == {card.choices.get("2", "for"): shares}
        assert totals["3"] == {card.choices.get("3", "for"): shares}


def test_an_under_marked_registered_card_votes_only_the_nominees_it_marks(world, accepted):
    positions, meeting = world[2], world[4]
    under = [c for c in cards(accepted) if c.channel in PROXY_CHANNELS and 0 < fors(c) < SEATS][:5]
    assert len(under) == 5
    for card in under:
        shares = card.shares or positions[card.control_number].shares
        totals = alone(meeting, card)
        for item_id in GROUP:
            # No filling from the board's recommendation: an unmarked nominee gets nothing.
            assert totals[item_id] == ({card.choices[item_id]: shares} if item_id in card.choices else {})


def test_an_under_marked_broker_form_leaves_the_unmarked_nominees_as_broker_non_votes(world, accepted):
    positions, meeting = world[2], world[4]
    under = [c for c in cards(accepted, channel="broker") if 0 < fors(c) < SEATS and c.shares is None]
    card = next(c for c in under if any(i not in c.choices for i in GROUP))
    shares = positions[card.control_number].shares
    totals = alone(meeting, card)
    for item_id in GROUP:
        choice = card.choices.get(item_id)
        if isinstance(choice, str):
            assert totals[item_id] == {choice: shares}
        else:
            assert totals[item_id] == {BROKER_NON_VOTE: shares}


def test_a_registered_card_leaving_the_directors_blank_votes_the_board_way(world, accepted):
    positions, meeting = world[2], world[4]
    blank = [c for c in cards(accepted) if c.channel in PROXY_CHANNELS and not any(i in c.choices for i in GROUP)]
    assert blank
    card = blank[0]
    shares = card.shares or positions[card.control_number].shares
    totals = alone(meeting, card)
    assert [totals[i] for i in GROUP] == [{"for": shares}] * 3 + [{"against": shares}] * 2

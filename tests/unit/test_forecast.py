"""The campaign forecast against simulated campaigns' actual ends, projected at 50 % of the campaign (no I/O).

The figures these tests print are the ones docs/campaign.md and the README quote (`pytest -s`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from events import VoteCast
from projections.forecast import first_instructions, forecast, horizon
from projections.forecast_curve import fit_turnout, later_probability, project_voters
from projections.judge import Judge
from projections.outcomes import margin
from projections.replay import counted, replay
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import load_spec
from services.devtools.demo.traffic import generate

SPEC = Path(__file__).resolve().parents[2] / "deploy" / "meetings" / "cbak-2023-agm.toml"
ERROR_BOUND_PP = 5.0  # documented in docs/campaign.md: |projected - actual turnout| at 50 %, in points of outstanding


@pytest.fixture(scope="module")
def world():
    """The reference meeting (signatures off: the forecast is about times, not keys) and its register."""
    spec, register_spec, sim = load_spec(SPEC)
    spec = msgspec.structs.replace(spec, signatures_required=False)
    positions, entitlements = build_register(spec, register_spec)
    return spec, sim, positions, [spec, *register_events(spec, positions, entitlements)]


def campaign(world, seed: int, fraction: float = 0.5):
    """(the forecast at ``fraction`` of the campaign, the final tally, the spec) of one simulated campaign."""
    spec, sim, positions, admin = world
    judge = Judge()
    for event in admin:
        assert judge.judge(event) is None
    accepted = [e for e in generate(spec, positions, sim, seed=seed) if judge.judge(e) is None]
    final = replay(admin + accepted).tallies[spec.meeting_id]
    start = min(e.received_at for e in accepted)
    now = horizon(start, spec.meeting_at, fraction)
    so_far = [e for e in accepted if e.received_at <= now]
    tally = replay(admin + so_far).tallies[spec.meeting_id]
    projection = forecast(tally, first_instructions([e for e in so_far if isinstance(e, VoteCast)]), now)
    return projection, final, spec


def turnout_error(projection, final, spec) -> float:
    """Projected minus actual shares present at the close, in percentage points of the outstanding shares."""
    return 100 * (projection["turnout"]["projected"] - final.present) / spec.outstanding


def test_the_projection_at_half_the_campaign_holds_the_final_turnout_quorum_and_outcomes(world):
    projection, final, spec = campaign(world, seed=7)  # the simulation file's seed: the demo's campaign
    turnout = projection["turnout"]
    error = turnout_error(projection, final, spec)
    print(
        f"\nseed 7 at 50 %: present now {turnout['present']:,}, projected {turnout['projected']:,}"
        f" [{turnout['low']:,}, {turnout['high']:,}], actual {final.present:,}: error {error:+.2f} points"
    )
    assert projection["status"] == "projected" and projection["elapsed_fraction"] == pytest.approx(0.5, abs=1e-3)
    assert turnout["present"] < final.present  # half the campaign is still to come
    assert turnout["low"] <= final.present <= turnout["high"]
    assert abs(error) <= ERROR_BOUND_PP
    assert projection["quorum"]["projected_met"] and projection["quorum"]["met_probability"] >= 0.95
    totals, _ = counted(final)
    actual = {item.id: margin(spec, totals, item.id) for item in spec.items}
    for item_id, item in projection["items"].items():
        assert item["outcome"] in ("elected", "passed", "3y")  # what the full campaign decides
        assert item["outcome_probability"] >= 0.9
        assert item["margin_low"] <= item["margin_high"]
        low, high = item["margin_low"], item["margin_high"]
        print(f"  item {item_id}: margin {item['margin']:,} [{low:,}, {high:,}], actual {actual[item_id]:,}")


def test_five_other_campaigns_end_within_the_interval_and_the_documented_bound(world):
    errors = []
    for seed in range(1, 6):
        projection, final, spec = campaign(world, seed)
        errors.append(turnout_error(projection, final, spec))
        assert projection["turnout"]["low"] <= final.present <= projection["turnout"]["high"], seed
    print("\nturnout errors at 50 %, seeds 1-5 (points):", ", ".join(f"{e:+.2f}" for e in errors))
    print(f"mean absolute error {sum(abs(e) for e in errors) / len(errors):.2f} points")
    assert max(abs(e) for e in errors) <= ERROR_BOUND_PP


def test_a_closed_campaign_is_its_own_forecast(world):
    spec, sim, positions, admin = world
    tally = replay(admin).tallies[spec.meeting_id]
    result = forecast(tally, {}, spec.meeting_at + timedelta(hours=1))
    assert result["status"] == "final" and result["turnout"]["present"] == 0


def test_too_few_days_of_voting_give_no_projection(world):
    spec, sim, positions, admin = world
    tally = replay(admin).tallies[spec.meeting_id]
    now = spec.meeting_at - timedelta(days=30)
    result = forecast(tally, {"C": now - timedelta(days=1)}, now)
    assert result["status"] == "insufficient_data"


def test_a_steadily_rising_daily_rate_is_projected_exactly():
    counts = [10 + 2 * k for k in range(10)]  # 10, 12, ..., 28 a day
    projected = project_voters(counts, 5)
    assert projected.now == sum(counts)
    assert projected.point == pytest.approx(sum(counts) + sum(10 + 2 * k for k in range(10, 15)))
    assert projected.low == pytest.approx(sum(counts) + 5 * sum(counts[-5:]) / 5)  # the run-rate: no acceleration
    assert projected.high == pytest.approx(projected.point)  # a perfect line has no error


def test_a_falling_rate_stops_at_zero_instead_of_taking_votes_back():
    counts = [30, 25, 20, 15, 10, 5]  # the recent line reaches zero half a bin from now: 0.625 more
    assert project_voters(counts, 10).point == pytest.approx(sum(counts) + 0.625)
    assert project_voters(counts, 100).point == project_voters(counts, 10).point


def test_the_turnout_fit_recovers_a_known_size_effect():
    # p(shares) = sigmoid(-4 + 0.5 ln shares), of which F = 0.5 are in by now: expected counts, no noise.
    import math

    a, b, f = -4.0, 0.5, 0.5
    groups = []
    for x in [i / 4 for i in range(8, 64)]:
        p = 1 / (1 + math.exp(-(a + b * x)))
        groups.append((x, 100_000, round(100_000 * f * p)))
    fitted = fit_turnout(groups, f)
    assert fitted == pytest.approx((a, b), abs=0.01)
    assert later_probability(a, b, 1.0, 1000) == 0.0  # the campaign is over: nobody else instructs

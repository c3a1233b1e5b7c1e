"""projections.tally_sums: a fold's running sums against its voters' states summed afresh (the rebuild's check)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.fold import Tally
from projections.tally_sums import differences, sums_from_states
from tests.strategies import submissions
from tests.unit.test_rules import overvoting_meeting


@settings(max_examples=200, deadline=None)
@given(st.lists(submissions(), max_size=30), st.integers(1, 10), st.sampled_from(["prorate", "reject"]), st.booleans())
def test_a_folds_running_sums_equal_its_voters_states_summed_afresh(events, batch, policy, settle_each):
    tally = Tally(meeting=overvoting_meeting(policy, entitlement=4500))
    for start in range(0, len(events), batch):
        tally.apply_many(events[start : start + batch], settle=settle_each)
    present, present_count, buckets = sums_from_states(tally)
    assert (present, present_count, dict(buckets)) == (tally.present, tally.present_count, dict(tally.buckets))
    assert differences(tally) == []


def _folded() -> Tally:
    from tests.factories import cast

    tally = Tally(meeting=overvoting_meeting())
    tally.apply_many([cast("B-1", {"2": "for"}, channel="broker"), cast("B-2", {"2": "against"}, channel="broker")])
    assert tally.present > 0 and tally.buckets
    return tally


def test_a_running_quorum_off_by_one_share_is_named():
    tally = _folded()
    tally.present += 1
    (problem,) = differences(tally)
    assert problem.startswith(f"quorum {tally.present:,} shares") and f"sum to {tally.present - 1:,}" in problem


def test_a_running_bucket_its_voters_do_not_account_for_is_named_and_so_is_a_missing_one():
    tally = _folded()
    key = next(iter(tally.buckets))
    shares = tally.buckets.pop(key)
    tally.buckets[("2", "abstain", "")] = 7
    assert sorted(differences(tally)) == sorted(
        [
            f"bucket {'/'.join(key)}: 0, its voters' states sum to {shares:,}",
            "bucket 2/abstain/: 7, its voters' states sum to 0",
        ]
    )

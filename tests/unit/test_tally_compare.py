"""`audit verify` names where the projected tally and a fold from scratch differ."""

from projections.replay import replay
from projections.tally_compare import compare
from tests.factories import cast, register_event, small_meeting


def test_a_projected_tally_that_differs_from_the_fold_is_named_per_bucket_and_present():
    events = [small_meeting(), register_event(), cast("R-1", {"2": "for"}), cast("B-1", {"2": "against"})]
    recomputed, projected = replay(events).tallies["m1"], replay(events).tallies["m1"]
    assert compare(recomputed, projected) == []
    key = next(k for k in projected.buckets if k[0] == "2" and k[1] == "for")
    projected.buckets[key] += 7
    projected.present -= 1
    problems = compare(recomputed, projected)
    assert problems[0].startswith("present: projected ") and len(problems) == 2
    assert problems[1].startswith("item 2 for ") and problems[1].endswith(
        f"projected {recomputed.buckets[key] + 7:,}, recomputed {recomputed.buckets[key]:,}"
    )

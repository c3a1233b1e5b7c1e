"""A tally's running sums recomputed from its voters' final states, to check the incremental ones. Pure, no I/O.

The fold keeps quorum and buckets incrementally: each settle subtracts a control number's old
contribution and adds its new one, at batch bounds that differ between the projector (every batch)
and a replay (once at the end). Summing every voter's contribution afresh from the state it ended in
is another path to the same figures, through none of that bookkeeping: `projections rebuild` checks its
fold against it (services/runtime/rebuild.py).
"""

from __future__ import annotations

from collections import Counter

from projections import timing
from projections.fold import Tally
from projections.voter_state import key_of, part


def sums_from_states(tally: Tally) -> tuple[int, int, Counter[tuple[str, str, str]]]:
    """(present, present_count, buckets) summed over each voter's contribution in its final state."""
    tally.settle()
    meeting, positions = tally.meeting, tally.meeting.positions
    horizons = timing.item_horizons(meeting) if meeting.closed_item_at else {}
    present = present_count = 0
    buckets: Counter[tuple[str, str, str]] = Counter()
    for number, state in tally.voters.items():
        contribution = part(meeting, positions[number], key_of(state), horizons)
        if contribution is None:
            continue
        present += contribution.present
        present_count += 1
        buckets.update(contribution.buckets)
    return present, present_count, +buckets  # unary +: without the zero counts, as the fold keeps none


def differences(tally: Tally) -> list[str]:
    """Where the fold's running sums differ from the sums of its voters' states (empty: they agree)."""
    present, present_count, buckets = sums_from_states(tally)
    problems = []
    if (tally.present, tally.present_count) != (present, present_count):
        problems.append(
            f"quorum {tally.present:,} shares / {tally.present_count:,} present, its voters' states sum to"
            f" {present:,} / {present_count:,}"
        )
    for key in sorted(set(buckets) | set(tally.buckets)):
        if buckets.get(key, 0) != tally.buckets.get(key, 0):
            problems.append(
                f"bucket {'/'.join(key)}: {tally.buckets.get(key, 0):,}, its voters' states sum to"
                f" {buckets.get(key, 0):,}"
            )
    return problems

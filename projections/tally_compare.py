"""Where a tally folded from scratch and the projected one differ, as `audit verify` reports it. Pure, no I/O."""

from __future__ import annotations

from projections.fold import Tally


def compare(recomputed: Tally, projected: Tally) -> list[str]:
    """Differences between a from-scratch fold and the projection tables (present, buckets)."""
    problems = []
    if recomputed.present != projected.present:
        problems.append(f"present: projected {projected.present:,}, recomputed {recomputed.present:,}")
    for key in sorted(set(recomputed.buckets) | set(projected.buckets)):
        a, b = projected.buckets.get(key, 0), recomputed.buckets.get(key, 0)
        if a != b:
            item, option, nominee = key
            problems.append(f"item {item} {option} {nominee or 'registered'}: projected {a:,}, recomputed {b:,}")
    return problems

"""The dashboard's time series: bucket widths, and shares present at each bucket's end by one replay. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from events import AnyEvent, VoteCast, VoteRevoked
from projections.replay import Projection

# Bucket widths a chart reads easily, in seconds (1 s to 1 week).
NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_POINTS = 300  # the automatic width keeps a series at most this long (100-300 points over a long span)
MAX_BUCKETS = 10_000  # a width asked for may not cut the span into more buckets than this


def bucket_width(span_s: float) -> int:
    """The smallest nice width that cuts ``span_s`` seconds into at most MAX_POINTS buckets."""
    return next((w for w in NICE_WIDTHS if span_s / w <= MAX_POINTS), NICE_WIDTHS[-1])


def present_series(entries: Sequence[tuple[int, AnyEvent]], meeting_id: str, ends: Sequence[int]) -> list[int]:
    """Shares present once the log stood at each of ``ends`` (ascending positions): one pass over the entries.

    The fold is the projector's: accepted events applied in log order in runs, the control numbers a
    late-logged closure or cut-off change affects folded again from their votes so far (R12), so each
    value is what the projector had committed at that checkpoint (time_travel folds the same from scratch).
    """
    projection = Projection()
    votes: list[VoteCast | VoteRevoked] = []
    out: list[int] = []
    i = 0
    for end in ends:
        batch = []
        while i < len(entries) and entries[i][0] <= end:
            batch.append(entries[i][1])
            i += 1
        votes.extend(e for e in batch if isinstance(e, (VoteCast, VoteRevoked)) and e.meeting_id == meeting_id)
        projection.apply_many(batch)
        for mid, numbers in projection.take_refolds().items():
            every = mid in projection.recounts
            projection.refold(mid, numbers, [v for v in votes if every or v.control_number in numbers])
        projection.settle()
        tally = projection.tallies.get(meeting_id)
        out.append(tally.present if tally is not None else 0)
    return out

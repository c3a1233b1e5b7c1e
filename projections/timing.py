"""R12: when a submission is too late, on the channel's clock and on the broker's. Pure, no I/O.

Two halves: the polls' closures (all items, or listed items) and the channels' cut-offs. The judge
refuses a late submission at ingest; the fold asks the same predicates again (``fold_drops``), so that a
closure or an amendment logged after the submissions it concerns changes the tally exactly as if it had
come first (R5).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from events import CUTOFF_CHANNELS, VoteCast, VoteRevoked
from projections.meeting import Meeting

POLL_CLOSED = "poll_closed"  # R12
CUTOFF_PASSED = "cutoff_passed"  # R12


def submission_late(
    meeting: Meeting, channel: str, received_at: datetime, appended_at: datetime | None = None
) -> str | None:
    """R12 at ingest: the reason a submission is refused for its timing (closures first, then cut-offs), or None."""
    return closure_reason(meeting, received_at, appended_at) or cutoff_reason(
        meeting, channel, received_at, appended_at
    )


def closure_reason(meeting: Meeting, received_at: datetime, appended_at: datetime | None = None) -> str | None:
    """R12: received (or appended, plus grace) after the polls closed on all items, or on any item."""
    if meeting.closed_all_at is not None and received_at > meeting.closed_all_at:
        return POLL_CLOSED
    if broker_late(meeting, appended_at, meeting.closed_all_at):
        return POLL_CLOSED  # R12: the broker appended it after the close (plus grace), whatever received_at says
    if meeting.closed_item_at:  # rare: only after a per-item polls.closed
        # Any later instruction or revocation would change what counts on a closed item too (a
        # new instruction replaces the whole earlier one; R9 fills unmarked items), so refuse it.
        if any(
            received_at > closed_at or broker_late(meeting, appended_at, closed_at)
            for closed_at in meeting.closed_item_at.values()
        ):
            return POLL_CLOSED
    return None


def cutoff_reason(
    meeting: Meeting, channel: str, received_at: datetime, appended_at: datetime | None = None
) -> str | None:
    """R12: a submission received (or appended, less grace) after the cut-off in force for its channel then.

    The cut-off in force at t is the latest ``meeting.cutoff_changed`` of the channel effective at or
    before t, else the meeting's own (Meeting.cutoff_in_force): a reopening accepts from its
    effective_at on, and an earlier cut-off does not undo what was received before it took effect.
    In-person ballots have none: they count until the polls close.
    """
    if channel not in CUTOFF_CHANNELS:
        return None
    cutoff = meeting.cutoff_in_force(channel, received_at)
    if cutoff is not None and received_at > cutoff:
        return CUTOFF_PASSED
    grace = meeting.spec.broker_grace_s
    if grace is not None and appended_at is not None:
        # R12 on the broker's clock: a back-dated received_at does not pass a late record. With
        # t_b = appended_at - grace, late iff t_b is after the cut-off in force at t_b.
        broker_at = appended_at - timedelta(seconds=grace)
        limit = meeting.cutoff_in_force(channel, broker_at)
        if limit is not None and broker_at > limit:
            return CUTOFF_PASSED
    return None


def fold_drops(meeting: Meeting, event: VoteCast | VoteRevoked) -> bool:
    """R12 in the fold: an accepted submission that a closure or an amended cut-off (whatever the log order) makes
    late counts for nothing."""
    # Called for every folded submission: the common case (no closure, no amended cut-off) must cost two tests.
    if meeting.cutoff_changes and cutoff_reason(meeting, event.channel, event.received_at) is not None:
        return True  # R12 as amended: the judge saw only the cut-off changes logged before it (channel clock)
    if meeting.closed_all_at is None and not meeting.closed_item_at:
        return False
    closed = meeting.first_closure
    return closed is not None and event.received_at > closed


def broker_late(meeting: Meeting, appended_at: datetime | None, limit: datetime | None) -> bool:
    """R12 on the broker's clock: appended after ``limit`` plus the meeting's broker_grace_s (off when unset)."""
    grace = meeting.spec.broker_grace_s
    if grace is None or appended_at is None or limit is None:
        return False
    return appended_at > limit + timedelta(seconds=grace)

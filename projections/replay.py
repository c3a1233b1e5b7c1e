"""Fold a log (accepted events in log order) into every meeting's tally. Pure, no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from events import AnyEvent, CutoffChanged, MeetingCorrected, MeetingScheduled, PollsClosed, VoteCast, VoteRevoked
from projections.fold import Tally, counted_votes
from projections.judge import Judge
from projections.overvotes import OverVote, counted_totals
from projections.recount import recount


@dataclass
class Projection:
    """Meetings and their tallies, built by applying accepted log entries one by one."""

    state: Judge = field(default_factory=Judge)
    tallies: dict[str, Tally] = field(default_factory=dict)
    # Control numbers to fold again from their log rows, after a late-logged poll closure or cut-off change (R12).
    refolds: dict[str, set[str]] = field(default_factory=dict)
    # `reject` meetings whose refolds are of the whole meeting, in log order (projections.recount, R17).
    recounts: set[str] = field(default_factory=set)

    def apply(self, event: AnyEvent) -> None:
        """Apply one accepted event (rejected ones never reach the fold)."""
        self.settle()  # admin events and single votes see every earlier vote counted
        if isinstance(event, (VoteCast, VoteRevoked)):
            tally = self.tallies.get(event.meeting_id)
            if tally is not None:
                tally.apply(event)
            return
        if isinstance(event, MeetingCorrected) and event.meeting_id in self.tallies:
            # R9 as amended: instructions executed from effective_at on vote a corrected recommendation; the
            # same instruction counts, so their contributions are taken out and put back around the change.
            tally = self.tallies[event.meeting_id]
            affected = [
                number
                for number, state in tally.voters.items()
                if any(vote.executed_at >= event.effective_at for vote in counted_votes(state))  # per item too
            ]
            tally.recount(affected, lambda: self.state.apply_accepted(event))
            return
        if isinstance(event, PollsClosed) and event.meeting_id in self.tallies:
            self._close(self.tallies[event.meeting_id], event)
            self._recount_if_reject(event.meeting_id)
            return
        self.state.apply_accepted(event)
        if isinstance(event, MeetingScheduled):
            self.tallies[event.meeting_id] = Tally(meeting=self.state.meetings[event.meeting_id])
        elif isinstance(event, CutoffChanged) and event.meeting_id in self.tallies:
            # R12 as amended, logged after submissions it concerns (received from its effective_at on): fold
            # those control numbers again, so the tally is what it would be had the change come first (R5).
            since = event.effective_at
            late = {
                n
                for n, s in self.tallies[event.meeting_id].voters.items()
                if s.latest_received and s.latest_received >= since
            }
            if late:
                self.refolds.setdefault(event.meeting_id, set()).update(late)
            self._recount_if_reject(event.meeting_id)

    def _recount_if_reject(self, meeting_id: str) -> None:
        """R17 `reject`: after a closure or cut-off change, every vote of the meeting is folded again in log order.

        Which instruction is refused depends on every earlier vote of its nominee, not only on its own
        control number's: a vote the change makes void must not keep another one refused (R5).
        """
        tally = self.tallies[meeting_id]
        if tally.meeting.spec.overvote_policy == "reject" and tally.voters:
            self.refolds.setdefault(meeting_id, set()).update(tally.voters)
            self.recounts.add(meeting_id)

    def refold(self, meeting_id: str, numbers: set[str], events: list[VoteCast | VoteRevoked]) -> None:
        """Fold again these control numbers from their accepted submissions (log order); a recount: every one's."""
        if meeting_id in self.recounts:
            self.recounts.discard(meeting_id)
            self.tallies[meeting_id] = recount(self.tallies[meeting_id], events)
            return
        mine: dict[str, list[VoteCast | VoteRevoked]] = {number: [] for number in numbers}
        for event in events:
            if event.control_number in mine:
                mine[event.control_number].append(event)
        for number in sorted(numbers):
            self.tallies[meeting_id].refold(number, mine[number])

    def _close(self, tally: Tally, event: PollsClosed) -> None:
        """R12: apply a poll closure; the control numbers with a submission received after it are refolded.

        Their contributions are taken out before the meeting changes (Tally.detach): per item, the
        closures decide which instruction each item counts, so they must be subtracted as they were added.
        """
        meeting = tally.meeting
        first = meeting.first_closure
        late = tally.received_after(event.closed_at if first is None else min(first, event.closed_at))
        tally.detach(late)
        # A correction effective after the polls close on every item stops being in force (Meeting.in_force):
        # the instructions executed from its effective_at on vote the recommendation before it again (R9), so
        # they are recounted around the closure, as a correction logged late is (whatever the log order, R5).
        # Bounded below by the closure's time: it can close every item no earlier than that.
        bound = event.closed_at if meeting.polls_closed_at is None else min(event.closed_at, meeting.polls_closed_at)
        voided = [
            when for when, _, _ in itertools.chain.from_iterable(meeting.recommendations.values()) if when > bound
        ]
        if voided:
            since = min(voided)
            affected = [
                number
                for number, state in tally.voters.items()
                if number not in late and any(vote.executed_at >= since for vote in counted_votes(state))
            ]
            tally.recount(affected, lambda: self.state.apply_accepted(event))
        else:
            self.state.apply_accepted(event)
        if late:
            self.refolds.setdefault(event.meeting_id, set()).update(late)

    def take_refolds(self) -> dict[str, set[str]]:
        """The control numbers to refold since last asked (the caller supplies their log rows)."""
        refolds, self.refolds = self.refolds, {}
        return refolds

    def apply_many(self, events: list[AnyEvent], settle: bool = True) -> None:
        """Apply accepted events in log order, folding runs of votes in batches per meeting.

        ``settle=False`` leaves the votes' contributions pending until ``settle()`` (or the next
        admin event): for replays from scratch, where only the final tally is read.
        """
        run: dict[str, list[VoteCast | VoteRevoked]] = {}
        for event in events:
            if isinstance(event, (VoteCast, VoteRevoked)):
                if event.meeting_id in self.tallies:
                    run.setdefault(event.meeting_id, []).append(event)
                continue
            self._flush(run, settle)  # admin events apply between the votes they precede and follow
            self.apply(event)
        self._flush(run, settle)

    def settle(self) -> None:
        """Count every pending contribution (see apply_many)."""
        for tally in self.tallies.values():
            if tally.unsettled:
                tally.settle()

    def _flush(self, run: dict[str, list[VoteCast | VoteRevoked]], settle: bool = True) -> None:
        for meeting_id, votes in run.items():
            self.tallies[meeting_id].apply_many(votes, settle)
        run.clear()


def replay(events: Iterable[AnyEvent]) -> Projection:
    """Fold accepted events from scratch."""
    events = list(events)
    projection = Projection()
    projection.apply_many(events)
    for meeting_id, numbers in projection.take_refolds().items():
        every = meeting_id in projection.recounts  # a recount folds every vote of the meeting, in log order
        votes = [
            e
            for e in events  # one pass, not one per refolded control number
            if isinstance(e, (VoteCast, VoteRevoked))
            and e.meeting_id == meeting_id
            and (every or e.control_number in numbers)
        ]
        projection.refold(meeting_id, numbers, votes)
    return projection


def counted(tally: Tally) -> tuple[dict[str, dict[str, int]], list[OverVote]]:
    """Per-item totals after R17 and the over-vote report, from a fold alone (offline reports, time travel)."""
    refused: dict[tuple[str, str], list[str]] = {}
    for number, state in tally.voters.items():
        for event_id, item_id in state.overvote_rejected:
            nominee = tally.meeting.positions[number].nominee or ""
            refused.setdefault((nominee, item_id), []).append(event_id)
    for event_ids in refused.values():
        event_ids.sort()  # the order the projection's table gives (ORDER BY event_id)
    return counted_totals(tally.meeting.spec, tally.meeting.entitlements, tally.buckets, refused)

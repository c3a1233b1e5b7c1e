"""The ledger's decision on each incoming event, with the meeting state it needs. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from events import AnyEvent, MeetingScheduled, PollsClosed, PositionsRecorded, ProxySubstituted, VoteCast, VoteRevoked
from projections import validation
from projections.meeting import Meeting
from projections.proxies import ProxyBook


@dataclass
class Judge:
    """Decides accepted/rejected for every event and keeps the admin state decisions depend on."""

    meetings: dict[str, Meeting] = field(default_factory=dict)
    # Who holds each meeting's proxies over time: named proxies and their substitutes (R13).
    proxies: dict[str, ProxyBook] = field(default_factory=dict)

    def judge(self, event: AnyEvent) -> str | None:
        """Return the rejection reason, or None; an accepted admin event updates the state."""
        if isinstance(event, (MeetingScheduled, PositionsRecorded, PollsClosed)):
            reason = validation.validate_admin(self.meetings, event)
            if reason is None:
                self.apply_accepted(event)
            return reason
        meeting = self.meetings.get(event.meeting_id)
        if meeting is None:
            return validation.UNKNOWN_MEETING
        if isinstance(event, VoteCast):
            return validation.validate_vote_cast(meeting, event)
        if isinstance(event, VoteRevoked):
            return validation.validate_vote_revoked(meeting, event)
        reason = validation.validate_proxy_substituted(meeting, event, self.proxies[event.meeting_id])
        if reason is None:
            self.apply_accepted(event)
        return reason

    def apply_accepted(self, event: AnyEvent) -> None:
        """Apply an event already accepted (also used to rebuild the state from the log)."""
        if isinstance(event, MeetingScheduled):
            self.meetings[event.meeting_id] = Meeting.scheduled(event)
            self.proxies[event.meeting_id] = ProxyBook(event.named_proxies)
        elif isinstance(event, PositionsRecorded):
            self.meetings[event.meeting_id].record_positions(event)
        elif isinstance(event, PollsClosed):
            self.meetings[event.meeting_id].close_polls(event)
        elif isinstance(event, ProxySubstituted):
            self.proxies[event.meeting_id].apply(event)

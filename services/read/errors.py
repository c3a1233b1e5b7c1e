"""The read side's errors: a meeting the log does not know, a meeting the projector isolated."""

from __future__ import annotations


class UnknownMeeting(LookupError):
    """No accepted meeting.scheduled with this id is in the log."""


class MeetingNotProjected(LookupError):
    """The projector isolated this meeting (projection_failures): its tally tables are stale."""

    def __init__(self, meeting_id: str, position: int) -> None:
        super().__init__(f"meeting {meeting_id!r} is not projected from log position {position:,} on")
        self.meeting_id = meeting_id
        self.position = position  # the first log position left out of its tables

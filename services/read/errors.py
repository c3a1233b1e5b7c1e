"""The read side's errors: a meeting the log does not know, a meeting the projector isolated."""

from __future__ import annotations

from services.cli import UserError


class UnknownMeeting(LookupError):
    """No accepted meeting.scheduled with this id is in the log."""


class MeetingNotProjected(UserError):
    """The projector isolated this meeting (projection_failures): its tally tables are stale."""

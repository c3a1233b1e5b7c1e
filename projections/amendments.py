"""A meeting's amendments as the read side shows them: one line each, and the meeting as amended. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from events import CUTOFF_CHANNELS, AnyEvent, CutoffChanged, MeetingAdjourned, MeetingCorrected, tag_of
from projections.meeting import Meeting


def describe(event: MeetingAdjourned | CutoffChanged | MeetingCorrected) -> str:
    """What an amendment changes, in one line."""
    if isinstance(event, MeetingAdjourned):
        return f"{'postponed' if event.postponed else 'adjourned'} to {event.meeting_at.isoformat()}"
    if isinstance(event, CutoffChanged):
        new = event.cutoff.isoformat() if event.cutoff is not None else "none (lifted)"
        return f"{event.channel} cut-off: {new}"
    changes = [f"company: {event.company}"] if event.company else []
    changes += [f"title: {event.title}"] if event.title else []
    for item in event.items:
        changes += [f"item {item.id} title: {item.title}"] if item.title is not None else []
        changes += [f"item {item.id} recommendation: {item.recommendation}"] if item.recommendation else []
    return "corrected " + "; ".join(changes)


def amendment_rows(applied: Iterable[tuple[int, AnyEvent]]) -> list[dict[str, Any]]:
    """The amendments among a meeting's accepted admin rows, in log order, as JSON."""
    return [
        {
            "position": position,
            "type": tag_of(event),
            "event_id": event.event_id,
            "effective_at": event.effective_at.isoformat(),
            "change": describe(event),
            "reason": event.reason,
        }
        for position, event in applied
        if isinstance(event, (MeetingAdjourned, CutoffChanged, MeetingCorrected))
    ]


def as_amended(meeting: Meeting, applied: Iterable[tuple[int, AnyEvent]]) -> dict[str, Any]:
    """The meeting's date (original and amended), cut-offs in force last, and its amendments (JSON)."""
    spec, amended = meeting.spec, meeting.as_amended()
    rows = [(p, e) for p, e in applied if isinstance(e, (MeetingAdjourned, CutoffChanged, MeetingCorrected))]
    cutoffs = amended.cutoffs
    return {
        "amended": bool(meeting.amendments),
        "company": amended.company,
        "title": amended.title,
        "meeting_at": amended.meeting_at.isoformat(),
        "original_meeting_at": spec.meeting_at.isoformat(),
        "cutoffs": {c: (getattr(cutoffs, c).isoformat() if getattr(cutoffs, c) else None) for c in CUTOFF_CHANNELS},
        # In force only: one effective after the polls closed on every item changes nothing (Meeting.in_force),
        # so it is listed in no order of the log (refused poll_closed after the closure, ignored before it).
        "amendments": [
            row for row, (_, event) in zip(amendment_rows(rows), rows, strict=True) if meeting.in_force(event)
        ],
    }


def render_lines(section: dict[str, Any]) -> list[str]:
    """Text lines for a meeting as amended: nothing for an unamended meeting."""
    if not section["amended"]:
        return []
    lines = []
    if section["meeting_at"] != section["original_meeting_at"]:
        lines.append(f"Meeting date: {section['meeting_at']} (as amended; originally {section['original_meeting_at']})")
    lines.append(f"Amendments ({len(section['amendments'])}):")
    for a in section["amendments"]:
        why = f" ({a['reason']})" if a["reason"] else ""
        lines.append(f"  #{a['position']} {a['type']} effective {a['effective_at']}: {a['change']}{why}")
    return lines


def amend(meeting: Meeting, event: MeetingAdjourned | CutoffChanged | MeetingCorrected) -> None:
    """Apply an accepted amendment to a meeting (as Judge.apply_accepted does)."""
    if isinstance(event, MeetingAdjourned):
        meeting.adjourn(event)
    elif isinstance(event, CutoffChanged):
        meeting.change_cutoff(event)
    else:
        meeting.correct(event)

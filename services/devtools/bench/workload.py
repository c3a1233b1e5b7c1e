"""The benchmark workload: the CBAK reference meeting with a large register and its submissions."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from deploy import meeting_file
from events import AnyEvent, MeetingScheduled, VoteCast, encode, tag_of
from services.adapters.kafka.topics import key_for
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import load_spec
from services.devtools.demo.traffic import generate

DEFAULT_MEETING = meeting_file("cbak-2023-agm")  # bundled, so `bench` runs outside a checkout
DEFAULT_POSITIONS = 100_000


@dataclass
class Workload:
    """A meeting's admin events and N submissions, as structs and as the exact bytes published."""

    meeting: MeetingScheduled
    admin: list[AnyEvent]
    submissions: list[AnyEvent]
    positions: int
    # (key, value) per message, in publishing order: what every system under test receives.
    admin_payloads: list[tuple[bytes, bytes]] = field(default_factory=list)
    submission_payloads: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def meeting_id(self) -> str:
        """The meeting's id."""
        return self.meeting.meeting_id

    def prefix(self, submissions: int) -> Workload:
        """The same meeting with only the first N submissions (for a peer too slow for all of them)."""
        return Workload(
            meeting=self.meeting,
            admin=self.admin,
            submissions=self.submissions[:submissions],
            positions=self.positions,
            admin_payloads=self.admin_payloads,
            submission_payloads=self.submission_payloads[:submissions],
        )

    def mix(self) -> dict[str, int]:
        """Counts of what the submissions are: casts, re-votes, splits, revocations, substitutions."""
        counts: collections.Counter[str] = collections.Counter()
        seen: set[str] = set()
        for event in self.submissions:
            tag = tag_of(event)
            counts[tag] += 1
            if isinstance(event, VoteCast):
                if event.control_number in seen:
                    counts["vote.cast (re-vote)"] += 1
                seen.add(event.control_number)
                if any(not isinstance(choice, str) for choice in event.choices.values()):
                    counts["vote.cast (split)"] += 1
                if event.discretionary:
                    counts["vote.cast (discretionary)"] += 1
        return dict(sorted(counts.items()))


def build(
    submissions: int, *, meeting_file: Path = DEFAULT_MEETING, positions: int = DEFAULT_POSITIONS, seed: int = 5
) -> Workload:
    """The reference meeting with a register of ``positions`` control numbers and ``submissions`` votes.

    The campaign is the spec's own (channels, re-votes, splits, revocations, substitutions, late and
    invalid ones); past its natural size, more later-dated re-votes (R5) are merged in.
    """
    meeting, register_spec, sim = load_spec(meeting_file)
    register_spec = msgspec.structs.replace(register_spec, positions=positions)
    register, entitlements = build_register(meeting, register_spec)
    admin = [meeting, *register_events(meeting, register, entitlements)]
    subs = list(generate(meeting, register, sim, count=submissions, seed=seed))
    return Workload(
        meeting=meeting,
        admin=admin,
        submissions=subs,
        positions=len(register),
        admin_payloads=[(key_for(e), encode(e)) for e in admin],
        submission_payloads=[(key_for(e), encode(e)) for e in subs],
    )

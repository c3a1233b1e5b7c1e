"""The benchmark workload: the CBAK reference meeting with a large register and its submissions."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from deploy import meeting_file
from events import AnyEvent, MeetingScheduled, Position, VoteCast, encode, tag_of
from services.adapters.kafka.topics import key_for
from services.devtools.demo.channels import Signer, key_events
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import SimulationSpec, load_spec
from services.devtools.demo.traffic import generate
from services.registers.meeting_file import declare_register

DEFAULT_MEETING = meeting_file("cbak-2023-agm")  # bundled, so `bench` runs outside a checkout
DEFAULT_POSITIONS = 100_000
# Each channel signs its share of this many consecutive submissions as one batch, as a high-volume channel
# signs what it has in hand: the busiest channel of the reference campaign (a broker, a quarter of the
# traffic) then signs about 1,000 per batch, the smallest a handful (services.devtools.demo.channels).
SIGN_WINDOW = 4096


@dataclass
class Workload:
    """A meeting's admin events and N submissions, as structs and as the exact bytes published."""

    meeting: MeetingScheduled
    admin: list[AnyEvent]
    submissions: list[AnyEvent]
    positions: int
    # Whether the submissions are signed by their channels (the meeting requires it) or not at all.
    signed: bool = True
    # (key, value) per message, in publishing order: what every system under test receives.
    admin_payloads: list[tuple[bytes, bytes]] = field(default_factory=list)
    submission_payloads: list[tuple[bytes, bytes]] = field(default_factory=list)
    # The simulated channels' keys (the micro-benchmark signs batches of chosen sizes with them).
    signer: Signer | None = None

    @property
    def meeting_id(self) -> str:
        """The meeting's id."""
        return self.meeting.meeting_id

    @property
    def size(self) -> int:
        """How many submissions (as a streamed workload says it)."""
        return len(self.submission_payloads)

    def payloads(self) -> Iterator[tuple[bytes, bytes]]:
        """The submissions' exact (key, value) bytes, in publishing order (as a streamed workload gives them)."""
        return iter(self.submission_payloads)

    def prefix(self, submissions: int) -> Workload:
        """The same meeting with only the first N submissions (for a peer too slow for all of them)."""
        return Workload(
            meeting=self.meeting,
            admin=self.admin,
            submissions=self.submissions[:submissions],
            positions=self.positions,
            signed=self.signed,
            admin_payloads=self.admin_payloads,
            submission_payloads=self.submission_payloads[:submissions],
            signer=self.signer,
        )

    def unsigned(self) -> Workload:
        """The same submissions without signatures, on the same meeting not requiring them: the comparison.

        Same Kafka keys, same admin events (the keys are registered but unused), event ids of the same
        length; only ``auth`` is absent and ``signatures_required`` false. The ids leave their channel's
        namespace ("desk:7" becomes "desk/7"): S6 refuses an unsigned submission under "<channel_id>:".
        """
        meeting = msgspec.structs.replace(self.meeting, signatures_required=False)
        admin = [meeting, *self.admin[1:]]
        submissions = [msgspec.structs.replace(e, event_id=e.event_id.replace(":", "/", 1)) for e in self.submissions]
        return Workload(
            meeting=meeting,
            admin=admin,
            submissions=submissions,
            positions=self.positions,
            signed=False,
            admin_payloads=[(key_for(e), encode(e)) for e in admin],
            submission_payloads=[(key_for(e), encode(e)) for e in submissions],
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


@dataclass
class Admin:
    """A benchmark meeting before any traffic: its admin events, register, simulation spec and channels' keys."""

    meeting: MeetingScheduled
    events: list[AnyEvent]
    register: list[Position]
    sim: SimulationSpec
    signer: Signer


def admin_of(meeting_file: Path, positions: int, meeting_id: str | None = None) -> Admin:
    """The reference meeting requiring signatures, with a register of ``positions`` control numbers.

    ``meeting_id`` renames it (distinct meetings for the many-meetings measurement): every event id
    derived from the meeting (register chunks, channel keys) then differs too.
    """
    meeting, register_spec, sim = load_spec(meeting_file)
    meeting = msgspec.structs.replace(meeting, signatures_required=True)
    if meeting_id is not None:
        meeting = msgspec.structs.replace(meeting, meeting_id=meeting_id)
    register_spec = msgspec.structs.replace(register_spec, positions=positions)
    register, entitlements = build_register(meeting, register_spec)
    chunks = register_events(meeting, register, entitlements)
    meeting = declare_register(meeting, chunks)  # this register's totals, not the file's 20,000 positions
    events = [meeting, *chunks, *key_events(meeting, register_spec, sim)]
    return Admin(meeting, events, register, sim, Signer(meeting, register_spec, sim))


def build(
    submissions: int,
    *,
    meeting_file: Path = DEFAULT_MEETING,
    positions: int = DEFAULT_POSITIONS,
    seed: int = 5,
    window: int = SIGN_WINDOW,
) -> Workload:
    """The reference meeting with a register of ``positions`` control numbers and ``submissions`` votes, signed.

    The campaign is the spec's own (channels, re-votes, splits, revocations, substitutions, late and
    invalid ones); past its natural size, more later-dated re-votes (R5) are merged in. The meeting
    requires signatures (issue 11): meeting administration registers each simulated channel's key
    before the traffic, and each channel signs its share of ``window`` consecutive submissions as one
    batch (projections.signing.sign_batch through the channel client). Signing is the channels' cost:
    it happens here, before anything is timed. ``submissions`` holds the events with their namespaced
    ids but without ``auth`` (what the tally needs); the published payloads carry it. The scale curve
    streams the same bytes instead (stream.stream): this holds them all (about 1.5 GB at 1M).
    """
    admin = admin_of(meeting_file, positions)
    generated = list(generate(admin.meeting, admin.register, admin.sim, count=submissions, seed=seed))
    signed = list(admin.signer.signed(generated, window))  # in input order
    subs = [msgspec.structs.replace(e, event_id=s.event_id) for e, s in zip(generated, signed, strict=True)]
    return Workload(
        meeting=admin.meeting,
        admin=admin.events,
        submissions=subs,
        positions=len(admin.register),
        admin_payloads=[(key_for(e), encode(e)) for e in admin.events],
        submission_payloads=[(s.key, s.payload) for s in signed],
        signer=admin.signer,
    )

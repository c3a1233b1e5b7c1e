"""The simulated channels of a meeting spec: who signs each simulated submission, with which (demo) key and scope.

One channel per submitter of the simulated campaign (services.devtools.demo.traffic): the internet
platform, the phone service, the mail-card processor, the corporate secretary (written revocations,
and the named proxies' substitutions), the ballot desk (in_person only) and one broker platform per
nominee, which may vote only that nominee's beneficial positions (S4). Meeting administration
registers their keys with the meeting (`meeting load --simulated-channels`), before any traffic; `simulate` signs
through the channel client, each channel's share of a window of traffic as one batch, the way a
high-volume channel signs what it has in hand.

The demo keys are derived from the meeting id and the channel id, so anyone can compute them: they
exist so that a simulation is reproducible (a re-run republishes the same bytes, which the ledger
applies once, R18). Never register them for a real meeting: real channels make their own
(`vote-ledger channel keygen`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time
from itertools import islice
from zoneinfo import ZoneInfo

import msgspec

from events import (
    ChannelKeyRegistered,
    MeetingScheduled,
    ProxySubstituted,
    Submission,
    VoteCast,
    VoteRevoked,
    decode,
    encode,
)
from projections.judge import Received
from services.channel.client import Signed, sign_per_channel
from services.channel.keys import SigningKey
from services.devtools.demo.spec import DEMO_NAMESPACE, RegisterSpec, SimulationSpec

DEMO_KEY_ID = "demo-1"
# Submissions signed together: each channel's share of this many consecutive submissions is one batch.
# At the demo's 1,500/s that is a third of a second of traffic, about 150 internet votes per batch.
WINDOW = 512
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class DemoChannel:
    """A simulated channel: its id, the channel kinds it submits, and its scope (S4)."""

    channel_id: str
    kinds: tuple[str, ...]
    nominees: tuple[str, ...] | None = None
    proxy_holders: tuple[str, ...] = ()


def channel_id_of(name: str) -> str:
    """A submitter's name as a channel id: lowercase letters and digits joined by '-', at most 64 characters."""
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:64].rstrip("-")
    return slug or "channel"


def demo_channels(meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec) -> list[DemoChannel]:
    """Every channel the simulated campaign submits through, with its kinds and scope."""
    kinds: dict[str, list[str]] = {}
    for channel in ("internet", "phone", "mail", "in_person"):
        kinds.setdefault(channel_id_of(sim.submitters.get(channel, channel)), []).append(channel)
    secretary = channel_id_of(sim.submitters.get("revocation", "corporate-secretary"))
    kinds.setdefault(secretary, []).append("mail")  # written revocations arrive by mail (traffic._holder)
    channels = [
        DemoChannel(
            channel_id,
            tuple(dict.fromkeys(k)),
            proxy_holders=tuple(meeting.named_proxies) if channel_id == secretary else (),
        )
        for channel_id, k in kinds.items()
    ]
    channels += [DemoChannel(channel_id_of(n.name), ("broker",), nominees=(n.name,)) for n in register.nominees]
    ids = [c.channel_id for c in channels]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two simulated channels share a channel id: {ids}")
    return channels


def demo_key(meeting_id: str, channel_id: str) -> SigningKey:
    """The simulated channel's key: derived from the meeting and channel ids (public: for simulations only)."""
    seed = hashlib.sha256(f"vote-ledger demo channel key\0{meeting_id}\0{channel_id}".encode()).hexdigest()
    return SigningKey(channel_id, DEMO_KEY_ID, seed)


def is_demo_key(meeting_id: str, channel_id: str, public_key: str) -> bool:
    """Whether this public key is the simulated channel's demo key for the meeting: anyone can sign with it."""
    return demo_key(meeting_id, channel_id).public_key == public_key


def simulated_channel_ids(nominees: Iterable[str] = ()) -> set[str]:
    """The channel ids a meeting's simulated channels take by default: the default submitters', a broker per nominee.

    A spec's own [simulation] submitters may name others; the callers add every channel id they know.
    """
    return {channel_id_of(name) for name in SimulationSpec().submitters.values()} | {channel_id_of(n) for n in nominees}


def demo_public_keys(meeting_id: str, channel_ids: Iterable[str]) -> dict[str, str]:
    """The public demo key of each of these channel ids for the meeting, mapped to its channel id.

    A demo key registered under another channel id is just as public: anyone can sign with it. One
    derivation per id (a SHA-256 and an Ed25519 public key, tens of microseconds), then a lookup per key.
    """
    return {demo_key(meeting_id, c).public_key: c for c in sorted(set(channel_ids))}


def demo_channel_of(meeting_id: str, public_key: str, channel_ids: Iterable[str]) -> str | None:
    """The channel among these ids whose public demo key for the meeting this key is (None: none of them)."""
    return demo_public_keys(meeting_id, channel_ids).get(public_key)


def missing_demo_keys(
    meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec, registered: Iterable[ChannelKeyRegistered]
) -> list[str]:
    """The simulated channels whose demo key is not among these registrations (`simulate` signs with them all)."""
    have = {(k.channel_id, k.key_id, k.public_key) for k in registered}
    return [
        c.channel_id
        for c in demo_channels(meeting, register, sim)
        if (c.channel_id, DEMO_KEY_ID, demo_key(meeting.meeting_id, c.channel_id).public_key) not in have
    ]


def key_events(meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec) -> list[ChannelKeyRegistered]:
    """channel.key_registered for every simulated channel, effective from the record date (deterministic ids: R18)."""
    effective = datetime.combine(meeting.record_date, time(), ZoneInfo(meeting.timezone))
    events = []
    for channel in demo_channels(meeting, register, sim):
        event = ChannelKeyRegistered(
            event_id="pending",
            meeting_id=meeting.meeting_id,
            channel_id=channel.channel_id,
            key_id=DEMO_KEY_ID,
            public_key=demo_key(meeting.meeting_id, channel.channel_id).public_key,
            kinds=list(channel.kinds),
            effective_at=effective,
            nominees=None if channel.nominees is None else list(channel.nominees),
            proxy_holders=list(channel.proxy_holders),
        )
        digest = hashlib.sha256(encode(event)).hexdigest()[:16]
        event_id = str(uuid.uuid5(DEMO_NAMESPACE, f"{meeting.meeting_id}:key:{channel.channel_id}:{digest}"))
        events.append(msgspec.structs.replace(event, event_id=event_id))
    return events


class Signer:
    """Which demo key signs each simulated submission: its submitter's, or for a substitution the secretary's."""

    def __init__(self, meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec) -> None:
        channels = demo_channels(meeting, register, sim)
        self.keys = {c.channel_id: demo_key(meeting.meeting_id, c.channel_id) for c in channels}
        self.substitutions = {p: c.channel_id for c in channels for p in c.proxy_holders}
        self._by_submitter: dict[str, SigningKey] = {}

    def key_of(self, event: Submission) -> SigningKey:
        """The key of the channel that submits ``event``."""
        if isinstance(event, ProxySubstituted):
            return self.keys[self.substitutions[event.proxy_holder]]
        key = self._by_submitter.get(event.submitted_by)
        if key is None:  # a handful of submitters: slug each once, not once per submission
            key = self._by_submitter[event.submitted_by] = self.keys[channel_id_of(event.submitted_by)]
        return key

    def signed(self, events: Iterable[Submission], window: int = WINDOW) -> Iterator[Signed]:
        """The submissions signed, in order: each channel's share of every ``window`` consecutive ones as a batch."""
        it = iter(events)
        while chunk := list(islice(it, window)):
            yield from sign_per_channel(chunk, self.key_of)

    def received(self, events: Iterable[Submission], window: int = WINDOW) -> Iterator[tuple[Submission, Received]]:
        """Each submission signed, as the ledger decodes and receives it: for judging without Kafka (tests, tools)."""
        for signed in self.signed(events, window):
            event = decode(signed.payload)
            assert isinstance(event, (VoteCast, VoteRevoked, ProxySubstituted))
            yield event, Received(signed.payload)

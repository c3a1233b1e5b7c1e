"""Wire schemas: every message of the contract in docs/wire-contract.md, one msgspec tagged union.

Each event is a past-tense fact with an explicit, stable ``type`` tag. The tags and field names are
the wire contract that channels and auditors depend on: never rename them; add fields only with
defaults; breaking changes go through a named upcaster (``events.codec.UPCASTERS``).
"""

from __future__ import annotations

import typing
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

# RFC 3339 with an offset: a naive time is ambiguous across the channels' time zones, so refuse it.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Shares = Annotated[int, msgspec.Meta(ge=0)]
PositiveShares = Annotated[int, msgspec.Meta(gt=0)]

# The largest share count any field may carry (outstanding, a position, an entitlement, a vote or a
# split, a quorum term): 10^15. The listed companies with the most shares have a few times 10^11
# outstanding (ICBC: about 3.6 * 10^11), so this leaves over 1,000x headroom for anything real;
# and since the register may not exceed the outstanding shares, every sum the projector
# stores (shares present, a bucket: at most the outstanding shares) stays 9,000x below PostgreSQL's
# bigint (2^63 - 1, about 9.2 * 10^18).
# The bound is a rule of the judge (reason `shares_out_of_range`, projections/validation.py), not a
# msgspec constraint: a well-formed event that exceeds it is logged as rejected with its reason,
# visible to auditors, instead of parked as undecodable. The JSON decoder reads integers of any size.
MAX_SHARES = 10**15

Channel = Literal["internet", "phone", "mail", "in_person", "broker"]
CHANNELS: tuple[str, ...] = typing.get_args(Channel)  # the same values, for choices and checks at run time
HolderKind = Literal["registered", "beneficial"]
Standard = Literal["plurality", "majority_of_votes_cast", "frequency"]
OverVotePolicy = Literal["prorate", "reject"]

# A choice on one item: one option for all represented shares, or a split {option: shares} (R3).
Choice = str | dict[str, Shares]

SCHEMA_VERSION = 1


# gc=False: events hold no reference cycles, and untracked instances keep the garbage collector
# from rescanning millions of them during a replay (measured: decoding 2-3x faster).
class Event(msgspec.Struct, tag_field="type", kw_only=True, frozen=True, gc=False):
    """Base of every message: envelope fields shared by all events."""

    v: int = SCHEMA_VERSION
    event_id: NonEmpty
    meeting_id: NonEmpty


# --- Submissions (topic votes.submissions, key = control number) -------------------------------


class ChannelSubmission(Event, frozen=True):
    """Base of what a voting channel submits for one control number (not itself on the wire)."""

    control_number: NonEmpty
    channel: Channel
    submitted_by: NonEmpty
    executed_at: AwareDatetime
    received_at: AwareDatetime


class VoteCast(ChannelSubmission, tag="vote.cast", frozen=True):
    """A holder (or its nominee) gave voting instructions, or cast a ballot, for a control number."""

    shares: PositiveShares | None = None
    choices: dict[str, Choice] = {}
    signatures: list[str] | None = None
    discretionary: bool = False
    legal_proxy_id: str | None = None


class VoteRevoked(ChannelSubmission, tag="vote.revoked", frozen=True):
    """A holder revoked every instruction of a control number executed before ``executed_at``."""

    method: str = "written_notice"


class ProxySubstituted(Event, tag="proxy.substituted", frozen=True):
    """A proxy holder appointed a substitute, for all its proxies or listed control numbers (R13)."""

    proxy_holder: NonEmpty
    substitute: NonEmpty
    executed_at: AwareDatetime
    received_at: AwareDatetime
    control_numbers: list[str] | None = None


# --- Meeting administration (topic meetings.admin) ----------------------------------------------


class Item(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One matter voted on: its options, standard, routine flag and the board's recommendation."""

    id: NonEmpty
    title: str
    options: list[str]
    standard: Standard
    routine: bool = False
    recommendation: str | None = None
    # Plurality elections group one item per nominee; `seats` of the group are filled.
    group: str | None = None
    seats: int | None = None
    # Contested election on a universal proxy card: marking For more nominees than seats voids the
    # card's votes on the group, and a card that marks some nominees votes only those.
    universal_proxy: bool = False


class Quorum(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Quorum as an exact fraction of the outstanding shares (R14)."""

    numerator: PositiveShares
    denominator: PositiveShares


class Cutoffs(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Times after which a channel's submissions are refused (R12)."""

    internet: AwareDatetime | None = None
    phone: AwareDatetime | None = None


class MeetingScheduled(Event, tag="meeting.scheduled", frozen=True):
    """A meeting was called: everything a replay needs to judge and tally its votes."""

    company: str
    title: str
    record_date: date
    meeting_at: AwareDatetime
    timezone: str
    outstanding: PositiveShares
    quorum: Quorum
    items: list[Item]
    named_proxies: list[str]
    cutoffs: Cutoffs = Cutoffs()
    overvote_policy: OverVotePolicy = "prorate"
    recorded_at: AwareDatetime | None = None


class Position(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One record-date position: control number, holder kind, shares, holders, nominee."""

    control_number: NonEmpty
    kind: HolderKind
    shares: PositiveShares
    holders: list[str]
    nominee: str | None = None


class Entitlement(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A nominee's position on the record-date DTC security position report (R17)."""

    nominee: NonEmpty
    shares: Shares


class PositionsRecorded(Event, tag="positions.recorded", frozen=True):
    """A chunk of the record-date register (positions and nominee entitlements) was recorded."""

    chunk: int
    chunks: int
    positions: list[Position] = []
    entitlements: list[Entitlement] = []
    recorded_at: AwareDatetime | None = None


class PollsClosed(Event, tag="polls.closed", frozen=True):
    """The chair closed the polls at ``closed_at`` on all items, or on the listed ones (R12)."""

    closed_at: AwareDatetime
    items: list[str] | None = None
    recorded_at: AwareDatetime | None = None


Submission = VoteCast | VoteRevoked | ProxySubstituted
AdminEvent = MeetingScheduled | PositionsRecorded | PollsClosed
AnyEvent = Submission | AdminEvent

# Explicit registry: tag -> class. Tags are stable; this is what the log's `type` column holds.
EVENT_TYPES: dict[str, type[Event]] = {
    "vote.cast": VoteCast,
    "vote.revoked": VoteRevoked,
    "proxy.substituted": ProxySubstituted,
    "meeting.scheduled": MeetingScheduled,
    "positions.recorded": PositionsRecorded,
    "polls.closed": PollsClosed,
}
_TAGS: dict[type[Event], str] = {cls: tag for tag, cls in EVENT_TYPES.items()}

# The admin event classes and their tags, from the AdminEvent union: what only the admin topic may carry.
ADMIN_EVENTS: tuple[type[Event], ...] = typing.get_args(AdminEvent)
ADMIN_TAGS: tuple[str, ...] = tuple(_TAGS[cls] for cls in ADMIN_EVENTS)
# The accepted rows a judge (projections.judge.Judge) is rebuilt from: the admin events and the proxy
# substitutions. A substitution comes in on the votes topic like any submission, but it changes who
# holds a proxy (R13), which later decisions depend on. The partial index ledger_log_admin_rows
# (001_log.sql) lists exactly these types, in this order.
JUDGE_TAGS: tuple[str, ...] = (*ADMIN_TAGS, _TAGS[ProxySubstituted])


def tag_of(event: Event) -> str:
    """The event's stable wire tag, e.g. "vote.cast": what the log's `type` column holds."""
    # A dict lookup: __struct_config__ builds an object per call, and the ledger tags every event.
    return _TAGS[type(event)]

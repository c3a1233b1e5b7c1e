"""Judge one submission against its meeting: accepted (None) or a reason code. Pure, no I/O.

These are the checks that need only the meeting (spec, register, poll closures), never other votes,
so the decision does not depend on the order in which votes arrive (R5). Each check cites its rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from events import (
    AnyEvent,
    ChannelKeyRegistered,
    ChannelKeyRevoked,
    CutoffChanged,
    MeetingAdjourned,
    MeetingCorrected,
    MeetingScheduled,
    PollsClosed,
    PositionsRecorded,
    ProxySubstituted,
    VoteCast,
    VoteRevoked,
)
from events.schema import MAX_SHARES
from projections import timing
from projections.channels import KEY_NOT_YET_VALID, KEY_REVOKED, OUT_OF_SCOPE, UNKNOWN_CHANNEL, ChannelKey, scope
from projections.meeting import Meeting
from projections.timing import CUTOFF_PASSED, POLL_CLOSED
from projections.validation_channels import (
    BAD_SIGNATURE,
    DUPLICATE_KEY,
    FOREIGN_EVENT_ID,
    IMPLAUSIBLE_TIME,
    INVALID_KEY,
    SIGNATURE_REQUIRED,
    UNKNOWN_KEY,
    validate_key_registered,
    validate_key_revoked,
)

# Reason codes are part of the log's public vocabulary: auditors filter on them. Never rename.
NOT_ENTITLED = "not_entitled"  # R1
EXCEEDS_POSITION = "exceeds_position"  # R2
OVER_VOTE = "over_vote"  # R3
INVALID_CHOICE = "invalid_choice"  # R4
UNKNOWN_ITEM = "unknown_item"  # R4
NO_LEGAL_PROXY = "no_legal_proxy"  # R8
DISCRETIONARY_NOT_ALLOWED = "discretionary_not_allowed"  # R10
UNSIGNED = "unsigned"  # R11
MISSING_JOINT_SIGNATURE = "missing_joint_signature"  # R11
NOT_PROXY_HOLDER = "not_proxy_holder"  # R13 before issue 12: older logs carry it; no longer given
UNKNOWN_MEETING = "unknown_meeting"
DUPLICATE_MEETING = "duplicate_meeting"
DUPLICATE_CHUNK = "duplicate_chunk"
DUPLICATE_POSITION = "duplicate_position"  # a chunk redefining a control number already recorded
WRONG_TOPIC = "wrong_topic"  # an admin event on the submissions topic, or the reverse
KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the one the wire contract gives (the ledger's, like wrong_topic)
DUPLICATE_EVENT_ID = "duplicate_event_id"  # R18: another message under an event_id already logged
# Bounds that keep every sum the projector stores inside a bigint (events.schema.MAX_SHARES).
SHARES_OUT_OF_RANGE = "shares_out_of_range"  # a share count or quorum term above MAX_SHARES
INVALID_QUORUM = "invalid_quorum"  # a quorum above all the outstanding shares can never be met
INVALID_SEATS = "invalid_seats"  # seats below 1, or more than the nominees of the group
REGISTER_EXCEEDS_OUTSTANDING = "register_exceeds_outstanding"  # positions over the shares outstanding
CHUNK_OUT_OF_RANGE = "chunk_out_of_range"  # chunk number outside 0 .. chunks - 1
CHUNKS_MISMATCH = "chunks_mismatch"  # a chunk announcing another number of chunks than declared, or than earlier ones
# A chunk taking the register's positions or shares beyond the totals its meeting.scheduled declared
# (RegisterTotals): a complete register holds exactly those (docs/rules.md, "Register completeness").
REGISTER_EXCEEDS_DECLARED = "register_exceeds_declared"
# Amendments (docs/rules.md, Amendments): an adjournment to a date before the record date, a correction naming
# an item twice or nothing, an amendment taking effect before it was logged (back_dated).
INVALID_AMENDMENT = "invalid_amendment"
# R17 `reject` made visible (R19): the ledger's own vote.refused row, for an instruction its fold refused
# for taking the nominee over its entitlement on an item (projections/refusals.py).
OVER_ENTITLEMENT = "over_entitlement"
# A vote.refused published by a channel (any topic): only the ledger writes those rows (projections/refusals.py).
RESERVED_TYPE = "reserved_type"
# The ledger's own rows' event ids start with it (ledger:refused:<id>): an event from a topic with such an id
# is refused RESERVED_TYPE too (projections.judge), as it could collide with a row the ledger writes later.
LEDGER_ID_PREFIX = "ledger:"
# Channel authentication (docs/rules.md S1-S7): the codes are defined with their rules
# (projections.channels, projections.validation_channels) and listed here with the others.

REASONS = (
    NOT_ENTITLED,
    EXCEEDS_POSITION,
    OVER_VOTE,
    INVALID_CHOICE,
    UNKNOWN_ITEM,
    NO_LEGAL_PROXY,
    DISCRETIONARY_NOT_ALLOWED,
    UNSIGNED,
    MISSING_JOINT_SIGNATURE,
    POLL_CLOSED,
    CUTOFF_PASSED,
    NOT_PROXY_HOLDER,
    UNKNOWN_MEETING,
    DUPLICATE_MEETING,
    DUPLICATE_CHUNK,
    DUPLICATE_POSITION,
    WRONG_TOPIC,
    KEY_MISMATCH,
    DUPLICATE_EVENT_ID,
    SHARES_OUT_OF_RANGE,
    INVALID_QUORUM,
    INVALID_SEATS,
    REGISTER_EXCEEDS_OUTSTANDING,
    CHUNK_OUT_OF_RANGE,
    CHUNKS_MISMATCH,
    REGISTER_EXCEEDS_DECLARED,
    SIGNATURE_REQUIRED,
    UNKNOWN_CHANNEL,
    KEY_NOT_YET_VALID,
    KEY_REVOKED,
    BAD_SIGNATURE,
    FOREIGN_EVENT_ID,
    OUT_OF_SCOPE,
    DUPLICATE_KEY,
    UNKNOWN_KEY,
    IMPLAUSIBLE_TIME,
    INVALID_KEY,
    INVALID_AMENDMENT,
    OVER_ENTITLEMENT,
    RESERVED_TYPE,
)


def validate_vote_cast(
    meeting: Meeting, vote: VoteCast, key: ChannelKey | None = None, appended_at: datetime | None = None
) -> str | None:
    """Return the reason a vote.cast is rejected, or None when it is accepted.

    ``key``: the channel key that signed it (its signature already checked, S1-S3, S5, S6), for S4;
    ``appended_at``: the broker's append time of its record, for R12 on the broker's clock.
    """
    position = meeting.positions.get(vote.control_number)
    if position is None:
        return NOT_ENTITLED  # R1
    if key is not None and (reason := scope(key, vote, position)):
        return reason  # S4
    reason = timing.submission_late(meeting, vote.channel, vote.received_at, appended_at, vote.choices)
    if reason:
        return reason
    represented = vote.shares if vote.shares is not None else position.shares
    if represented > MAX_SHARES:
        return SHARES_OUT_OF_RANGE  # beyond any position (R2) too; named for what it is
    if represented > position.shares:
        return EXCEEDS_POSITION  # R2
    for item_id, choice in vote.choices.items():
        item = meeting.items.get(item_id)
        if item is None:
            return UNKNOWN_ITEM  # R4
        allowed = meeting.options[item_id]
        if isinstance(choice, str):
            if choice not in allowed:
                return INVALID_CHOICE  # R4
        else:
            if not allowed.issuperset(choice):
                return INVALID_CHOICE  # R4
            if any(shares > MAX_SHARES for shares in choice.values()):
                return SHARES_OUT_OF_RANGE  # an over-vote (R3) too; named for what it is
            if sum(choice.values()) > represented:
                return OVER_VOTE  # R3
        if vote.discretionary and not item.routine:
            return DISCRETIONARY_NOT_ALLOWED  # R10
    if vote.discretionary and position.kind != "beneficial":
        return DISCRETIONARY_NOT_ALLOWED  # R10: only a nominee votes uninstructed shares
    if vote.channel == "in_person" and position.kind == "beneficial" and not vote.legal_proxy_id:
        return NO_LEGAL_PROXY  # R8
    if vote.channel == "mail":
        return _signatures(position.holders, vote.signatures)  # R11
    return None


def validate_vote_revoked(
    meeting: Meeting, revoked: VoteRevoked, key: ChannelKey | None = None, appended_at: datetime | None = None
) -> str | None:
    """Return the reason a vote.revoked is rejected, or None when it is accepted (key, appended_at: as a vote.cast)."""
    position = meeting.positions.get(revoked.control_number)
    if position is None:
        return NOT_ENTITLED  # R1
    if key is not None and (reason := scope(key, revoked, position)):
        return reason  # S4
    return timing.submission_late(meeting, revoked.channel, revoked.received_at, appended_at)


def validate_proxy_substituted(
    meeting: Meeting,
    event: ProxySubstituted,
    key: ChannelKey | None = None,
    appended_at: datetime | None = None,
) -> str | None:
    """Return the reason a substitution is rejected, or None (key, appended_at: as votes).

    Only checks that need the meeting alone, so the decision does not depend on which other
    substitutions arrived first (R5). Whether the holder held, at ``executed_at``, what it passes on
    (R13) is decided over the set of accepted substitutions in R5 order by projections.proxies: an
    accepted substitution of someone holding none of it has no effect, and the proxy book says why.
    ``not_proxy_holder`` stays in REASONS for older logs but is no longer given.
    """
    # S4 first: a substitution has no position, so its scope does not wait for R1 (which is last here).
    if key is not None and (reason := scope(key, event, None)):
        return reason  # S4: only for the proxy holders the key names
    if meeting.closed_all_at is not None and event.received_at > meeting.closed_all_at:
        return POLL_CLOSED  # R12
    if timing.broker_late(meeting, appended_at, meeting.closed_all_at):
        return POLL_CLOSED  # R12 on the broker's clock
    if event.control_numbers and any(cn not in meeting.positions for cn in event.control_numbers):
        return NOT_ENTITLED  # R1
    return None


def validate_admin(meetings: dict[str, Meeting], event: AnyEvent, appended_at: datetime | None = None) -> str | None:
    """Return the reason a meeting administration event is rejected, or None.

    ``appended_at``: the broker's append time of its record, for an amendment's own time (``back_dated``).
    """
    meeting = meetings.get(event.meeting_id)
    if isinstance(event, MeetingScheduled):
        return DUPLICATE_MEETING if meeting is not None else validate_spec(event)
    if meeting is None:
        return UNKNOWN_MEETING
    if isinstance(event, ChannelKeyRegistered):
        return validate_key_registered(meeting, event)
    if isinstance(event, ChannelKeyRevoked):
        return validate_key_revoked(meeting, event)
    if isinstance(event, PositionsRecorded):
        if event.chunk in meeting.chunks:
            return DUPLICATE_CHUNK
        numbers = [p.control_number for p in event.positions]
        if len(set(numbers)) != len(numbers) or any(n in meeting.positions for n in numbers):
            return DUPLICATE_POSITION  # R1: a position's voting power is fixed at the record date
        return validate_chunk(meeting, event)
    if isinstance(event, PollsClosed) and event.items:
        if any(item_id not in meeting.items for item_id in event.items):
            return UNKNOWN_ITEM
    if isinstance(event, (MeetingAdjourned, CutoffChanged, MeetingCorrected)):
        return validate_amendment(meeting, event, appended_at)
    return None


def validate_amendment(
    meeting: Meeting, event: MeetingAdjourned | CutoffChanged | MeetingCorrected, appended_at: datetime | None = None
) -> str | None:
    """Return the reason an amendment is refused, or None (docs/rules.md, Amendments)."""
    if meeting.closed_all_at is not None or (meeting.items and meeting.items.keys() <= meeting.closed_item_at.keys()):
        return POLL_CLOSED  # R12: once the polls are closed on every item, the meeting as voted no longer changes
    if back_dated(meeting, event, appended_at):
        return INVALID_AMENDMENT  # an amendment takes effect from when it was logged on, never before (Amendments)
    if isinstance(event, MeetingAdjourned) and event.meeting_at.date() <= meeting.spec.record_date:
        # The record date stands, and the meeting is held strictly after it: the rule a meeting file is
        # loaded by (services/registers/meeting_file.py), so an adjournment cannot set a date a load refuses.
        return INVALID_AMENDMENT
    if isinstance(event, MeetingCorrected):
        ids = [item.id for item in event.items]
        if len(set(ids)) != len(ids):
            # Two corrections of one item in one event would tie on (effective_at, event_id), and the
            # recommendation in force would be chosen by string order, not by anything the event says.
            return INVALID_AMENDMENT
        if not (event.company or event.title or event.items):
            return INVALID_AMENDMENT  # a correction that corrects nothing
        for item in event.items:
            if item.id not in meeting.items:
                return UNKNOWN_ITEM  # R4
            if item.recommendation is not None and item.recommendation not in meeting.options[item.id]:
                return INVALID_CHOICE  # R4, R9: the card recommends one of the item's options
    return None


# The meeting tools stamp an amendment's effective_at (default: now) before publishing it, and the broker appends
# it a moment later (milliseconds on the local stack; up to the producer's request timeout, 40 s, when a broker is
# slow to answer): so much is allowed even to a meeting whose broker_grace_s is 0, whose default `meeting amend`
# would otherwise always be refused. Likewise from recorded_at, which a tool may stamp a few seconds after it
# fixed effective_at (the wire contract's examples: 4-5 s).
AMENDMENT_TRANSIT = timedelta(seconds=60)


def back_dated(
    meeting: Meeting, event: MeetingAdjourned | CutoffChanged | MeetingCorrected, appended_at: datetime | None
) -> bool:
    """Whether an amendment takes effect before it was logged (docs/rules.md, Amendments), on its own record alone.

    Logged: the broker's append time of its record, less the meeting's broker_grace_s (AMENDMENT_TRANSIT at
    least). With the broker's clock
    off (broker_grace_s None: simulations of past meetings) or a record without it (a CreateTime topic), the
    ``recorded_at`` the meeting tools write stands in; with neither, nothing tells, and it is accepted. A
    back-dated correction or cut-off would otherwise change votes already cast and counted, and items whose
    polls closed (the adversarial run of issue 12: audit verify said VERIFIED). It reads nothing but the
    amendment and its record, so the decision does not depend on what else was logged before (R5).
    """
    grace = meeting.spec.broker_grace_s
    if grace is not None and appended_at is not None:
        logged = appended_at
    elif event.recorded_at is not None:
        logged = event.recorded_at
    else:
        return False
    return event.effective_at < logged - max(timedelta(seconds=grace or 0), AMENDMENT_TRANSIT)


def validate_spec(spec: MeetingScheduled) -> str | None:
    """Return the reason a meeting.scheduled is refused for its numbers (shares, quorum, seats), or None."""
    if max(spec.outstanding, spec.quorum.numerator, spec.quorum.denominator) > MAX_SHARES:
        return SHARES_OUT_OF_RANGE
    if spec.quorum.numerator > spec.quorum.denominator:
        return INVALID_QUORUM  # R14: more than all outstanding shares can never be present
    members: dict[str, int] = {}
    for item in spec.items:
        members[item.group or item.id] = members.get(item.group or item.id, 0) + 1
    for item in spec.items:
        if item.seats is not None and not 1 <= item.seats <= members[item.group or item.id]:
            return INVALID_SEATS  # a plurality group fills at least one seat, at most one per nominee
    if spec.register is not None and spec.register.shares > spec.outstanding:
        # A declared register the judge could never complete (validate_chunk refuses positions over the
        # outstanding shares): report final would refuse it for ever, so refuse the meeting now.
        return REGISTER_EXCEEDS_OUTSTANDING
    return None


def validate_chunk(meeting: Meeting, chunk: PositionsRecorded) -> str | None:
    """Return the reason a register chunk is refused for its numbering or its shares, or None.

    The register may not hold more shares than are outstanding: with that, no sum of shares the
    tally keeps (present, any bucket) can exceed the outstanding shares, themselves <= MAX_SHARES.
    A declared register (spec.register) fixes the chunk count and caps positions and shares, so a
    complete register is exactly the declared one (Meeting.register_complete).
    """
    if chunk.chunks < 1 or not 0 <= chunk.chunk < chunk.chunks:
        return CHUNK_OUT_OF_RANGE
    declared = meeting.spec.register
    expected = declared.chunks if declared is not None else meeting.chunks_expected
    if expected is not None and chunk.chunks != expected:
        return CHUNKS_MISMATCH
    shares = [p.shares for p in chunk.positions] + [e.shares for e in chunk.entitlements]
    if any(n > MAX_SHARES for n in shares):
        return SHARES_OUT_OF_RANGE
    if meeting.recorded_shares + sum(p.shares for p in chunk.positions) > meeting.spec.outstanding:
        return REGISTER_EXCEEDS_OUTSTANDING
    if declared is not None and (
        len(meeting.positions) + len(chunk.positions) > declared.positions
        or meeting.recorded_shares + sum(p.shares for p in chunk.positions) > declared.shares
    ):
        return REGISTER_EXCEEDS_DECLARED
    return None


def _signatures(holders: list[str], signatures: list[str] | None) -> str | None:
    """R11: a mail card is signed, by every joint holder of a joint holding."""
    if not signatures or not any(s.strip() for s in signatures):
        return UNSIGNED
    if len(holders) < 2:
        return None  # a sole holder's card may be signed by an officer or attorney-in-fact
    signed = {s.strip().casefold() for s in signatures}
    if any(holder.strip().casefold() not in signed for holder in holders):
        return MISSING_JOINT_SIGNATURE
    return None

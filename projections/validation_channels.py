"""Channel authentication rules that need no signature check: S5, S1, S3, S6, S7 and the key administration.

Pure, no I/O (docs/rules.md, "Channel authentication"). S2, the signature, is the judge's
(projections.judge.Judge.signed, with its caches); S4, scope, is in projections.channels.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import nacl.bindings

from events import ChannelKeyRegistered, ChannelKeyRevoked, ProxySubstituted, VoteCast, VoteRevoked
from events.schema import CHANNEL_ID_PATTERN
from projections.meeting import Meeting

# Reason codes (docs/rules.md, docs/wire-contract.md; never renamed).
SIGNATURE_REQUIRED = "signature_required"  # S5: the meeting requires signatures and this has none
BAD_SIGNATURE = "bad_signature"  # S2: path, root, size or index inconsistent, or the Ed25519 signature fails
FOREIGN_EVENT_ID = "foreign_event_id"  # S6: an event_id in a channel's namespace "<channel_id>:", not signed by it
IMPLAUSIBLE_TIME = "implausible_time"  # S7: executed after it was received, or received after the broker appended it
DUPLICATE_KEY = "duplicate_key"  # a channel.key_registered of a (channel_id, key_id) already registered
UNKNOWN_KEY = "unknown_key"  # a channel.key_revoked of a key never registered
INVALID_KEY = "invalid_key"  # a channel.key_registered whose public key is no Ed25519 point of large order

_CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)

Signable = VoteCast | VoteRevoked | ProxySubstituted


def validate_channel(meeting: Meeting, event: Signable, at: datetime) -> str | None:
    """S5, S1 and S3 for a submission at submission time ``at``: a reason code or None (S2 is the judge's).

    The judge checks the signature (S2) after S3, then S6 and S7.
    """
    auth = event.auth
    if auth is None:
        return SIGNATURE_REQUIRED if meeting.spec.signatures_required else None  # S5
    return meeting.keys.check(auth, at)  # S1, S3


def namespace_of(event_id: str) -> str | None:
    """The channel whose namespace an event id lies in: "desk" for "desk:0042"; None for an id outside every one."""
    prefix, colon, _ = event_id.partition(":")
    return prefix if colon and _CHANNEL_ID.fullmatch(prefix) else None


def foreign_event_id(event: Signable) -> str | None:
    """S6: an event id "<channel_id>:<rest>" belongs to that channel; only a submission it signed may use it.

    A signed submission's id must lie in its own namespace; an unsigned one's in none, whatever the
    meeting (so no login can squat a channel's ids, which R18 holds for the whole log, in a meeting
    that does not require signatures). Ids without such a prefix (the demo's UUIDs) are unsigned ids.
    """
    owner = namespace_of(event.event_id)
    auth = event.auth
    if auth is None:
        return FOREIGN_EVENT_ID if owner is not None else None  # S6: unsigned, in a channel's namespace
    return None if owner == auth.channel_id else FOREIGN_EVENT_ID  # S6: signed, outside its own namespace


def implausible_time(meeting: Meeting, event: Signable, appended_at: datetime | None) -> str | None:
    """S7 (meetings that require signatures): executed_at <= received_at, and received_at <= appended_at + grace.

    R5 orders a holder's instructions by executed_at, so a post-dated one (2099) would stand against every
    later genuine one; and a received_at after the broker appended the record is a clock no one had.
    Meetings scheduled without signatures replay as they were judged.
    """
    if not meeting.spec.signatures_required:
        return None
    if event.executed_at > event.received_at:
        return IMPLAUSIBLE_TIME  # S7: executed after it was received
    grace = meeting.spec.broker_grace_s
    if grace is not None and appended_at is not None and event.received_at > appended_at + timedelta(seconds=grace):
        return IMPLAUSIBLE_TIME  # S7: received (by the channel's clock) after the broker appended it, beyond grace
    return None


def validate_key_registered(meeting: Meeting, event: ChannelKeyRegistered) -> str | None:
    """A registration's reason: invalid_key (a weak public key), duplicate_key, or None."""
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(bytes.fromhex(event.public_key)):
        # libsodium: a canonical encoding of a point on the curve, in the prime-order subgroup, not of small
        # order. An all-zero key or the identity (01 00..00) verifies no honest signature: a mistake or an attack.
        return INVALID_KEY
    if meeting.keys.get(event.channel_id, event.key_id) is not None:
        return DUPLICATE_KEY  # a key id names one key for good: rotation registers a new key id
    return None


def validate_key_revoked(meeting: Meeting, event: ChannelKeyRevoked) -> str | None:
    """A revocation's reason: unknown_key (never registered for the meeting), or None (a second one is fine: S3)."""
    return UNKNOWN_KEY if meeting.keys.get(event.channel_id, event.key_id) is None else None

"""The ledger's vocabulary: wire events (past-tense facts) and their single JSON codec."""

from events.codec import UPCASTERS, MalformedMessage, decode, decode_logged, encode, text_of
from events.schema import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AdminEvent,
    AnyEvent,
    Cutoffs,
    Entitlement,
    Event,
    Item,
    MeetingScheduled,
    PollsClosed,
    Position,
    PositionsRecorded,
    ProxySubstituted,
    Quorum,
    Submission,
    VoteCast,
    VoteRevoked,
)

__all__ = [
    "EVENT_TYPES", "SCHEMA_VERSION", "UPCASTERS", "AdminEvent", "AnyEvent", "Cutoffs", "Entitlement",
    "Event", "Item", "MalformedMessage", "MeetingScheduled", "PollsClosed", "Position",
    "PositionsRecorded", "ProxySubstituted", "Quorum", "Submission", "VoteCast", "VoteRevoked",
    "decode", "decode_logged", "encode",
]

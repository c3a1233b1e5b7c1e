"""Answers to channels (topic votes.decisions): what became of each submission. Part of the wire contract.

The ledger publishes one answer per submission it logged (``submission.decided``) and one per message
it parked whose event id it could read (``submission.parked``), exactly once, in log order. A channel
correlates them with its submissions by ``event_id`` and ``payload_sha256`` (the digest of the bytes it sent):
an event id alone can be claimed by anyone able to publish. A decided answer is the submission's receipt:
with ``position`` and ``hash`` (the log row's hash) a holder can ask for an inclusion proof
(``vote-ledger audit prove``) and check it against a published head without seeing any other vote.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from events.schema import Hex32

ANSWER_VERSION = 1


class Answer(msgspec.Struct, tag_field="type", kw_only=True, frozen=True, gc=False):
    """Base of every answer on votes.decisions."""

    v: int = ANSWER_VERSION
    event_id: str | None
    channel_id: str | None = None  # from the submission's auth, when signed (only what the submission claimed)
    # Hex SHA-256 of the message value exactly as the ledger received it: anyone may publish under
    # another's event id (a rejected or undecodable message), so a channel matches an answer on
    # event_id AND this digest of the bytes it sent. None only for a message with no value.
    payload_sha256: Hex32 | None = None


class SubmissionDecided(Answer, tag="submission.decided", kw_only=True, frozen=True):
    """The ledger logged the submission: accepted, or rejected with a reason code (docs/wire-contract.md)."""

    meeting_id: str
    control_number: str | None = None
    decision: Literal["accepted", "rejected"]
    reason: str | None = None
    position: int  # the row's position in the log
    hash: Hex32  # the row's hash: the meeting's chain head at ``position``, and the row's Merkle leaf data


class SubmissionParked(Answer, tag="submission.parked", kw_only=True, frozen=True):
    """The ledger could not decode the message and parked it, with the decoder's reason (nothing logged)."""

    reason: str
    detail: str
    parked_id: int
    source_topic: str
    source_partition: int
    source_offset: int


AnyAnswer = SubmissionDecided | SubmissionParked
ANSWER_TYPES: dict[str, type[Answer]] = {"submission.decided": SubmissionDecided, "submission.parked": SubmissionParked}

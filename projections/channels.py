"""A meeting's channel keys over time, and what each key may submit (docs/rules.md S1, S3, S4). Pure, no I/O.

Meeting administration registers a channel's Ed25519 key (channel.key_registered) and revokes it
(channel.key_revoked), each effective from its ``effective_at``; rotation is a new key id registered,
then the old one revoked. A key's validity is judged at the submission's time: the broker's append
time when the record has one, else the channel's ``received_at`` (projections.judge.Received).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import nacl.signing

from events import (
    ChannelAuth,
    ChannelKeyRegistered,
    ChannelKeyRevoked,
    Position,
    ProxySubstituted,
    VoteCast,
    VoteRevoked,
)
from projections import signing

# Reason codes (docs/rules.md; never renamed).
UNKNOWN_CHANNEL = "unknown_channel"  # S1
KEY_NOT_YET_VALID = "key_not_yet_valid"  # S3
KEY_REVOKED = "key_revoked"  # S3
OUT_OF_SCOPE = "out_of_scope"  # S4


@dataclass
class ChannelKey:
    """One registered key: its public half, its scope, and when it is in force."""

    registered: ChannelKeyRegistered
    revoked_at: datetime | None = None  # the earliest effective_at of its revocations
    # nominees and proxy holders as sets: scope is checked for every submission.
    nominees: frozenset[str] | None = None
    proxy_holders: frozenset[str] = frozenset()
    _verify_key: nacl.signing.VerifyKey | None = field(default=None, repr=False)

    @property
    def public_key(self) -> str:
        """The Ed25519 public key, hex."""
        return self.registered.public_key

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The key ready to verify (built once: about as costly as a few hashes)."""
        if self._verify_key is None:
            self._verify_key = signing.verify_key(self.public_key)
        return self._verify_key


@dataclass
class KeyBook:
    """A meeting's channel keys, by (channel_id, key_id)."""

    keys: dict[tuple[str, str], ChannelKey] = field(default_factory=dict)

    def get(self, channel_id: str, key_id: str) -> ChannelKey | None:
        """The key registered under this channel and key id, if any."""
        return self.keys.get((channel_id, key_id))

    def register(self, event: ChannelKeyRegistered) -> None:
        """Add an accepted registration (validation refused a second one of the same key: duplicate_key)."""
        self.keys[event.channel_id, event.key_id] = ChannelKey(
            event,
            nominees=None if event.nominees is None else frozenset(event.nominees),
            proxy_holders=frozenset(event.proxy_holders),
        )

    def revoke(self, event: ChannelKeyRevoked) -> None:
        """Apply an accepted revocation; of several, the earliest effective time holds (S3)."""
        key = self.keys[event.channel_id, event.key_id]
        if key.revoked_at is None or event.effective_at < key.revoked_at:
            key.revoked_at = event.effective_at

    def check(self, auth: ChannelAuth, at: datetime) -> str | None:
        """Whether auth names a key in force at ``at``: a reason code (S1, S3) or None."""
        key = self.get(auth.channel_id, auth.key_id)
        if key is None:
            return UNKNOWN_CHANNEL  # S1: no such key registered for this meeting
        if at < key.registered.effective_at:
            return KEY_NOT_YET_VALID  # S3: registered, not yet in force
        if key.revoked_at is not None and key.revoked_at <= at:
            return KEY_REVOKED  # S3: revoked from effective_at on (inclusive)
        return None


def scope(key: ChannelKey, event: VoteCast | VoteRevoked | ProxySubstituted, position: Position | None) -> str | None:
    """S4: out_of_scope unless the key may submit this: its channel kind, the position's nominee, the proxy holder.

    ``position`` is the submission's record-date position (None for a substitution).
    """
    if isinstance(event, ProxySubstituted):
        return None if event.proxy_holder in key.proxy_holders else OUT_OF_SCOPE  # S4: named proxy holders only
    if event.channel not in key.registered.kinds:
        return OUT_OF_SCOPE  # S4: e.g. the ballot desk signs only in_person
    if key.nominees is not None:
        # S4: a broker's platform votes only beneficial positions held through the DTC participants it serves.
        if position is None or position.kind != "beneficial" or position.nominee not in key.nominees:
            return OUT_OF_SCOPE
    return None

"""The ledger's decision on each incoming event, with the meeting state it needs. Pure, no I/O."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from events import (
    ADMIN_EVENTS,
    LEDGER_EVENTS,
    AnyEvent,
    ChannelAuth,
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
from projections import merkle, signing, validation, validation_channels
from projections.channels import ChannelKey
from projections.meeting import Meeting
from projections.proxies import ProxyBook

# Verified batch signatures kept, oldest first out (FIFO): a channel's batches are judged close together
# (one Kafka batch usually holds a whole signed batch), so a few thousand cover every batch in flight many
# times over; each entry retains ~510 bytes (tracemalloc, 4,096 entries: 2.1 MB). An evicted batch is only
# verified again (about 50 us), never decided otherwise.
SIGNATURE_CACHE = 4096
# Proven nodes of the signed trees seen lately (merkle.ProvenTree), oldest tree first out, at most this many
# in all, each tree also counted as TREE_COST nodes for its own overhead: a submission's path is hashed only
# up to a node another member of its batch proved. A batch of one keeps no tree (it could help no one).
# Measured with tracemalloc at the bound (nodes, trees and the strings they retain, verified cache apart):
# batches of 2 ~21 MB (20,000 trees of 3 nodes); of 16 ~16 MB; of 256 ~170 bytes a node, so ~17 MB. Counted
# by nodes alone, batches of 2 would take ~29 MB (33,000 trees of ~860 bytes) and batches of one ~75 MB
# (100,000 trees of one node, review L4), which is why a tree costs TREE_COST and a batch of one keeps none.
# Measured (batch of 1,000 votes of 1.3 kB, paths of 10 hashes, process CPU time on this 2-core machine
# under a load of ~5, so absolute figures are ~2-3x an idle one's): canonical bytes 5.0 us, + leaf hash
# 5.9 us, + RFC 9162 path verification 17.6 us (12.1 us for the path alone), path through a ProvenTree
# 5.1 us; Ed25519 ~200 us under that load, once per batch; judge() of a signed submission 20 us against
# 2.1 us unsigned (timeit-style minimum of 25 runs over the batch, per submission).
PROVEN_NODES = 100_000
TREE_COST = 2  # a tree's own overhead (~360 bytes: the object, its dict, its key) in nodes of ~170 bytes


@dataclass(frozen=True, slots=True)
class Received:
    """A submission as it came in: the payload text its channel signed, and the broker's append time of its record."""

    payload: str | bytes
    appended_at: datetime | None = None


@dataclass
class Judge:
    """Decides accepted/rejected for every event and keeps the admin state decisions depend on."""

    meetings: dict[str, Meeting] = field(default_factory=dict)
    # Who holds each meeting's proxies over time: named proxies and their substitutes (R13).
    proxies: dict[str, ProxyBook] = field(default_factory=dict)
    # False: keep no proxy book. No decision reads one (R13's "current holder at the time" is decided over
    # the set by the book itself, not at ingest), so the ledger and the projector, which never ask who holds
    # a proxy, keep nothing per accepted substitution; the read side (proxies report) keeps them.
    proxy_books: bool = True
    # (public key, batch size, root, signature) -> whether Ed25519 verified it: one verification per
    # batch instead of one per submission (S2). Keyed by the public key, not the key id: key ids are
    # per meeting, and the result is a pure function of these four, so caching it changes no decision.
    verified: OrderedDict[tuple[str, int, str, str], bool] = field(default_factory=OrderedDict)
    # (root, batch size) -> the nodes of that signed tree proven so far, oldest first; proven_nodes counts them
    # and TREE_COST per tree.
    trees: OrderedDict[tuple[str, int], merkle.ProvenTree] = field(default_factory=OrderedDict)
    proven_nodes: int = 0

    def judge(self, event: AnyEvent, received: Received | None = None) -> str | None:
        """Return the rejection reason, or None; an accepted admin event updates the state.

        ``received``: the payload as received (to check a signature, S2) and the broker's append time
        (S3, R12; for an amendment, when it was logged). Without it a signed submission cannot be verified:
        bad_signature.
        """
        if isinstance(event, LEDGER_EVENTS):
            return (
                validation.RESERVED_TYPE
            )  # only the ledger writes vote.refused/vote.reinstated rows (projections/refusals.py)
        if event.event_id.startswith(validation.LEDGER_ID_PREFIX):
            # The ledger's own rows' ids (ledger:refused:<id>): ids are unique per meeting, so a channel's
            # row under one would take the id of a refusal the ledger has yet to write.
            return validation.RESERVED_TYPE
        if isinstance(event, ADMIN_EVENTS):
            # An amendment may not take effect before the broker appended its record (docs/rules.md, Amendments).
            reason = validation.validate_admin(self.meetings, event, received.appended_at if received else None)
            if reason is None:
                self.apply_accepted(event)
            return reason
        assert isinstance(event, (VoteCast, VoteRevoked, ProxySubstituted))
        meeting = self.meetings.get(event.meeting_id)
        if meeting is None:
            return validation.UNKNOWN_MEETING
        appended_at = received.appended_at if received is not None else None
        # The submission's time for key validity (S3): the broker's clock when the record has it.
        at = appended_at if appended_at is not None else event.received_at
        reason = validation_channels.validate_channel(meeting, event, at)  # S5, S1, S3
        if reason:
            return reason
        key = None
        if event.auth is not None:
            key = meeting.keys.get(event.auth.channel_id, event.auth.key_id)
            assert key is not None  # S1 passed
            if received is None or not self.signed(received.payload, event.auth, key):
                return validation_channels.BAD_SIGNATURE  # S2
        reason = validation_channels.foreign_event_id(event)  # S6: signed or not, an id in a channel's namespace
        if reason:
            return reason
        reason = validation_channels.implausible_time(meeting, event, appended_at)  # S7
        if reason:
            return reason
        if isinstance(event, VoteCast):
            return validation.validate_vote_cast(meeting, event, key, appended_at)
        if isinstance(event, VoteRevoked):
            return validation.validate_vote_revoked(meeting, event, key, appended_at)
        reason = validation.validate_proxy_substituted(meeting, event, key, appended_at)
        if reason is None:
            self.apply_accepted(event)
        return reason

    def signed(self, payload: str | bytes, auth: ChannelAuth, key: ChannelKey) -> bool:
        """S2: the key signed (batch size, root), and the payload's leaf and path give that root.

        Both caches only save work: a result is always what signing.verify(payload, auth, key) gives.
        The signature comes first so that only signed trees take room in ``trees``.
        """
        batch = (key.public_key, auth.batch_size, auth.root, auth.signature)
        holds = self.verified.get(batch)
        if holds is None:
            holds = signing.signature_holds(key.verify_key, auth)  # one Ed25519 verification per batch
            self.verified[batch] = holds
            if len(self.verified) > SIGNATURE_CACHE:
                self.verified.popitem(last=False)
        if not holds:
            return False
        try:
            leaf = signing.leaf_of(payload)
        except ValueError:
            return False  # not a JSON object it can have signed
        if not signing.hex_holds(*auth.path):
            return False  # S2: a path not in lowercase hex (signature and root: checked with the signature)
        if auth.batch_size == 1:
            # A batch of one (RFC 9162): its root is its leaf, its path empty. A tree would hold one node that
            # no later path can use, at ~750 bytes each (review L4), so none is kept.
            return auth.leaf_index == 0 and not auth.path and leaf == bytes.fromhex(auth.root)
        tree = self.trees.get((auth.root, auth.batch_size))
        if tree is None:
            tree = merkle.ProvenTree(auth.batch_size, bytes.fromhex(auth.root), max_nodes=PROVEN_NODES)
            self.trees[auth.root, auth.batch_size] = tree
            self.proven_nodes += TREE_COST
        before = len(tree.nodes)
        proven = tree.verify(leaf, auth.leaf_index, auth.path)  # about two hashes once a batch-mate proved its path
        self.proven_nodes += len(tree.nodes) - before
        while self.proven_nodes > PROVEN_NODES and len(self.trees) > 1:
            self.proven_nodes -= len(self.trees.popitem(last=False)[1].nodes) + TREE_COST
        return proven

    def apply_accepted(self, event: AnyEvent) -> None:
        """Apply an event already accepted (also used to rebuild the state from the log)."""
        if isinstance(event, MeetingScheduled):
            self.meetings[event.meeting_id] = Meeting.scheduled(event)
            if self.proxy_books:
                self.proxies[event.meeting_id] = ProxyBook(event.named_proxies)
        elif isinstance(event, PositionsRecorded):
            self.meetings[event.meeting_id].record_positions(event)
        elif isinstance(event, PollsClosed):
            self.meetings[event.meeting_id].close_polls(event)
            if self.proxy_books:  # a substitution received after the polls closed on every item: no effect (R12)
                self.proxies[event.meeting_id].close_polls(self.meetings[event.meeting_id].polls_closed_at)
        elif isinstance(event, ChannelKeyRegistered):
            self.meetings[event.meeting_id].keys.register(event)
        elif isinstance(event, ChannelKeyRevoked):
            self.meetings[event.meeting_id].keys.revoke(event)
        elif isinstance(event, ProxySubstituted) and self.proxy_books:
            self.proxies[event.meeting_id].apply(event)
        elif isinstance(event, MeetingAdjourned):
            self.meetings[event.meeting_id].adjourn(event)
        elif isinstance(event, CutoffChanged):
            self.meetings[event.meeting_id].change_cutoff(event)  # R12 as amended
        elif isinstance(event, MeetingCorrected):
            self.meetings[event.meeting_id].correct(event)  # R9 as amended

"""Channel authentication (docs/rules.md S1-S6): keys over time, signatures, scope, and R12 on the broker's clock."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import ChannelKeyRegistered, ChannelKeyRevoked, PollsClosed, ProxySubstituted, decode, encode
from projections import signing, validation
from projections.chain_walk import ChainWalk
from projections.judge import SIGNATURE_CACHE, TREE_COST, Judge, Received
from projections.log_row import chained_records, log_row_of
from tests.chain_helpers import RECORDED, as_chain_row
from tests.factories import at, cast, register_event, revoke, small_meeting

DESK = bytes(range(32)).hex()  # fixed test keys, never a real channel's
BROKER = bytes(range(1, 33)).hex()
OTHER = bytes(range(2, 34)).hex()
_ids = itertools.count(1)


def key_registered(channel_id: str, key_id: str, private: str, kinds: list[str], effective: float = -24, **fields):
    return ChannelKeyRegistered(
        event_id=f"key-{channel_id}-{key_id}-{next(_ids)}",
        meeting_id=fields.pop("meeting_id", "m1"),
        channel_id=channel_id,
        key_id=key_id,
        public_key=signing.public_key_of(private),
        kinds=kinds,
        effective_at=at(effective),
        **fields,
    )


def key_revoked(channel_id: str, key_id: str, effective: float | datetime, **fields):
    return ChannelKeyRevoked(
        event_id=f"revoke-{channel_id}-{key_id}-{next(_ids)}",
        meeting_id="m1",
        channel_id=channel_id,
        key_id=key_id,
        effective_at=effective if isinstance(effective, datetime) else at(effective),
        **fields,
    )


def judge(**spec) -> Judge:
    """A judge of the small meeting, signatures required, with a desk, a broker platform and a ballot desk."""
    j = Judge()
    admin = [
        small_meeting(**{"signatures_required": True, "broker_grace_s": 60, **spec}),
        register_event(),
        key_registered("desk", "k1", DESK, ["internet", "phone", "mail"], proxy_holders=["Ann Proxy"]),
        key_registered("bx", "b1", BROKER, ["broker"], nominees=["Broker X"]),
        key_registered("ballot", "d1", OTHER, ["in_person"]),
    ]
    for event in admin:
        assert j.judge(event) is None, event
    return j


def signed(events, channel_id="desk", key_id="k1", private=DESK, appended_at=None) -> list[tuple[object, Received]]:
    """The events signed as one batch, decoded as the ledger reads them, with what it received."""
    return [
        (decode(payload), Received(payload.decode(), appended_at))
        for payload in signing.sign_batch(events, channel_id, key_id, private)
    ]


def vote(cn="R-1", channel="internet", prefix="desk", **fields):
    return cast(cn, {"2": "for"}, channel=channel, event_id=f"{prefix}:{next(_ids)}", **fields)


def one(event, **kw) -> str | None:
    [(decoded, received)] = signed([event], **{k: v for k, v in kw.items() if k != "judge"})
    return kw.get("judge", judge()).judge(decoded, received)


def test_s5_an_unsigned_submission_is_refused_where_the_meeting_requires_signatures_and_accepted_elsewhere():
    assert judge().judge(vote()) == validation.SIGNATURE_REQUIRED
    optional = Judge()
    for event in (small_meeting(), register_event()):
        optional.judge(event)
    assert optional.judge(cast("R-1", {"2": "for"})) is None  # an id outside every channel's namespace (S6)
    assert optional.judge(vote()) == validation.FOREIGN_EVENT_ID  # "desk:...", unsigned: S6 in every meeting


def test_a_signed_submission_of_a_registered_key_in_scope_is_accepted_and_a_whole_batch_too():
    j = judge()
    batch = signed([vote(cn) for cn in ("R-1", "R-2", "R-1", "R-2")])
    assert [j.judge(event, received) for event, received in batch] == [None] * 4
    assert len(j.verified) == 1  # one Ed25519 verification for the whole batch


def test_s1_a_key_not_registered_for_the_meeting_is_an_unknown_channel():
    assert one(vote(prefix="nobody"), channel_id="nobody") == validation.UNKNOWN_CHANNEL
    assert one(vote(), key_id="k2") == validation.UNKNOWN_CHANNEL  # the channel, but not that key id
    assert one(vote(prefix="bx"), channel_id="bx", key_id="k1") == validation.UNKNOWN_CHANNEL  # key ids are per channel
    other_meeting = judge()
    other_meeting.judge(small_meeting(event_id="meeting-2", meeting_id="m2", signatures_required=True))
    other_meeting.judge(register_event(meeting_id="m2"))
    assert one(vote(meeting_id="m2"), judge=other_meeting) == validation.UNKNOWN_CHANNEL  # keys are per meeting


def test_s3_a_key_is_in_force_from_its_effective_time_judged_on_the_broker_clock_when_there_is_one():
    j = judge()
    j.judge(key_registered("desk", "k2", OTHER, ["internet"], effective=10))
    before, after = vote(received=9.9), vote(received=10)
    assert one(before, key_id="k2", private=OTHER, judge=j) == validation.KEY_NOT_YET_VALID
    assert one(after, key_id="k2", private=OTHER, judge=j) is None
    # The broker's append time, not the channel's received_at, says when it was submitted.
    assert one(vote(received=10), key_id="k2", private=OTHER, appended_at=at(9.9), judge=j) == "key_not_yet_valid"
    assert one(vote(received=9.9), key_id="k2", private=OTHER, appended_at=at(10), judge=j) is None


def test_s3_rotation_the_old_key_is_revoked_from_the_revocations_effective_time_inclusive_and_the_new_one_takes_over():
    j = judge()
    assert j.judge(key_registered("desk", "k2", OTHER, ["internet"], effective=5)) is None
    assert j.judge(key_revoked("desk", "k1", 5, reason="rotation")) is None
    assert one(vote(received=5), judge=j) == validation.KEY_REVOKED
    assert one(vote(received=5 - 1e-9), judge=j) is None  # a microsecond before: still in force
    assert one(vote(received=5), key_id="k2", private=OTHER, judge=j) is None
    # A later revocation of the same key does not move its end later; an earlier one moves it earlier.
    assert j.judge(key_revoked("desk", "k1", 8)) is None
    assert one(vote(received=6), judge=j) == validation.KEY_REVOKED
    assert j.judge(key_revoked("desk", "k1", 3)) is None
    assert one(vote(received=4), judge=j) == validation.KEY_REVOKED
    # The broker's clock decides here too.
    assert one(vote(received=2), appended_at=at(3), judge=j) == validation.KEY_REVOKED


def test_s2_a_forged_signature_an_altered_submission_a_bad_path_or_nothing_to_verify_is_a_bad_signature():
    j = judge()
    [(event, received)] = signed([vote()])
    assert j.judge(event, None) == validation.BAD_SIGNATURE  # nothing to check the signature against
    raw = json.loads(received.payload)
    raw["choices"] = {"2": "against"}
    assert j.judge(decode(json.dumps(raw)), Received(json.dumps(raw))) == validation.BAD_SIGNATURE
    # Signed by another key under the registered key id (a key swapped by whoever signed).
    [(forged, got)] = signed([vote()], private=OTHER)
    assert j.judge(forged, got) == validation.BAD_SIGNATURE
    batch = signed([vote(), vote(), vote()])
    event, received = batch[1]
    auth = event.auth
    for bad in (
        replace_auth(event, path=list(reversed(auth.path))),
        replace_auth(event, leaf_index=2),
        replace_auth(event, batch_size=2),
        replace_auth(event, root=batch[0][0].auth.path[0]),
    ):
        text = encode(bad).decode()
        assert j.judge(decode(text), Received(text)) == validation.BAD_SIGNATURE
    assert j.judge(event, received) is None


def replace_auth(event, **fields):
    return msgspec.structs.replace(event, auth=msgspec.structs.replace(event.auth, **fields))


def test_s6_a_signed_event_id_must_be_in_its_channels_namespace():
    assert one(vote(prefix="bx")) == validation.FOREIGN_EVENT_ID
    assert one(vote(prefix="desk2")) == validation.FOREIGN_EVENT_ID  # "desk2:..." is not "desk:..."
    assert one(vote(prefix="desk")) is None


def test_s4_a_key_submits_only_its_channel_kinds():
    assert one(vote(channel="in_person")) == validation.OUT_OF_SCOPE  # the desk may not cast ballots
    ballot = vote("R-1", channel="in_person", prefix="ballot")
    assert one(ballot, channel_id="ballot", key_id="d1", private=OTHER) is None
    internet = vote("R-1", channel="internet", prefix="ballot")
    assert one(internet, channel_id="ballot", key_id="d1", private=OTHER) == validation.OUT_OF_SCOPE
    revoked = revoke("R-1", executed=1, channel="in_person", event_id="desk:r1")
    assert one(revoked) == validation.OUT_OF_SCOPE


def test_s4_a_broker_platform_votes_only_beneficial_positions_of_the_nominees_it_serves():
    kw = {"channel_id": "bx", "key_id": "b1", "private": BROKER}
    assert one(vote("B-1", channel="broker", prefix="bx"), **kw) is None
    assert one(vote("R-1", channel="broker", prefix="bx"), **kw) == validation.OUT_OF_SCOPE  # registered holder
    j = judge()
    j.judge(key_registered("bx", "b2", OTHER, ["broker"], nominees=["Broker Y"]))
    assert one(vote("B-1", channel="broker", prefix="bx"), channel_id="bx", key_id="b2", private=OTHER, judge=j) == (
        validation.OUT_OF_SCOPE
    )


def substitution(holder="Ann Proxy", prefix="desk", received=2.0):
    return ProxySubstituted(
        event_id=f"{prefix}:{next(_ids)}",
        meeting_id="m1",
        proxy_holder=holder,
        substitute="Sue Sub",
        executed_at=at(received),
        received_at=at(received),
    )


def test_s4_a_substitution_only_for_the_proxy_holders_the_key_names():
    assert one(substitution("Bob Proxy")) == validation.OUT_OF_SCOPE
    assert one(substitution("Ann Proxy")) is None
    assert one(substitution("Ann Proxy", prefix="bx"), channel_id="bx", key_id="b1", private=BROKER) == "out_of_scope"


def test_the_checks_run_in_the_designs_order():
    j = judge()
    # S1 before R1: an unknown channel for an unknown control number.
    assert one(vote("R-9", prefix="nobody"), channel_id="nobody", judge=j) == validation.UNKNOWN_CHANNEL
    # S3 before S2: a revoked key's forged signature is reported revoked.
    j.judge(key_revoked("desk", "k1", 1))
    assert one(vote(received=2), private=OTHER, judge=j) == validation.KEY_REVOKED
    # S2 before S6, S6 before R1, R1 before S4.
    assert one(vote(prefix="bx"), private=OTHER) == validation.BAD_SIGNATURE
    assert one(vote("R-9", prefix="bx")) == validation.FOREIGN_EVENT_ID
    assert one(vote("R-9", channel="in_person")) == validation.NOT_ENTITLED
    # S4 before the rest (R12): an out-of-scope late vote is out of scope.
    assert one(vote(channel="in_person", received=24 * 31)) == validation.OUT_OF_SCOPE


def test_r12_on_the_broker_clock_a_late_record_is_refused_whatever_its_received_at_says():
    cutoff = at(24 * 29)  # the small meeting's internet and phone cut-off; grace 60 s
    early = 24 * 29 - 1
    assert one(vote(received=early), appended_at=cutoff + timedelta(seconds=60)) is None  # within the grace
    assert one(vote(received=early), appended_at=cutoff + timedelta(seconds=61)) == validation.CUTOFF_PASSED
    assert one(vote(received=early)) is None  # no broker time: the channel's clock alone
    no_grace = judge(broker_grace_s=None)
    assert one(vote(received=early), appended_at=cutoff + timedelta(days=1), judge=no_grace) is None
    assert (
        one(vote(received=early, channel="mail", signatures=["Alice"]), appended_at=cutoff + timedelta(hours=1)) is None
    )
    j = judge()
    j.judge(PollsClosed(event_id="close", meeting_id="m1", closed_at=at(48)))
    late = at(49)  # an hour after the close at 48 h (grace 60 s), long before the cut-off
    assert one(vote(received=47, channel="mail", signatures=["Alice"]), appended_at=late, judge=j) == "poll_closed"
    assert one(substitution(received=47), appended_at=late, judge=j) == validation.POLL_CLOSED
    assert one(substitution(received=47), appended_at=at(48) + timedelta(seconds=30), judge=j) is None


def test_r12_on_the_broker_clock_after_a_per_item_closure():
    j = judge()
    j.judge(PollsClosed(event_id="close-2", meeting_id="m1", closed_at=at(48), items=["2"]))  # the item vote() marks
    assert one(vote(received=47), appended_at=at(48) + timedelta(seconds=61), judge=j) == validation.POLL_CLOSED
    assert one(vote(received=47), appended_at=at(48) + timedelta(seconds=59), judge=j) is None


def test_key_administration_refuses_a_second_registration_of_a_key_and_revoking_an_unknown_one():
    j = judge()
    assert j.judge(key_registered("desk", "k1", OTHER, ["internet"])) == validation.DUPLICATE_KEY
    assert j.judge(key_revoked("desk", "k9", 1)) == validation.UNKNOWN_KEY
    assert j.judge(key_revoked("bx", "k1", 1)) == validation.UNKNOWN_KEY
    assert j.judge(key_registered("desk", "k9", OTHER, ["internet"], meeting_id="m9")) == validation.UNKNOWN_MEETING
    assert j.judge(key_revoked("desk", "k1", 1)) is None
    # A refused registration changed nothing: k1 is still the desk's key, and revoked from 1 h.
    assert one(vote(executed=0.5, received=0.5), judge=j) is None and one(vote(received=1), judge=j) == "key_revoked"


def test_every_channel_reason_code_is_in_the_public_vocabulary():
    codes = {
        "signature_required",
        "unknown_channel",
        "key_not_yet_valid",
        "key_revoked",
        "bad_signature",
        "foreign_event_id",
        "out_of_scope",
        "key_mismatch",
        "duplicate_key",
        "unknown_key",
    }
    assert codes <= set(validation.REASONS) and len(set(validation.REASONS)) == len(validation.REASONS)


def mixed_batch(n: int) -> list[tuple[object, Received]]:
    """A signed batch with decisions of every kind: accepted, out of scope, not entitled, foreign, tampered.

    One substitution at most: a second one by the same proxy holder depends on the first (R13), by design.
    """
    events = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            events.append(vote("R-1"))
        elif kind == 1:
            events.append(vote("R-1", channel="in_person"))
        elif kind == 2:
            events.append(vote("R-9"))
        elif kind == 3:
            events.append(vote("R-2", prefix="bx"))
        elif i == 4:
            events.append(substitution())
        else:
            events.append(revoke("R-2", executed=1, channel="internet", event_id=f"desk:{next(_ids)}"))
    batch = signed(events)
    tampered = json.loads(batch[-1][1].payload)
    tampered["received_at"] = at(3).isoformat()
    text = json.dumps(tampered)
    return [*batch[:-1], (decode(text), Received(text))]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.randoms(use_true_random=False))
def test_r5_decisions_on_a_signed_batch_do_not_depend_on_the_order_its_submissions_are_judged(n, rng):
    batch = mixed_batch(n)
    in_order = {e.event_id: judge().judge(e, r) for e, r in batch}
    shuffled = list(batch)
    rng.shuffle(shuffled)
    j = judge()
    assert {e.event_id: j.judge(e, r) for e, r in shuffled} == in_order
    assert in_order[batch[-1][0].event_id] == validation.BAD_SIGNATURE


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.lists(st.integers(0, 15), max_size=30))
def test_judging_a_submission_again_gives_the_same_decision_whatever_the_cache_holds(n, again):
    batch = mixed_batch(n)
    j = judge()
    first = [j.judge(e, r) for e, r in batch]
    for i in again:
        e, r = batch[i % n]
        if not isinstance(e, ProxySubstituted):  # an accepted substitution changes the state (R13), by design
            assert j.judge(e, r) == first[i % n]
    fresh = judge()
    fresh.verified.clear()
    assert [fresh.judge(e, r) for e, r in batch] == first


def test_the_cache_of_verified_batches_is_bounded_and_an_evicted_batch_is_verified_again(monkeypatch):
    verifications = []

    def counted(key, auth):
        verifications.append(auth.root)
        return real(key, auth)

    real = signing.signature_holds
    monkeypatch.setattr(signing, "signature_holds", counted)  # the real check, counted
    j = judge()
    batches = [signed([vote()]) for _ in range(SIGNATURE_CACHE + 5)]
    assert all(j.judge(e, r) is None for b in batches for e, r in b)
    assert len(j.verified) == SIGNATURE_CACHE and len(verifications) == SIGNATURE_CACHE + 5
    [(kept, kept_received)] = batches[-1]
    assert j.judge(kept, kept_received) is None and len(verifications) == SIGNATURE_CACHE + 5  # cached: not again
    [(event, received)] = batches[0]  # the oldest: evicted
    assert j.judge(event, received) is None and len(j.verified) == SIGNATURE_CACHE
    assert len(verifications) == SIGNATURE_CACHE + 6 and verifications[-1] == event.auth.root  # verified again


def test_a_batch_of_one_keeps_no_proven_tree_and_larger_ones_count_their_overhead_in_the_bound():
    j = judge()
    for _ in range(3):
        [(event, received)] = signed([vote()])
        assert j.judge(event, received) is None
    assert not j.trees and j.proven_nodes == 0  # review L4: a tree of one node helps no later path
    for event, received in signed([vote(), vote()]):
        assert j.judge(event, received) is None
    [tree] = j.trees.values()
    assert j.proven_nodes == len(tree.nodes) + TREE_COST
    # A batch of one is still verified as RFC 9162 has it: index 0, an empty path, the root its own leaf.
    [(event, received)] = signed([vote()])
    for bad in (replace_auth(event, leaf_index=1), replace_auth(event, path=[event.auth.root])):
        text = encode(bad).decode()
        assert j.judge(decode(text), Received(text)) == validation.BAD_SIGNATURE


def test_a_failed_signature_is_remembered_as_failed_so_a_forged_batch_costs_one_verification():
    j = judge()
    forged = signed([vote() for _ in range(20)], private=OTHER)
    assert {j.judge(e, r) for e, r in forged} == {validation.BAD_SIGNATURE}
    assert list(j.verified.values()) == [False]


def walk_rows(events_with_received, decisions):
    rows = []
    for (event, received), (decision, reason) in zip(events_with_received, decisions, strict=True):
        payload = received.payload if received is not None else encode(event).decode()
        rows.append(
            log_row_of(
                event,
                payload,
                decision,
                reason,
                ("votes.submissions", 0, len(rows)),
                None if received is None else received.appended_at,
            )
        )
    return [as_chain_row(r) for r in chained_records(rows, 0, {}, RECORDED)]


def walked(rows):
    walk = ChainWalk()
    for r in rows:
        walk.feed(r, decode(r.payload))
    return walk


def audited_log(appended_at=None):
    admin = [
        small_meeting(signatures_required=True, broker_grace_s=60),
        register_event(),
        key_registered("desk", "k1", DESK, ["internet"]),
    ]
    batch = signed([vote("R-1"), vote("R-2"), vote("R-1", channel="in_person")], appended_at=appended_at)
    items = [(e, None) for e in admin] + batch
    decisions = [("accepted", None)] * 5 + [("rejected", "out_of_scope")]
    return items, decisions


def test_an_audit_walk_re_verifies_every_signature_against_the_keys_in_force():
    items, decisions = audited_log(appended_at=at(2))
    walk = walked(walk_rows(items, decisions))
    assert walk.chain_break is None and walk.misjudged is None


def test_an_audit_walk_names_a_forged_signature_and_a_key_swapped_after_the_fact():
    items, decisions = audited_log()
    event, received = items[3]
    forged = replace_auth(event, signature="0" * 128)
    items_forged = [*items[:3], (forged, Received(encode(forged).decode())), *items[4:]]
    walk = walked(walk_rows(items_forged, decisions))  # re-hashed: the chain cannot see it
    assert walk.chain_break is None and walk.misjudged.position == 4 and "bad_signature" in walk.misjudged.detail
    swapped = [*items[:2], (key_registered("desk", "k1", OTHER, ["internet"]), None), *items[3:]]
    walk = walked(walk_rows(swapped, decisions))
    assert walk.chain_break is None and walk.misjudged.position == 4


def test_an_audit_walk_takes_a_key_mismatch_as_recorded_and_a_moved_broker_time_as_misjudged():
    items, decisions = audited_log()
    decisions = [*decisions[:4], ("rejected", "key_mismatch"), decisions[5]]
    assert walked(walk_rows(items, decisions)).misjudged is None
    late = [(e, None if r is None else replace(r, appended_at=at(24 * 30))) for e, r in items]
    assert walked(walk_rows(late, audited_log()[1])).misjudged.position == 4  # cutoff_passed on the broker clock

"""R19 under the `reject` over-vote policy: the fold's refusals as the ledger's vote.refused rows."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    ADMIN_EVENTS,
    CutoffChanged,
    Entitlement,
    PollsClosed,
    VoteRefused,
    VoteReinstated,
    decode_logged,
    encode,
    tag_of,
)
from projections.judge import Judge
from projections.refusals import (
    LastWords,
    RefusalCheck,
    RefusalFold,
    disagreement,
    ledger_row,
    refusal_id,
    refusal_row,
    reinstatement_id,
)
from projections.rejudge import Rejudge
from projections.replay import replay
from projections.validation import OVER_ENTITLEMENT, REASONS, RESERVED_TYPE
from services.adapters.kafka.topics import key_for
from services.runtime.ingest import Consumed, decide
from tests.factories import POSITIONS, at, cast, register_event, revoke, small_meeting
from tests.strategies import submissions


def scheduled(policy="reject", entitlement=5000):
    """The small meeting and its register, Broker X entitled to ``entitlement`` shares."""
    register = msgspec.structs.replace(
        register_event(POSITIONS), entitlements=[Entitlement(nominee="Broker X", shares=entitlement)]
    )
    return [small_meeting(overvote_policy=policy), register]


def test_the_instruction_that_takes_the_nominee_over_is_refused_with_both_totals():
    first = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    second = cast("B-2", {"2": "against"}, executed=2, channel="broker")
    fold = RefusalFold()
    assert fold.apply_all([*scheduled(), first]) == []
    assert fold.apply(second) == [
        VoteRefused(
            event_id=f"ledger:refused:{second.event_id}",
            meeting_id="m1",
            refused_event_id=second.event_id,
            control_number="B-2",
            nominee="Broker X",
            item="2",
            entitlement=5000,
            attempted=6000,
            counted=2000,
        )
    ]
    assert fold.apply(second) == []  # an instruction is refused once, whatever the fold says again


def test_a_revocation_reviving_a_discretionary_vote_that_takes_the_nominee_over_refuses_that_vote():
    owner = cast("B-2", {"2": "for"}, shares=1000, executed=1.5, channel="broker")
    discretion = cast("B-2", {"2": "for"}, executed=2.5, channel="broker", discretionary=True)
    other = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    fold = RefusalFold()
    assert fold.apply_all([*scheduled(), owner, discretion, other]) == []
    (refusal,) = fold.apply(revoke("B-2", executed=2))  # voids the owner's, revives the nominee's (R7, R10)
    assert (refusal.refused_event_id, refusal.control_number, refusal.item) == (discretion.event_id, "B-2", "2")
    assert (refusal.entitlement, refusal.attempted, refusal.counted) == (5000, 6000, 2000)


def test_a_prorate_meeting_is_not_folded_and_refuses_nothing():
    fold = RefusalFold()
    events = [*scheduled("prorate"), cast("B-1", {"2": "for"}, channel="broker"), cast("B-2", {"2": "for"})]
    assert fold.apply_all(events) == []
    assert fold.meetings() == []


def test_a_refusal_row_is_rejected_over_entitlement_with_no_kafka_source_and_decodes_back():
    refusal = VoteRefused(
        event_id=refusal_id("x" * 200),
        meeting_id="m1",
        refused_event_id="x" * 200,
        control_number="B-2",
        nominee="Broker X",
        item="2",
        entitlement=5000,
        attempted=6000,
        counted=2000,
    )
    row = refusal_row(refusal)
    assert (row.type, row.decision, row.reason, row.channel) == ("vote.refused", "rejected", OVER_ENTITLEMENT, None)
    assert (row.source_topic, row.source_partition, row.source_offset, row.appended_at) == (None, None, None, None)
    assert decode_logged(row.payload) == refusal  # an id too long for the prefix is named by its hash, within 200
    assert refusal.event_id.startswith("ledger:refused:sha256:") and len(refusal.event_id) <= 200
    assert refusal_id("e1") == "ledger:refused:e1"


def test_both_reason_codes_are_in_the_public_vocabulary():
    assert OVER_ENTITLEMENT in REASONS and RESERVED_TYPE in REASONS


def test_a_channel_publishing_a_vote_refused_is_rejected_reserved_type():
    judge = Judge()
    for event in scheduled():
        judge.judge(event)
    fake = VoteRefused(
        event_id="c:1",
        meeting_id="m1",
        refused_event_id="e1",
        control_number="B-2",
        nominee="Broker X",
        item="2",
        entitlement=5000,
        attempted=6000,
        counted=2000,
    )
    assert judge.judge(fake) == RESERVED_TYPE


def log_of(events):
    """The log the ledger writes: each accepted row, then the ledger rows (refusals, withdrawals) it called for."""
    fold, rows = RefusalFold(), []
    for event in events:
        rows.append(("accepted", None, event))
        for row in fold.apply(event):
            logged = ledger_row(row)
            rows.append((logged.decision, logged.reason, row))
    return rows, fold


def in_force(rows):
    """The refusals in force after these rows: refused, not withdrawn since."""
    out = {}
    for _, _, e in rows:
        if isinstance(e, VoteRefused) and e.event_id.startswith("ledger:"):
            out[e.event_id] = e
        elif isinstance(e, VoteReinstated):
            out.pop(e.withdrawn_event_id)
    return out


def check(rows, source=False):
    checker = RefusalCheck()
    for position, (decision, reason, event) in enumerate(rows, start=1):
        checker.feed(position, msgspec.json.decode(msgspec.json.encode(event))["type"], decision, reason, event, source)
    return checker.finish()


def refusal_sample():
    first = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    second = cast("B-2", {"2": "against"}, executed=2, channel="broker")
    return log_of([*scheduled(), first, second])[0]


def test_audit_finds_a_log_with_its_refusal_rows_complete():
    assert check(refusal_sample()) == []


def test_audit_finds_a_missing_refusal_row():
    rows = refusal_sample()
    (problem,) = check(rows[:-1])
    assert "no row right after it says so" in problem


def test_audit_finds_a_refusal_row_the_fold_does_not_make():
    rows = refusal_sample()
    early, missing = check([rows[-1], *rows[:-1]])  # logged before the row that causes it
    assert "is not called for by the fold of the rows before it" in early and "no row right after it" in missing


def test_audit_finds_a_refusal_row_whose_totals_differ_from_the_fold():
    rows = refusal_sample()
    decision, reason, refusal = rows[-1]
    (problem,) = check([*rows[:-1], (decision, reason, msgspec.structs.replace(refusal, attempted=5001))])
    assert "the fold gives" in problem


def test_audit_finds_a_refusal_row_with_a_kafka_source():
    assert any("Kafka source" in p for p in check(refusal_sample(), source=True))


def test_the_rejudge_leaves_the_ledgers_refusal_rows_to_the_refusal_accounting():
    rejudge = Rejudge()
    rows = refusal_sample()
    for position, (decision, reason, event) in enumerate(rows, start=1):
        rejudge.feed(position, msgspec.json.decode(msgspec.json.encode(event))["type"], decision, reason, event)
    assert rejudge.first is None


def test_the_projectors_check_agrees_with_the_ledgers_refusal_and_not_with_one_of_a_counted_instruction():
    counted = cast("B-1", {"2": "for"}, channel="broker")
    rows, fold = log_of([*scheduled(), counted, cast("B-2", {"2": "for"}, channel="broker")])
    tally = replay([e for d, _, e in rows if d == "accepted"]).tallies["m1"]
    (refusal,) = [e for d, _, e in rows if d == "rejected"]
    assert disagreement(tally, refusal) is None
    forged = msgspec.structs.replace(refusal, refused_event_id=counted.event_id, control_number="B-1")
    assert "the fold does not refuse" in disagreement(tally, forged)
    assert "nominee" in disagreement(tally, msgspec.structs.replace(refusal, nominee="Broker Y"))


def test_a_refused_late_instruction_dropped_by_a_late_logged_closure_has_its_refusal_withdrawn():
    # B-2's vote was received after the polls closed, but logged before the closure (R12): refused while
    # counted, then void by the closure. Logged first, the closure would have had it refused poll_closed: its
    # refusal is withdrawn (vote.reinstated), so the refusals in force are those of that order (R5).
    early = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    late = cast("B-2", {"2": "for"}, executed=12, channel="broker")
    closed = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(10))
    rows, fold = log_of([*scheduled(), early, late, closed])
    assert [(d, type(e).__name__) for d, _, e in rows[-4:]] == [
        ("accepted", "VoteCast"),
        ("rejected", "VoteRefused"),
        ("accepted", "PollsClosed"),
        ("accepted", "VoteReinstated"),
    ]
    reinstated = rows[-1][2]
    assert (reinstated.withdrawn_event_id, reinstated.cause_event_id) == (f"ledger:refused:{late.event_id}", "close")
    assert reinstated.event_id == f"ledger:reinstated:ledger:refused:{late.event_id}"
    assert in_force(rows) == {} and check(rows) == []
    tally = fold.projection.tallies["m1"]
    assert tally.item_totals()["2"] == {"for": 2000}
    assert disagreement(tally, reinstated) is None and disagreement(tally, rows[-3][2]) is not None


@settings(max_examples=150, deadline=None)
@given(st.lists(submissions(), max_size=30), st.integers(1, 6500))
def test_replaying_the_log_with_its_refusal_rows_gives_the_folds_tally_and_refusals(events, entitlement):
    rows, fold = log_of([*scheduled(entitlement=entitlement), *events])
    replayed = replay([e for d, _, e in rows if d == "accepted"]).tallies["m1"]
    assert replayed.buckets == fold.projection.tallies["m1"].buckets
    logged = {(e.refused_event_id, e.item) for e in in_force(rows).values()}
    assert logged == {entry for state in replayed.voters.values() for entry in state.overvote_rejected}
    assert all(disagreement(replayed, e) is None for d, _, e in rows if d == "rejected")
    for _, _, refusal in (r for r in rows if r[0] == "rejected"):
        assert refusal.counted <= refusal.entitlement < refusal.attempted
    assert check(rows) == []


def test_the_ledgers_decisions_put_each_refusal_row_right_after_the_row_that_caused_it():
    first = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    second = cast("B-2", {"2": "against"}, executed=2, channel="broker")
    fake = msgspec.structs.replace(a_channels_refusal(), event_id="c:fake")
    events = [*scheduled(), first, second, fake]
    topics = ["admin", "admin", "votes", "votes", "votes"]
    records = [Consumed(t, 0, i, key_for(e), encode(e)) for i, (t, e) in enumerate(zip(topics, events, strict=True))]
    decided = decide(Judge(), list(zip(records, events, strict=True)), set(), "admin", RefusalFold())
    assert [(r.event_id, r.decision, r.reason) for r in decided.rows][2:] == [
        (first.event_id, "accepted", None),
        (second.event_id, "accepted", None),
        (f"ledger:refused:{second.event_id}", "rejected", OVER_ENTITLEMENT),
        ("c:fake", "rejected", RESERVED_TYPE),  # a channel's vote.refused, whatever the topic
    ]
    assert decided.rows[4].source_topic is None and decided.rows[5].source_topic == "votes"


def a_channels_refusal():
    return VoteRefused(
        event_id="ledger:refused:e0",
        meeting_id="m1",
        refused_event_id="e0",
        control_number="B-1",
        nominee="Broker X",
        item="2",
        entitlement=5000,
        attempted=9000,
        counted=0,
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(submissions(), max_size=25),
    st.integers(1, 6500),
    st.integers(0, 25),
    st.integers(0, 45),
    st.one_of(st.none(), st.lists(st.sampled_from(["1.1", "1.2", "2", "3", "5"]), min_size=1, unique=True)),
)
def test_with_a_poll_closure_logged_anywhere_the_audit_accounts_for_every_refusal(
    events, entitlement, where, closed_at, items
):
    # A closure logged after submissions received later than it refolds them (R12, per item or all):
    # whatever the fold refuses then is logged too, once, and the audit finds the log complete.
    closed = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(closed_at), items=items)
    rows, fold = log_of([*scheduled(entitlement=entitlement), *events[:where], closed, *events[where:]])
    assert check(rows) == []
    tally = fold.projection.tallies["m1"]
    ledger = [e for _, _, e in rows if isinstance(e, (VoteRefused, VoteReinstated))]
    assert len({r.event_id for r in ledger}) == len(ledger)  # ids never shared (a reinstatement names its row)
    refusals = list(in_force(rows).values())
    assert len({r.refused_event_id for r in refusals}) == len(refusals)
    assert {(r.refused_event_id, r.item) for r in refusals} == {
        entry for state in tally.voters.values() for entry in state.overvote_rejected
    }
    assert all(disagreement(tally, r) is None for r in refusals)
    assert all(r.counted <= r.entitlement < r.attempted for r in refusals)


def ledger_decisions(events):
    """What the ledger logs for these events, each in its own batch and in this order: (decision, reason, event)."""
    judge, fold, rows = Judge(), RefusalFold(), []
    for offset, event in enumerate(events):
        topic = "admin" if isinstance(event, ADMIN_EVENTS) else "votes"
        record = Consumed(topic, 0, offset, key_for(event), encode(event))
        for row in decide(judge, [(record, event)], set(), "admin", fold).rows:
            rows.append((row.decision, row.reason, decode_logged(row.payload)))
    return rows


@st.composite
def admin_changes(draw):
    """Poll closures (all items or some) and cut-off changes that only close (one per channel: no reopening)."""
    changes = []
    for n in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            items = draw(
                st.one_of(st.none(), st.lists(st.sampled_from(["1.1", "2", "3", "5"]), min_size=1, unique=True))
            )
            changes.append(
                PollsClosed(event_id=f"close-{n}", meeting_id="m1", closed_at=at(draw(st.integers(0, 45))), items=items)
            )
        else:
            channel = draw(st.sampled_from(["broker", "internet", "phone", "mail"]))
            if any(isinstance(c, CutoffChanged) and c.channel == channel for c in changes):
                continue
            effective = draw(st.integers(0, 40))
            changes.append(
                CutoffChanged(
                    event_id=f"cut-{n}",
                    meeting_id="m1",
                    channel=channel,
                    cutoff=at(effective + draw(st.integers(0, 5))),
                    effective_at=at(effective),
                )
            )
    return changes


def outcome(rows):
    """The refusals in force (what each says, its row's id aside) and the tally the accepted rows give."""
    refusals = {msgspec.structs.replace(r, event_id="") for r in in_force(rows).values()}
    tally = replay([e for d, _, e in rows if d == "accepted" and not isinstance(e, VoteReinstated)]).tallies["m1"]
    return refusals, dict(tally.buckets), tally.present, tally.present_count


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25), st.integers(1, 6500), admin_changes(), st.data())
def test_the_refusals_in_force_and_the_tally_are_the_same_whether_closures_and_cutoff_changes_come_first_or_later(
    events, entitlement, changes, data
):
    # R5 under R17 `reject`: the submissions' own log order fixed, the closures and cut-off changes logged
    # before them or anywhere among them give the same refusals in force and the same tally; the audit
    # accounts for every ledger row of either log.
    wheres = sorted(data.draw(st.lists(st.integers(0, len(events)), min_size=len(changes), max_size=len(changes))))
    later, previous = [], 0
    for change, where in zip(changes, wheres, strict=True):
        later += [*events[previous:where], change]
        previous = where
    later += events[previous:]
    first = ledger_decisions([*scheduled(entitlement=entitlement), *changes, *events])
    logged_later = ledger_decisions([*scheduled(entitlement=entitlement), *later])
    assert outcome(logged_later) == outcome(first)
    assert check(first) == [] and check(logged_later) == []


def test_the_late_knockout_of_the_adversarial_run_is_undone_by_the_cutoff_change():
    # /tmp/adv12b s13: a broker instruction received after the amended broker cut-off, logged before the
    # change, took Broker X over and got the on-time instruction of another holder refused; the change
    # voids the late one and withdraws the refusal, as if it had been logged first.
    late = cast("B-2", {"2": "against"}, executed=11, channel="broker")
    ontime = cast("B-1", {"2": "for", "3": "for"}, executed=8, channel="broker")
    change = CutoffChanged(event_id="cc1", meeting_id="m1", channel="broker", cutoff=at(10), effective_at=at(9))
    rows = ledger_decisions([*scheduled(entitlement=5000), late, ontime, change])  # B-2 4,000, B-1 2,000 shares
    assert [(d, type(e).__name__) for d, _, e in rows[2:]] == [
        ("accepted", "VoteCast"),
        ("accepted", "VoteCast"),
        ("rejected", "VoteRefused"),
        ("accepted", "CutoffChanged"),
        ("accepted", "VoteReinstated"),
    ]
    assert rows[4][2].refused_event_id == ontime.event_id and rows[-1][2].cause_event_id == "cc1"
    first = ledger_decisions([*scheduled(entitlement=5000), change, late, ontime])
    assert [r for _, r, e in first if e.event_id == late.event_id] == ["cutoff_passed"]
    assert outcome(rows) == outcome(first) and outcome(first)[0] == set()
    assert outcome(rows)[1][("2", "for", "Broker X")] == 2000


def test_a_refusal_withdrawn_then_due_again_gets_a_row_of_its_own():
    assert refusal_id("e1") == "ledger:refused:e1" and refusal_id("e1", 2) == "ledger:refused#2:e1"
    assert refusal_id("sha256:" + "0" * 64).startswith("ledger:refused:sha256:")  # never another id's hash
    assert refusal_id("sha256:ab") != "ledger:refused:sha256:ab"
    assert reinstatement_id("ledger:refused:" + "x" * 190).startswith("ledger:reinstated:sha256:")
    # A reopening (the broker cut-off lifted) makes the late instruction count again: the on-time one,
    # reinstated by the first change, is refused again under a new id, and the audit accounts for all of it.
    late = cast("B-2", {"2": "against"}, executed=11, channel="broker")
    ontime = cast("B-1", {"2": "for"}, executed=8, channel="broker")
    closing = CutoffChanged(event_id="cc1", meeting_id="m1", channel="broker", cutoff=at(10), effective_at=at(9))
    lifted = CutoffChanged(event_id="cc2", meeting_id="m1", channel="broker", cutoff=None, effective_at=at(10.5))
    rows = ledger_decisions([*scheduled(entitlement=5000), late, ontime, closing, lifted])
    ledger = [(type(e).__name__, e.event_id) for _, _, e in rows if isinstance(e, (VoteRefused, VoteReinstated))]
    assert ledger == [
        ("VoteRefused", f"ledger:refused:{ontime.event_id}"),
        ("VoteReinstated", f"ledger:reinstated:ledger:refused:{ontime.event_id}"),
        ("VoteRefused", f"ledger:refused#2:{ontime.event_id}"),
    ]
    assert list(in_force(rows)) == [f"ledger:refused#2:{ontime.event_id}"] and check(rows) == []


def test_the_projectors_check_waits_for_a_recounts_rows_when_a_batch_ends_on_the_closure():
    # A refusal, then a closure whose withdrawal of it the batch has not read yet: checked then, the refusal
    # would look like one the fold does not make, and the projection would be called broken.
    early = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    late = cast("B-2", {"2": "for"}, executed=12, channel="broker")
    closed = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(10))
    rows, fold = log_of([*scheduled(), early, late, closed])
    tally = fold.projection.tallies["m1"]
    words = LastWords()
    for position, (decision, reason, event) in enumerate(rows[:-1], start=1):  # up to the closure
        words.see(position, tag_of(event), decision, reason, encode(event).decode())
    assert words.check(tally, ends_batch=True) is None  # the batch ends on the closure: wait
    decision, reason, event = rows[-1]
    words.see(len(rows), tag_of(event), decision, reason, encode(event).decode())
    assert words.check(tally, ends_batch=True) is None  # its rows may go on past the batch: wait still
    assert words.check(tally, ends_batch=False) == []  # a row after them read: withdrawn, as the fold says
    words.see(1, "vote.refused", "rejected", OVER_ENTITLEMENT, encode(rows[-3][2]).decode())  # forged again
    (problem,) = words.check(tally, ends_batch=False)
    assert "the fold does not refuse" in problem

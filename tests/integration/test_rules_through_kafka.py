"""R1-R19 through the public path: Kafka -> ledger -> append-only log -> projector -> tally.

Three meetings, one per test, each with a handful of scenarios on their own control numbers:
  * registered holders ("kr"): R1-R7, R9, R11, R12, R14, R15, R18, R19;
  * beneficial owners and nominees ("kb"): R2, R8, R10, R16, R17 prorate;
  * administration, the `reject` policy and a meeting without quorum ("kc"): R12 per-item closure, R13,
    R15 no_quorum, R17 reject, R19 and the admin reason codes.
Every expected number is computed by hand in the comments. Position sizes in "kr" are distinct powers
of two (x100), so a sum names the positions it contains.
"""

from __future__ import annotations

import asyncpg
import msgspec.structs
import pytest

from events import Entitlement, PollsClosed, Position, PositionsRecorded, ProxySubstituted, Quorum, encode
from services.adapters.kafka.topics import producer, publish, publish_raw
from services.read.proxies import read_proxies
from services.read.tallies import read_counted, read_tally
from tests.factories import at, cast, revoke, small_meeting
from tests.integration.helpers import run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

M = 24 * 30  # small_meeting(): the meeting starts at(M); the internet/phone cut-off is at(24 * 29)
COUNT = "SELECT count(*) FROM ledger_log"
OK = ("accepted", None)


def rejected(reason: str) -> tuple[str, str]:
    return ("rejected", reason)


def register(
    meeting_id: str,
    positions: list[Position],
    entitlements: dict[str, int] | None = None,
    chunk: int = 0,
    chunks: int = 1,
    event_id: str | None = None,
) -> PositionsRecorded:
    return PositionsRecorded(
        event_id=event_id or f"{meeting_id}-register-{chunk}",
        meeting_id=meeting_id,
        chunk=chunk,
        chunks=chunks,
        positions=positions,
        entitlements=[Entitlement(nominee=n, shares=s) for n, s in (entitlements or {}).items()],
    )


def registered(number: str, shares: int, *holders: str) -> Position:
    return Position(control_number=number, kind="registered", shares=shares, holders=list(holders) or [number])


def beneficial(number: str, shares: int, nominee: str) -> Position:
    return Position(
        control_number=number, kind="beneficial", shares=shares, holders=[f"owner of {number}"], nominee=nominee
    )


def vote(meeting_id: str, event_id: str, number: str, choices: dict, **fields):
    return cast(number, choices, meeting_id=meeting_id, event_id=f"{meeting_id}-{event_id}", **fields)


def revocation(meeting_id: str, event_id: str, number: str, executed: float, **fields):
    return msgspec.structs.replace(
        revoke(number, executed, event_id=f"{meeting_id}-{event_id}", **fields), meeting_id=meeting_id
    )


async def logged(dsn: str) -> dict[str, tuple[str, str | None]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            r["event_id"]: (r["decision"], r["reason"])
            for r in await conn.fetch("SELECT event_id, decision, reason FROM ledger_log")
        }
    finally:
        await conn.close()


async def tally_of(dsn: str, meeting_id: str) -> tuple[dict, dict[str, tuple[dict, str]], list]:
    """(quorum, {item: (non-zero columns, outcome)}, over-vote report) as the public read side gives them."""
    conn = await asyncpg.connect(dsn)
    try:
        report = await read_tally(conn, meeting_id)
        overvotes = (await read_counted(conn, meeting_id))["overvotes"]
    finally:
        await conn.close()
    items = {
        item_id: ({k: n for k, n in columns.items() if k not in ("outcome", "margin") and n}, columns["outcome"])
        for item_id, columns in report["items"].items()
    }
    return report["quorum"], items, overvotes


async def test_registered_holders_r1_to_r7_r9_r11_r12_r14_r15_r18_r19(settings):
    mid = "kr"
    positions = [
        registered("A", 100),
        registered("B", 200),
        registered("C", 400),
        registered("D", 800),
        registered("E", 1600),
        registered("F", 3200),
        registered("G", 6400),
        registered("H", 12800, "Carl", "Dana"),
    ]
    spec = small_meeting(meeting_id=mid, event_id="kr-meeting", outstanding=25_500)
    closing = M + 1
    v = [  # event -> expected log decision
        # R5: A's internet vote (t=10) beats its mail card dated t=5 but received later (t=20).
        (vote(mid, "a-internet", "A", {"3": "for"}, executed=10), OK),
        (
            vote(
                mid,
                "a-mail",
                "A",
                {"1.1": "against", "2": "against", "3": "against"},
                executed=5,
                received=20,
                channel="mail",
                signatures=["A"],
            ),
            OK,
        ),
        # R6: B's later ballot (M+0.15) beats its first ballot and a card dated after both (M+0.2);
        # R12: ballots go on after the internet cut-off, this one received exactly at the closing time.
        (vote(mid, "b-ballot-1", "B", {"3": "against"}, executed=M + 0.1, channel="in_person"), OK),
        (
            vote(
                mid, "b-card", "B", {"3": "for"}, executed=M + 0.2, received=M + 0.3, channel="mail", signatures=["B"]
            ),
            OK,
        ),
        (vote(mid, "b-ballot-2", "B", {"3": "abstain"}, executed=M + 0.15, received=closing, channel="in_person"), OK),
        # R7: C revokes at t=3 and votes again at t=4; R18: the same content under a new id is a new row.
        (vote(mid, "c-phone-2", "C", {"3": "for"}, executed=2, channel="phone"), OK),
        (revocation(mid, "c-revoke", "C", executed=3), OK),
        (vote(mid, "c-phone-4a", "C", {"3": "against"}, executed=4, channel="phone"), OK),
        (vote(mid, "c-phone-4b", "C", {"3": "against"}, executed=4, channel="phone"), OK),
        # R7: an instruction executed exactly at the revocation time stands.
        (vote(mid, "d-internet", "D", {"3": "against"}, executed=5), OK),
        (revocation(mid, "d-revoke", "D", executed=5), OK),
        # R7/R14: every instruction of E is void: E is not present.
        (vote(mid, "e-internet", "E", {"3": "for"}, executed=1), OK),
        (revocation(mid, "e-revoke", "E", executed=2), OK),
        # R2/R3: F votes 1000 of its 3200, splitting item 3 600/300 (100 present, not voted).
        (vote(mid, "f-partial", "F", {"3": {"for": 600, "against": 300}}, shares=1000), OK),
        # R11: the joint holding H needs both signatures.
        (
            vote(
                mid,
                "h-card-carl",
                "H",
                {"1.2": "against", "3": "against"},
                executed=6,
                channel="mail",
                signatures=["Carl"],
            ),
            rejected("missing_joint_signature"),
        ),
        (
            vote(
                mid,
                "h-card-both",
                "H",
                {"1.2": "against", "3": "against"},
                executed=7,
                channel="mail",
                signatures=["Carl", "Dana"],
            ),
            OK,
        ),
        # Every rejection of G, so G never counts.
        (vote(mid, "x-unknown", "X-1", {"2": "for"}), rejected("not_entitled")),  # R1
        (vote(mid, "g-exceeds", "G", {"2": "for"}, shares=6401), rejected("exceeds_position")),  # R2
        (vote(mid, "g-split", "G", {"3": {"for": 4000, "against": 2401}}), rejected("over_vote")),  # R3
        (vote(mid, "g-option", "G", {"2": "3y"}), rejected("invalid_choice")),  # R4
        (vote(mid, "g-item", "G", {"9": "for"}), rejected("unknown_item")),  # R4
        (vote(mid, "g-unsigned", "G", {"2": "for"}, channel="mail"), rejected("unsigned")),  # R11
        (vote(mid, "g-late", "G", {"2": "for"}, executed=24 * 29 + 1), rejected("cutoff_passed")),  # R12
        (vote(mid, "g-discretion", "G", {"2": "for"}, discretionary=True), rejected("discretionary_not_allowed")),
    ]
    first = [event for event, _ in v]
    closed = PollsClosed(event_id="kr-closed", meeting_id=mid, closed_at=at(closing))
    after_close = vote(mid, "g-ballot-late", "G", {"2": "for"}, executed=closing + 0.5, channel="in_person")
    v += [(closed, OK), (after_close, rejected("poll_closed"))]  # R12

    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [spec, register(mid, positions)])
        await publish(client, settings, first + [first[0]])  # R18: A's internet vote delivered twice
        await publish(client, settings, [closed])  # acknowledged before the late ballot is even sent
        await publish(client, settings, [after_close])
        await wait_for(settings.pg_dsn, COUNT, 2 + len(v))
    await run_projector(settings, 2 + len(v))

    log = await logged(settings.pg_dsn)
    assert len(log) == 2 + len(v)  # R18 once per event id; R19 every submission has its row
    assert {e.event_id: log[e.event_id] for e, _ in v} == {e.event_id: d for e, d in v}

    quorum, items, overvotes = await tally_of(settings.pg_dsn, mid)
    # R14: A 100 + B 200 + C 400 + D 800 + F 1000 (partial) + H 12800 = 15300; E void, G rejected.
    assert quorum == {"required": 8500, "present": 15300, "met": True}  # ceil(25500 / 3) = 8500
    # R9: internet/phone/mail votes fill unmarked items per the board (for, 3y): A, C, D, F, H =
    # 100 + 400 + 800 + 1000 + 12800 = 15100; B's ballot is not filled: 200 present, not voted.
    assert items["1.1"] == ({"for": 15100, "not_voted": 200}, "elected")
    # H marked 1.2 against: for 15100 - 12800 = 2300. R15 plurality: Against has no effect.
    assert items["1.2"] == ({"for": 2300, "against": 12800, "not_voted": 200}, "elected")
    assert items["2"] == ({"for": 15100, "not_voted": 200}, "passed")
    # 3: for A 100 + F 600 = 700; against C 400 + D 800 + F 300 + H 12800 = 14300; abstain B 200;
    # not voted F's 100. R15: 700 < 14300 fails.
    assert items["3"] == ({"for": 700, "against": 14300, "abstain": 200, "not_voted": 100}, "failed")
    assert items["5"] == ({"3y": 15100, "not_voted": 200}, "3y")
    assert overvotes == []


async def test_beneficial_owners_and_nominees_r2_r8_r10_r16_r17_prorate(settings):
    mid = "kb"
    x, y = "Broker X", "Bank Y"
    positions = [
        beneficial("B-1", 1000, x),
        beneficial("B-2", 2000, x),
        beneficial("B-5", 3000, x),
        beneficial("B-3", 4000, y),
        beneficial("B-4", 8000, y),
    ]
    # Broker X's books: 1000 + 2000 + 3000 = 6000 against an entitlement of 4501.
    spec = small_meeting(meeting_id=mid, event_id="kb-meeting", outstanding=18_000)
    v = [
        # R10/R16: B-1's owner leaves 2 unmarked (the later discretionary vote fills it) and splits 1.2
        # 600 for: 400 broker non-votes; 5 unmarked: 1000 broker non-votes.
        (
            vote(
                mid,
                "b1-owner",
                "B-1",
                {"1.1": "for", "1.2": {"for": 600}, "3": "against"},
                executed=2,
                channel="broker",
            ),
            OK,
        ),
        (vote(mid, "b1-discretion", "B-1", {"2": "against"}, executed=3, channel="broker", discretionary=True), OK),
        # R10: uninstructed B-2, voted on routine 2 only; discretion on 3 is refused.
        (vote(mid, "b2-discretion", "B-2", {"2": "for"}, executed=1, channel="broker", discretionary=True), OK),
        (
            vote(mid, "b2-discretion-3", "B-2", {"3": "for"}, executed=1.5, channel="broker", discretionary=True),
            rejected("discretionary_not_allowed"),
        ),
        (
            vote(
                mid,
                "b5-owner",
                "B-5",
                {
                    "1.1": "against",
                    "1.2": "abstain",
                    "2": {"for": 1000, "against": 1000, "abstain": 1000},
                    "3": "for",
                    "5": "2y",
                },
                executed=2,
                channel="broker",
            ),
            OK,
        ),
        # R8: B-3's owner votes at the meeting with a legal proxy, superseding Bank Y's instruction.
        (vote(mid, "b3-owner", "B-3", {"2": "against", "3": "against"}, executed=2, channel="broker"), OK),
        (
            vote(mid, "b3-ballot-no-lp", "B-3", {"3": "for"}, executed=M + 0.1, channel="in_person"),
            rejected("no_legal_proxy"),
        ),
        (
            vote(
                mid,
                "b3-ballot",
                "B-3",
                {"1.1": "for", "1.2": "for", "2": "for", "3": "for", "5": "1y"},
                executed=M + 0.2,
                channel="in_person",
                legal_proxy_id="LP-1",
            ),
            OK,
        ),
        # R2: B-4 instructs for 3000 of 8000; R16: broker non-votes are 3000 on 1.1, 1.2, 5, not 8000.
        (vote(mid, "b4-partial", "B-4", {"3": "for"}, shares=3000, executed=2, channel="broker"), OK),
    ]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [spec, register(mid, positions, {x: 4501, y: 12_000})] + [e for e, _ in v])
        await wait_for(settings.pg_dsn, COUNT, 2 + len(v))
    await run_projector(settings, 2 + len(v))

    log = await logged(settings.pg_dsn)
    assert {e.event_id: log[e.event_id] for e, _ in v} == {e.event_id: d for e, d in v}
    quorum, items, overvotes = await tally_of(settings.pg_dsn, mid)
    # B-1 1000 + B-2 2000 (discretionary only) + B-5 3000 + B-3 4000 + B-4 3000 (partial) = 13000.
    assert quorum == {"required": 6000, "present": 13000, "met": True}
    # 1.1: for B-1 1000 + B-3 4000; against B-5 3000; broker non-votes B-2 2000 + B-4 3000.
    assert items["1.1"] == ({"for": 5000, "against": 3000, "broker_non_votes": 5000}, "elected")
    # 1.2: for B-1 600 + B-3 4000; abstain B-5 3000; broker non-votes B-1 400 + B-2 2000 + B-4 3000.
    assert items["1.2"] == ({"for": 4600, "abstain": 3000, "broker_non_votes": 5400}, "elected")
    # R17: Broker X voted on 2: for B-2 2000 + B-5 1000 = 3000, against B-1 1000 + B-5 1000 = 2000,
    # abstain 1000: 6000 > 4501. x4501/6000: 2250.5, 1500.33, 750.17 -> floors 4500, the last share to
    # the largest remainder (for) -> 2251 / 1500 / 750. Plus B-3's ballot for 4000 (Bank Y within 12000).
    # Not voted: 13000 - 6251 - 1500 - 750 = 4499 = 1499 prorated away + B-4's 3000 (routine, unmarked).
    assert items["2"] == ({"for": 6251, "against": 1500, "abstain": 750, "not_voted": 4499}, "passed")
    # 3: for B-5 3000 + B-3 4000 + B-4 3000; against B-1 1000; broker non-votes B-2 2000.
    assert items["3"] == ({"for": 10000, "against": 1000, "broker_non_votes": 2000}, "passed")
    # 5: 1y B-3 4000; 2y B-5 3000; broker non-votes B-1 1000 + B-2 2000 + B-4 3000.
    assert items["5"] == ({"1y": 4000, "2y": 3000, "broker_non_votes": 6000}, "1y")
    assert [(o.nominee, o.item_id, o.policy, o.voted, o.counted) for o in overvotes] == [
        (
            x,
            "2",
            "prorate",
            {"for": 3000, "against": 2000, "abstain": 1000},
            {"for": 2251, "against": 1500, "abstain": 750},
        )
    ]


async def test_administration_reject_policy_and_no_quorum_r12_r13_r15_r17_r19(settings):
    mid = "kc"
    x = "Broker X"
    positions = [
        beneficial("B-1", 3000, x),
        beneficial("B-2", 3000, x),
        registered("R-1", 1000, "Ann"),
        registered("R-2", 13000, "Zoe"),
    ]
    spec = small_meeting(
        meeting_id=mid,
        event_id="kc-meeting",
        outstanding=20_000,
        overvote_policy="reject",
        quorum=Quorum(numerator=1, denominator=2),
    )
    # R17 reject, in log order (published one at a time): c2 would take Broker X to 3000 + 3000 = 6000
    # > 4000 on item 2, so the fold refuses it: its row stays accepted (as judged) and the ledger logs a
    # vote.refused row right after it (R19); c3 (1000) fits.
    ordered = [
        vote(mid, "c1", "B-1", {"2": "for", "3": "for"}, executed=1, channel="broker"),
        vote(mid, "c2", "B-2", {"2": "against", "3": "against"}, executed=2, channel="broker"),
        vote(mid, "c3", "B-2", {"2": "against", "3": "against"}, shares=1000, executed=3, channel="broker"),
    ]
    forged = register(mid, [registered("Z-9", 50_000)], chunk=5, chunks=6, event_id="kc-forged")
    admin = [
        (small_meeting(meeting_id=mid, event_id="kc-meeting-again"), rejected("duplicate_meeting")),
        (register(mid, [registered("R-9", 5)], event_id="kc-register-again"), rejected("duplicate_chunk")),
        (register(mid, [registered("R-1", 5)], chunk=1, chunks=2), rejected("duplicate_position")),
        (register("nope", [registered("N-1", 5)]), rejected("unknown_meeting")),
        (PollsClosed(event_id="kc-close-9", meeting_id=mid, closed_at=at(9), items=["9"]), rejected("unknown_item")),
    ]
    batch = [
        (vote(mid, "r1", "R-1", {"3": "for"}, executed=4), OK),
        (vote("nope", "n1", "R-1", {"3": "for"}, executed=4), rejected("unknown_meeting")),
        # R13: a named proxy substitutes; someone holding no proxy is accepted (the judge cannot know what
        # arrives later) and its substitution has no effect, decided in date order by the proxy book.
        (
            ProxySubstituted(
                event_id="kc-sub-ann",
                meeting_id=mid,
                proxy_holder="Ann Proxy",
                substitute="Carl Sub",
                executed_at=at(5),
                received_at=at(5),
            ),
            OK,
        ),
        (
            ProxySubstituted(
                event_id="kc-sub-zed",
                meeting_id=mid,
                proxy_holder="Zed Stranger",
                substitute="Carl Sub",
                executed_at=at(5),
                received_at=at(5),
            ),
            OK,
        ),
    ]
    closed = PollsClosed(event_id="kc-close-2", meeting_id=mid, closed_at=at(10), items=["2"])
    late = [  # R12 per item: after item 2 closed, refused only what marks closed items alone
        (vote(mid, "r1-late-2", "R-1", {"2": "against"}, executed=11), rejected("poll_closed")),
        # Counts on the open items; r1 (received before the closure) keeps counting on item 2.
        (vote(mid, "r1-late", "R-1", {"3": "against"}, executed=11), OK),
        # About every item, some open: accepted; R7 voids r1 (executed 4 < 11) on the open items only,
        # and r1-late, executed at 11, stands.
        (revocation(mid, "r1-revoke-late", "R-1", executed=11, channel="mail"), OK),
    ]
    n = 0
    async with running_ledger(settings), producer(settings) as client:
        for step in [
            [spec, register(mid, positions, {x: 4000})],
            *[[e] for e in ordered],
            [e for e, _ in admin + batch],
            [closed],
            [e for e, _ in late],
        ]:
            await publish(client, settings, step)
            n += len(step) + (step == [ordered[1]])  # c2's refusal row
            await wait_for(settings.pg_dsn, COUNT, n)
        await publish_raw(client, settings.submissions_topic, [(mid.encode(), encode(forged))])
        n += 1
        await wait_for(settings.pg_dsn, COUNT, n)
    await run_projector(settings, n)

    log = await logged(settings.pg_dsn)
    assert len(log) == n  # R19: every event, accepted or rejected, has its row
    expected = {e.event_id: d for e, d in [(e, OK) for e in ordered] + admin + batch + [(closed, OK)] + late}
    expected[forged.event_id] = rejected("wrong_topic")
    expected["ledger:refused:kc-c2"] = rejected("over_entitlement")
    assert {k: log[k] for k in expected} == expected

    quorum, items, overvotes = await tally_of(settings.pg_dsn, mid)
    # R14: B-1 3000 + B-2 1000 (c3; c2 refused) + R-1 1000 = 5000; 5000 x 2 < 20000 x 1.
    assert quorum == {"required": 10000, "present": 5000, "met": False}
    # R15: no quorum, nothing passes; the columns are still reported. R-1 votes unmarked items per the
    # board (R9); B-1 and B-2 (1000) are broker non-votes on what they left unmarked (R16).
    assert items["1.1"] == items["1.2"] == ({"for": 1000, "broker_non_votes": 4000}, "no_quorum")
    assert items["2"] == ({"for": 3000 + 1000, "against": 1000}, "no_quorum")
    assert items["3"] == ({"for": 3000, "against": 1000 + 1000}, "no_quorum")  # R-1's r1-late (R12 per item)
    assert items["5"] == ({"3y": 1000, "broker_non_votes": 4000}, "no_quorum")
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        links = {link["event_id"]: link for link in (await read_proxies(conn, mid))["substitutions"]}
    finally:
        await conn.close()
    assert (links["kc-sub-ann"]["effective"], links["kc-sub-zed"]["effective"]) == (True, False)
    assert links["kc-sub-zed"]["why"] == f"Zed Stranger held no proxy at {at(5).isoformat()}"
    # R13: the substitution leaves the tally alone; R17: the refused instruction is reported.
    assert [(o.nominee, o.item_id, o.policy, o.voted, o.rejected) for o in overvotes] == [
        (x, "2", "reject", {"for": 3000, "against": 1000}, ["kc-c2"])
    ]

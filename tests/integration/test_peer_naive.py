"""The naive peer on real Kafka and PostgreSQL: same decisions as our judge, and the tally its design implies."""

from collections import defaultdict

import pytest

from events import Position, VoteCast, VoteRevoked, decode, encode
from projections.judge import Judge, Received
from services.adapters.kafka.topics import key_for
from services.devtools.bench import peer_naive, scratch
from services.devtools.bench.workload import Workload, build
from services.settings import Settings
from tests.factories import POSITIONS, cast, register_event, revoke, small_meeting

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(bench_namespace):
    """A topic namespace on the session's services; its topics are dropped afterwards."""
    return bench_namespace


def workload_of(admin, submissions, positions: list[Position]) -> Workload:
    """A Workload of hand-written events, with the bytes the orchestrator would publish."""
    return Workload(
        meeting=admin[0],
        admin=admin,
        submissions=submissions,
        positions=len(positions),
        admin_payloads=[(key_for(e), encode(e)) for e in admin],
        submission_payloads=[(key_for(e), encode(e)) for e in submissions],
    )


def expected_outcome(workload: Workload) -> dict:
    """What the naive design must end with, worked out in memory from the bytes in publishing order.

    Judged as the ledger judges them: each payload decoded, with the bytes its channel signed (S2).
    """
    judge = Judge()
    for event in workload.admin:
        judge.judge(event)
    accepted = 0
    latest: dict[str, VoteCast] = {}
    revoked_at: dict[str, object] = {}
    for _, payload in workload.submission_payloads:
        event = decode(payload)
        if judge.judge(event, Received(payload, None)) is not None:
            continue
        accepted += 1
        if isinstance(event, VoteCast):
            # R5; on equal executed_at the later arrival wins (Kafka keeps a control number's order).
            if event.control_number not in latest or event.executed_at >= latest[event.control_number].executed_at:
                latest[event.control_number] = event
        elif isinstance(event, VoteRevoked):
            revoked_at[event.control_number] = max(
                event.executed_at, revoked_at.get(event.control_number, event.executed_at)
            )
    live = {
        cn: vote for cn, vote in latest.items() if cn not in revoked_at or vote.executed_at >= revoked_at[cn]
    }  # R7: voids what was executed before
    positions = judge.meetings[workload.meeting_id].positions
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cn, vote in live.items():
        for item, choice in vote.choices.items():
            if isinstance(choice, str):
                tally[item][choice] += vote.shares or positions[cn].shares
            else:
                for option, amount in choice.items():
                    tally[item][option] += amount
    return {
        "accepted": accepted,
        "rejected": len(workload.submission_payloads) - accepted,
        "live_votes": len(live),
        "tally": {item: dict(options) for item, options in tally.items()},
    }


async def run(namespace: Settings, workload: Workload) -> dict:
    await scratch.publish_workload(namespace, workload.admin_payloads, workload.submission_payloads)
    return await peer_naive.measure(namespace, workload)


async def test_the_naive_peer_judges_counts_and_tallies_the_workload_as_its_design_says(namespace):
    workload = build(2000, positions=2000)
    result = await run(namespace, workload)
    expected = expected_outcome(workload)
    assert result["submissions"] == result["accepted"] + result["rejected"] == 2000
    assert (result["accepted"], result["rejected"]) == (expected["accepted"], expected["rejected"])
    assert result["stored_rejections"] == result["rejected"] > 0
    assert result["live_votes"] == expected["live_votes"]
    assert result["tally"] == expected["tally"]
    assert all(type(shares) is int for options in result["tally"].values() for shares in options.values())
    assert result["seconds"] > 0 and result["tally_query_seconds"] > 0 and result["submissions_per_s"] > 0


async def test_a_revocation_voids_earlier_executed_votes_even_one_that_arrives_after_it(namespace):
    votes = [
        cast("R-1", {"2": "for"}, executed=1),
        revoke("R-1", executed=5, received=10),  # a mailed revocation, signed at 5
        cast("R-1", {"2": "against"}, executed=3, received=12, channel="mail", signatures=["Alice"]),
        revoke("R-2", executed=2),  # nothing to void: no row may count
        cast("B-1", {"2": "for", "3": "against"}, executed=4, channel="broker"),
        cast("B-1", {"2": "abstain"}, executed=2, received=20, channel="broker"),  # older instruction, late
        cast("B-2", {"2": {"for": 1500, "against": 500}}, shares=2500, executed=6, channel="broker"),
        cast("X-404", {"2": "for"}),  # not entitled (R1)
    ]
    workload = workload_of([small_meeting(), register_event()], votes, POSITIONS)
    result = await run(namespace, workload)
    assert result == {**result, **expected_outcome(workload)}
    assert (result["accepted"], result["rejected"], result["live_votes"]) == (7, 1, 2)
    assert result["tally"] == {"2": {"for": 2000 + 1500, "against": 500}, "3": {"against": 2000}}

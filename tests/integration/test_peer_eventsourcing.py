"""The eventsourcing peer on real Kafka and PostgreSQL: same decisions as ours, a true tally."""

import pytest

from events import VoteCast, VoteRevoked, decode
from projections.judge import Judge, Received
from services.devtools.bench import scratch
from services.devtools.bench.peer_eventsourcing import measure
from services.devtools.bench.workload import build
from services.settings import Settings
from tests.conftest import as_operator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def run(endpoints):
    """A 2,000-submission workload published to a scratch namespace and measured once."""
    workload = build(2000, positions=2000)
    base = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        pg_dsn=endpoints.pg_dsn,
        submission_partitions=4,
        **as_operator(endpoints),
    )
    settings = scratch.scratch_settings(base, base.pg_dsn, "es")
    await scratch.publish_workload(settings, workload.admin_payloads, workload.submission_payloads)
    try:
        yield workload, await measure(settings, workload)
    finally:
        await scratch.drop_topics(settings)


def in_memory(workload):
    """Our Judge over the same bytes (decoded, with what its channel signed: S2), and each control number's vote."""
    judge = Judge()
    for admin in workload.admin:
        assert judge.judge(admin) is None
    decisions, latest_cast, latest_revoke = [], {}, {}
    for _, payload in workload.submission_payloads:
        event = decode(payload)
        reason = judge.judge(event, Received(payload, None))
        decisions.append(reason)
        if reason is None and isinstance(event, VoteCast):
            key = (event.executed_at, event.received_at, event.event_id)  # R5
            if event.control_number not in latest_cast or key > latest_cast[event.control_number][0]:
                shares = event.shares or judge.meetings[event.meeting_id].positions[event.control_number].shares
                latest_cast[event.control_number] = (key, shares)
        elif reason is None and isinstance(event, VoteRevoked):
            latest_revoke[event.control_number] = max(
                event.executed_at, latest_revoke.get(event.control_number, event.executed_at)
            )
    # Live: a cast not followed by a later revocation (R7 voids casts executed strictly before it).
    live = {
        number: shares
        for number, ((executed_at, *_), shares) in latest_cast.items()
        if number not in latest_revoke or executed_at >= latest_revoke[number]
    }
    return decisions, live


async def test_every_submission_is_recorded_with_the_decision_our_judge_makes(run):
    workload, result = run
    decisions, _ = in_memory(workload)
    assert len({event.event_id for event in workload.submissions}) == 2000  # no duplicates to skip
    assert result["submissions"] == 2000
    assert result["accepted"] + result["rejected"] == 2000
    assert result["accepted"] == sum(reason is None for reason in decisions)
    assert result["rejected"] == sum(reason is not None for reason in decisions) > 0


async def test_the_tally_holds_each_control_numbers_latest_unrevoked_vote(run):
    workload, result = run
    _, live = in_memory(workload)
    assert result["live_votes"] == len(live)
    assert result["present_shares"] == sum(live.values())


async def test_the_measurement_reports_its_rate_and_where_the_time_went(run):
    _, result = run
    assert result["system"].startswith("eventsourcing 9.5")
    assert result["seconds"] == pytest.approx(result["append_seconds"] + result["projection_lag_seconds"], abs=0.01)
    assert result["submissions_per_s"] > 0
    assert result["events_stored"] >= 2000  # every submission, plus aggregate creations and admin

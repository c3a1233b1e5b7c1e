"""The log adapter's load_judge rebuilds the judge the four former queries (ledger, projector, proxies, history) did."""

import pytest

from events import PollsClosed, ProxySubstituted, decode, decode_logged
from projections.judge import Judge
from projections.replay import Projection
from services.adapters.postgres.connect import connect
from services.adapters.postgres.log import admin as log_admin
from tests.factories import at, cast, register_event, small_meeting
from tests.integration.helpers import append, log_row

pytestmark = pytest.mark.integration

# The statements as they were before the adapter (log_store.admin_payloads, services/read/proxies.py,
# services/read/audit.py): the same types, accepted only, bounded differently.
_TYPES = "'meeting.scheduled', 'positions.recorded', 'polls.closed', 'proxy.substituted'"
OLD_RANGE = (
    f"SELECT position, meeting_id, payload FROM ledger_log WHERE type IN ({_TYPES}) AND decision = 'accepted'"
    " AND position > $1 AND ($2::bigint IS NULL OR position <= $2) ORDER BY position"
)
OLD_MEETING = (
    f"SELECT position, payload FROM ledger_log WHERE type IN ({_TYPES}) AND decision = 'accepted'"
    " AND meeting_id = $1 ORDER BY position"
)


def substitution(event_id: str, holder: str, substitute: str, hours: float) -> ProxySubstituted:
    return ProxySubstituted(
        event_id=event_id,
        meeting_id="m1",
        proxy_holder=holder,
        substitute=substitute,
        executed_at=at(hours),
        received_at=at(hours),
    )


async def logged(conn) -> None:
    """Two meetings' admin rows, rejected ones among them, votes in between."""
    await append(
        conn,
        [
            log_row(small_meeting()),
            log_row(small_meeting(event_id="meeting-2", meeting_id="m2")),
            log_row(register_event()),
            log_row(small_meeting(event_id="meeting-1-again"), "rejected", "duplicate_meeting"),
            log_row(cast("R-1", {"2": "for"})),
            log_row(substitution("s1", "Ann Proxy", "Carl Sub", 2)),
            log_row(substitution("s2", "Nobody", "Dana Sub", 3), "rejected", "not_proxy_holder"),
            log_row(PollsClosed(event_id="close-1", meeting_id="m1", closed_at=at(5), items=["1.1"])),
            log_row(register_event(meeting_id="m2")),
        ],
    )


def state(judge: Judge) -> dict:
    """What a judge decides from: each meeting's register, entitlements, closures and proxy links."""
    return {
        m: (
            meeting.positions,
            meeting.entitlements,
            meeting.closed_all_at,
            meeting.closed_item_at,
            judge.proxies[m].links(),
            judge.proxies[m].holders("R-1", at(3)),
        )
        for m, meeting in judge.meetings.items()
    }


async def test_load_judge_gives_the_judge_each_former_query_gave(pg_dsn):
    conn = await connect(pg_dsn)
    try:
        await logged(conn)
        # The ledger: every meeting, from the start, then from the position it had reached.
        before = Judge()
        for row in await conn.fetch(OLD_RANGE, 0, None):
            before.apply_accepted(decode(row["payload"]))
        whole = await log_admin.load_judge(conn)
        assert state(whole.judge) == state(before) and set(whole.judge.meetings) == {"m1", "m2"}
        first = await log_admin.load_judge(conn, up_to=5)
        advanced = await log_admin.load_judge(conn, first.judge, after=first.applied[-1][0])
        assert advanced.judge is first.judge and state(advanced.judge) == state(before)
        assert [p for p, _ in first.applied + advanced.applied] == [
            r["position"] for r in await conn.fetch(OLD_RANGE, 0, None)
        ]
        probe = cast("R-2", {"1.1": "for"}, executed=6)
        assert whole.judge.judge(probe) == before.judge(probe) == "poll_closed"

        # The proxy report and a control number's history: one meeting, with its closures' positions.
        mine, closures = Judge(), []
        for row in await conn.fetch(OLD_MEETING, "m1"):
            event = decode(row["payload"])
            mine.apply_accepted(event)
            if isinstance(event, PollsClosed):
                closures.append((row["position"], event))
        one = await log_admin.load_judge(conn, meeting_id="m1")
        assert state(one.judge) == state(mine) and set(one.judge.meetings) == {"m1"}
        assert [(p, e) for p, e in one.applied if isinstance(e, PollsClosed)] == closures == [(8, closures[0][1])]

        # The projector: up to its checkpoint, leaving out a meeting it had given up on.
        projection = Projection()
        for row in await conn.fetch(OLD_RANGE, 0, 6):
            if row["meeting_id"] != "m2":
                projection.apply(decode_logged(row["payload"]))
        loaded = await log_admin.load_judge(conn, up_to=6, isolate=True, skip={"m2"})
        assert state(loaded.judge) == state(projection.state) and not loaded.broken
        assert set(loaded.judge.meetings) == set(projection.tallies) == {"m1"}
    finally:
        await conn.close()

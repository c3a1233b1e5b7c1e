"""One way to rebuild a judge from the log's admin rows: as the live judge, incrementally, isolating a bad meeting."""

import pytest

from events import JUDGE_TAGS, MalformedMessage, PollsClosed, ProxySubstituted, encode, tag_of
from projections.judge import Judge
from projections.judge_rebuild import rebuild_judge
from tests.factories import at, cast, register_event, small_meeting


def admin_log():
    """A live judge and the (position, meeting_id, payload) rows the log would hold for its accepted admin rows."""
    judge, rows = Judge(), []
    events = [
        small_meeting(),
        small_meeting(event_id="meeting-2", meeting_id="m2"),
        register_event(),
        register_event(meeting_id="m2"),
        cast("R-1", {"2": "for"}),
        ProxySubstituted(
            event_id="s1",
            meeting_id="m1",
            proxy_holder="Ann Proxy",
            substitute="Carl Sub",
            executed_at=at(2),
            received_at=at(2),
        ),
        PollsClosed(event_id="close-1", meeting_id="m1", closed_at=at(5), items=["1.1"]),
    ]
    for position, event in enumerate(events, start=1):
        if judge.judge(event) is None and tag_of(event) in JUDGE_TAGS:
            rows.append((position, event.meeting_id, encode(event).decode()))
    return judge, rows


def same_state(a: Judge, b: Judge) -> None:
    assert a.meetings.keys() == b.meetings.keys() == a.proxies.keys() == b.proxies.keys()
    for meeting_id in a.meetings:
        assert a.meetings[meeting_id].positions == b.meetings[meeting_id].positions
        assert a.meetings[meeting_id].entitlements == b.meetings[meeting_id].entitlements
        assert a.proxies[meeting_id].links() == b.proxies[meeting_id].links()
        assert a.proxies[meeting_id].holders("R-1", at(3)) == b.proxies[meeting_id].holders("R-1", at(3))
    probe = cast("R-2", {"1.1": "for"}, executed=6)
    assert a.judge(probe) == b.judge(probe) == "poll_closed"


def test_a_judge_rebuilt_from_the_admin_rows_decides_like_the_live_one():
    live, rows = admin_log()
    rebuilt = rebuild_judge(rows)
    same_state(rebuilt.judge, live)
    assert [at_ for at_, _ in rebuilt.applied] == [p for p, _, _ in rows] and not rebuilt.broken


def test_a_judge_advanced_with_the_rows_after_its_position_equals_one_rebuilt_at_once():
    live, rows = admin_log()
    first = rebuild_judge(rows[:3])
    rest = rebuild_judge(rows[3:], first.judge)
    assert rest.judge is first.judge
    same_state(rest.judge, live)


def test_rows_of_a_skipped_meeting_are_left_out():
    _, rows = admin_log()
    rebuilt = rebuild_judge(rows, skip={"m2"})
    assert set(rebuilt.judge.meetings) == {"m1"} and all(e.meeting_id == "m1" for _, e in rebuilt.applied)


def test_a_row_that_does_not_decode_raises_unless_its_meeting_is_isolated():
    _, rows = admin_log()
    bad = [(p, m, '{"type": "positions.recorded"' if (m, p) == ("m2", 4) else payload) for p, m, payload in rows]
    with pytest.raises(MalformedMessage):
        rebuild_judge(bad)
    rebuilt = rebuild_judge(bad, isolate=True)
    assert set(rebuilt.broken) == {"m2"} and rebuilt.broken["m2"][0] == 4
    assert rebuilt.broken["m2"][1].startswith("MalformedMessage: invalid_json")
    assert set(rebuilt.judge.meetings) == set(rebuilt.judge.proxies) == {"m1"}

"""One definition of the events' tags: the wire tag of each event, the admin events, a judge's rows."""

import typing
from importlib import resources

from events import ADMIN_EVENTS, ADMIN_TAGS, EVENT_TYPES, JUDGE_TAGS, AdminEvent, tag_of
from tests.factories import cast, register_event, small_meeting


def test_every_event_is_tagged_with_its_registered_wire_tag():
    for tag, cls in EVENT_TYPES.items():
        assert cls.__struct_config__.tag == tag
    assert tag_of(cast("R-1", {"1": "for"})) == "vote.cast"
    assert tag_of(small_meeting()) == "meeting.scheduled"
    assert tag_of(register_event()) == "positions.recorded"


def test_the_admin_events_are_the_admin_union_and_nothing_else():
    assert ADMIN_EVENTS == typing.get_args(AdminEvent)
    assert ADMIN_TAGS == (
        "meeting.scheduled",
        "positions.recorded",
        "polls.closed",
        "channel.key_registered",
        "channel.key_revoked",
        "meeting.adjourned",
        "meeting.cutoff_changed",
        "meeting.corrected",
    )


def test_a_judge_is_rebuilt_from_the_admin_events_and_the_proxy_substitutions_in_the_indexed_order():
    # The order of the partial index ledger_log_admin_rows (016_amendments.sql, the latest to define it), which
    # the admin queries name literally.
    assert JUDGE_TAGS == (*ADMIN_TAGS, "proxy.substituted")
    index = (resources.files("services.adapters.postgres") / "migrations" / "016_amendments.sql").read_text()
    assert "WHERE type IN ({})".format(", ".join(f"'{t}'" for t in JUDGE_TAGS)) in " ".join(index.split())
    assert set(JUDGE_TAGS) - set(ADMIN_TAGS) == {"proxy.substituted"}

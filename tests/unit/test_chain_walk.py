"""The audit's walk of one meeting's chain, shared by `audit verify` online and from a file."""

from dataclasses import replace

from events import decode
from projections.chain_walk import ChainWalk
from projections.log_row import chained_records
from tests.chain_helpers import RECORDED, as_chain_row, rechain, row
from tests.factories import cast, register_event, small_meeting


def meeting_rows():
    """A meeting's chain as the ledger writes it: scheduled, its register, an accepted and a rejected vote."""
    rows = [
        row(small_meeting()),
        row(register_event(), offset=1),
        row(cast("R-1", {"2": "for"}), offset=2),
        row(cast("R-9", {"2": "for"}), "rejected", "not_entitled", offset=3),
    ]
    return [as_chain_row(r) for r in chained_records(rows, 0, {}, RECORDED)]


def walked(rows, expect_hash=None) -> ChainWalk:
    walk = ChainWalk.expecting(expect_hash)
    for r in rows:
        walk.feed(r, decode(r.payload))
    return walk


def test_an_untouched_chain_walks_clean_through_a_published_hash():
    rows = meeting_rows()
    walk = walked(rows, f"2:{rows[1].hash.hex()}")
    assert (walk.rows, walk.v1_rows, walk.chain_break, walk.misjudged) == (4, 0, None, None)
    assert walk.final_hash == rows[-1].hash.hex() and walk.anchor_holds()
    assert walk.scheduled and walk.problems("m1") == []


def test_a_decision_flipped_and_rehashed_keeps_the_chain_but_not_the_rules():
    rows = meeting_rows()
    forged = rechain([*rows[:3], replace(rows[3], decision="accepted", reason=None)])
    walk = walked(forged)
    assert walk.chain_break is None and walk.misjudged is not None and walk.misjudged.position == 4
    assert not walked(forged, rows[-1].hash.hex()).anchor_holds()  # the end published earlier


def test_a_removed_row_breaks_the_chain_and_a_missing_schedule_is_a_problem():
    rows = meeting_rows()
    assert walked([rows[0], *rows[2:]]).chain_break is not None
    unscheduled = walked(rechain(rows[1:]))
    assert not unscheduled.scheduled
    assert unscheduled.problems("m1") and "no accepted meeting.scheduled" in unscheduled.problems("m1")[0]

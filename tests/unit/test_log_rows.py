"""The rows the ledger writes: chained as the verifier checks them, parked details that PostgreSQL can store."""

from projections.chain import ChainCheck
from projections.log_row import LOG_COLUMNS, ParkedMessage, chained_records
from tests.chain_helpers import RECORDED, as_chain_row, row
from tests.factories import cast, register_event, small_meeting


def test_chained_records_link_each_meeting_on_its_own_chain_and_verify_as_written():
    other = small_meeting(event_id="meeting-2", meeting_id="m2")
    rows = [
        row(small_meeting()),
        row(other, offset=1),
        row(register_event(), offset=2),
        row(cast("R-1", {"2": "for"}), offset=3),
        row(cast("R-9", {"2": "for"}), "rejected", "unknown_control_number", offset=4),
    ]
    heads: dict[str, tuple[int, bytes]] = {}
    records = chained_records(rows, 10, heads, RECORDED)
    assert [r[0] for r in records] == [11, 12, 13, 14, 15]
    by_column = [dict(zip(LOG_COLUMNS, r, strict=True)) for r in records]
    assert [(r["meeting_id"], r["prev_position"]) for r in by_column] == [
        ("m1", None),
        ("m2", None),
        ("m1", 11),
        ("m1", 13),
        ("m1", 14),
    ]
    for meeting_id in ("m1", "m2"):
        check = ChainCheck()
        check.feed([as_chain_row(r) for r in records if r[1] == meeting_id])
        assert check.first_break is None
        assert heads[meeting_id] == (check.last_position, check.last_hash)


def test_chained_records_continue_a_chain_from_its_stored_head():
    rows = [row(small_meeting()), row(register_event(), offset=1), row(cast("R-1", {"2": "for"}), offset=2)]
    whole = chained_records(rows, 0, {}, RECORDED)
    heads: dict[str, tuple[int, bytes]] = {}
    first = chained_records(rows[:1], 0, heads, RECORDED)
    rest = chained_records(rows[1:], 1, heads, RECORDED)
    assert first + rest == whole


def test_a_parked_detail_holds_no_nul_and_at_most_2000_characters():
    parked = ParkedMessage("votes.submissions", 0, 7, None, b"\x00", "invalid_json", "bad \x00 byte" + "x" * 3000)
    assert "\x00" not in parked.detail and parked.detail.startswith("bad \\u0000 byte")
    assert len(parked.detail) == 2000


def test_chained_records_hash_the_broker_append_time_under_chain_v3_and_store_it_in_its_column():
    appended = RECORDED.replace(microsecond=5)
    rows = [row(small_meeting()), row(register_event(), offset=1)]
    rows[1].appended_at = appended
    records = chained_records(rows, 0, {}, RECORDED)
    by_column = [dict(zip(LOG_COLUMNS, r, strict=True)) for r in records]
    assert [(r["appended_at"], r["chain_version"]) for r in by_column] == [(None, 3), (appended, 3)]
    check = ChainCheck()
    check.feed([as_chain_row(r) for r in records])
    assert check.first_break is None
    moved = {**by_column[1], "appended_at": appended.replace(microsecond=6)}
    check = ChainCheck()
    check.feed([as_chain_row(records[0]), as_chain_row(tuple(moved[c] for c in LOG_COLUMNS))])
    assert check.first_break.position == 2

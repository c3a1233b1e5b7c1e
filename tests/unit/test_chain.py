"""The hash chain, pure: links, canonical bytes, and how a check reports the first break."""

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from projections.chain import (
    GENESIS,
    ChainCheck,
    ChainRow,
    ParkedCheck,
    ParkedRow,
    canonical,
    canonical_parked,
    canonical_v2,
    canonical_v3,
    link,
    micros,
)
from projections.chain_forms import canonical_v3_micros
from projections.heads import Head, HeadCheck, decode_head, encode_head
from tests.chain_helpers import hashes, rechain


def chain_of(n: int, meeting: str = "m1", start: int = 1, step: int = 1) -> list[ChainRow]:
    raw = [
        (p, meeting, f"e{p}", "vote.cast", "accepted", None, f'{{"n": {p}}}')
        for p in range(start, start + n * step, step)
    ]
    return [
        ChainRow(p, prev, m, e, t, d, r, payload, h)
        for (p, m, e, t, d, r, payload), (prev, h) in zip(raw, hashes(raw), strict=True)
    ]


def test_the_first_row_chains_to_the_genesis_and_each_next_row_to_its_predecessor():
    rows = chain_of(3, step=5)
    assert rows[0].prev_position is None and rows[0].hash == rows[0].expected_hash(GENESIS)
    assert rows[1].prev_position == 1 and rows[1].hash == link(
        rows[0].hash, canonical(6, 1, "m1", "e6", "vote.cast", "accepted", None, '{"n": 6}')
    )


def test_canonical_bytes_are_a_json_array_an_auditor_can_rebuild():
    assert (
        canonical(7, 3, "m1", "e7", "vote.cast", "rejected", "not_entitled", '{"a":"é"}')
        == '[7,3,"m1","e7","vote.cast","rejected","not_entitled","{\\"a\\":\\"é\\"}"]'.encode()
    )


def test_an_intact_chain_checks_clean_and_ends_on_the_last_hash():
    rows = chain_of(50)
    check = ChainCheck()
    check.feed(rows)
    assert check.first_break is None and check.last_hash == rows[-1].hash and check.rows == 50


def test_a_changed_reason_breaks_the_chain_at_that_row():
    rows = chain_of(10)
    rows[4] = ChainRow(**{**vars(rows[4]), "reason": "poll_closed"})
    check = ChainCheck()
    check.feed(rows)
    assert (check.first_break.position, check.first_break.problem) == (5, "altered")


def test_a_removed_row_is_named_by_the_position_its_successor_points_to():
    rows = chain_of(10, step=3)
    del rows[6]
    check = ChainCheck()
    check.feed(rows)
    assert (check.first_break.position, check.first_break.problem) == (19, "missing")


def test_rows_logged_before_the_chain_existed_are_reported_not_trusted():
    rows = chain_of(3)
    rows[0] = ChainRow(**{**vars(rows[0]), "hash": None})
    check = ChainCheck()
    check.feed(rows)
    assert check.first_break.problem == "unhashed"


# Chain v2 (migration 010): recorded_at and the Kafka source are covered; v1 rows keep verifying.

T0 = datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)


def chain_v2(n: int, after: list[ChainRow] | None = None) -> list[ChainRow]:
    before = after or []
    start = (before[-1].position, before[-1].hash) if before else (None, GENESIS)
    first = before[-1].position + 1 if before else 1
    rows = [
        ChainRow(
            p,
            None,
            "m1",
            f"e{p}",
            "vote.cast",
            "accepted",
            None,
            f'{{"n": {p}}}',
            None,
            2,
            T0 + timedelta(seconds=p),
            "votes.submissions",
            0,
            p,
        )
        for p in range(first, first + n)
    ]
    return before + rechain(rows, start)


def check(rows) -> ChainCheck:
    result = ChainCheck()
    result.feed(rows)
    return result


def test_v2_canonical_bytes_add_the_version_recorded_at_in_microseconds_and_the_kafka_source():
    assert (
        canonical_v2(7, 3, "m1", "e7", "vote.cast", "accepted", None, "{}", T0, "votes.submissions", 2, 41)
        == f'[2,7,3,"m1","e7","vote.cast","accepted",null,"{{}}",{micros(T0)},"votes.submissions",2,41]'.encode()
    )
    assert micros(T0) == 1_795_946_400_123_456  # whole microseconds since 1970 UTC, as PostgreSQL stores them
    assert micros(T0.astimezone(timezone(timedelta(hours=8)))) == micros(T0)  # the instant, not its offset


def test_a_v2_chain_verifies_and_a_changed_recorded_at_breaks_it_at_that_row():
    rows = chain_v2(10)
    assert check(rows).first_break is None and check(rows).v1_rows == 0
    rows[6] = replace(rows[6], recorded_at=rows[6].recorded_at - timedelta(microseconds=1))
    assert (check(rows).first_break.position, check(rows).first_break.problem) == (7, "altered")


def test_a_changed_source_offset_breaks_a_v2_row():
    rows = chain_v2(5)
    rows[2] = replace(rows[2], source_offset=999)
    assert check(rows).first_break.position == 3


def test_v1_rows_logged_before_the_migration_keep_verifying_and_v2_rows_continue_their_chain():
    rows = chain_v2(5, after=chain_of(5))
    result = check(rows)
    assert result.first_break is None and (result.rows, result.v1_rows) == (10, 5)


def test_a_v2_row_relabelled_v1_and_re_hashed_is_a_downgrade():
    rows = chain_v2(5, after=chain_of(3))
    forged = rechain([*rows[:6], replace(rows[6], chain_version=1), *rows[7:]])
    assert (check(forged).first_break.position, check(forged).first_break.problem) == (7, "altered")
    assert "under chain v1 after a row under v2" in check(forged).first_break.detail


# Chain v3 (migration 014): the broker's append time is covered too, null when the record has none.

APPENDED = T0 - timedelta(milliseconds=250)


def chain_v3(n: int, after: list[ChainRow] | None = None, appended: bool = True) -> list[ChainRow]:
    before = after or []
    start = (before[-1].position, before[-1].hash) if before else (None, GENESIS)
    first = before[-1].position + 1 if before else 1
    return before + rechain(
        [
            replace(row, chain_version=3, appended_at=APPENDED + timedelta(seconds=row.position) if appended else None)
            for row in chain_v2(n + first - 1)[first - 1 :]
        ],
        start,
    )


def test_v3_canonical_bytes_are_v2s_with_3_first_and_the_broker_append_time_in_microseconds_or_null_last():
    common = (7, 3, "m1", "e7", "vote.cast", "accepted", None, "{}", T0, "votes.submissions", 2, 41)
    v2 = canonical_v2(*common)
    assert canonical_v3(*common, APPENDED) == b"[3" + v2[2:-1] + f",{micros(APPENDED)}]".encode()
    assert canonical_v3(*common, None) == b"[3" + v2[2:-1] + b",null]"


def test_a_v3_chain_after_v1_and_v2_rows_verifies_and_a_changed_append_time_breaks_it_at_that_row():
    rows = chain_v3(4, after=chain_v2(3, after=chain_of(2)))
    assert check(rows).first_break is None and check(rows).v1_rows == 2
    assert check(chain_v3(3, appended=False)).first_break is None  # no broker time: null, covered as such
    for appended_at in (rows[6].appended_at + timedelta(microseconds=1), None):
        edited = [*rows[:6], replace(rows[6], appended_at=appended_at), *rows[7:]]
        assert (check(edited).first_break.position, check(edited).first_break.problem) == (7, "altered")


def test_a_v3_row_relabelled_v2_and_re_hashed_is_a_downgrade():
    rows = chain_v3(4, after=chain_v2(2))
    forged = rechain([*rows[:4], replace(rows[4], chain_version=2, appended_at=None), *rows[5:]])
    assert (check(forged).first_break.position, check(forged).first_break.problem) == (5, "altered")
    assert "under chain v2 after a row under v3" in check(forged).first_break.detail


def test_a_row_under_an_unknown_chain_version_is_altered():
    rows = rechain([*chain_v3(2), replace(chain_v3(3)[2], chain_version=4)])
    assert (check(rows).first_break.position, check(rows).first_break.problem) == (3, "altered")


def parked(n: int) -> list[ParkedRow]:
    rows = [
        ParkedRow(
            i * 2,
            None,
            "votes.submissions",
            1,
            100 + i,
            b"k" if i % 2 else None,
            b"\xff\x00" * i,
            "undecodable",
            f"bad {i}",
            T0 + timedelta(seconds=i),
            None,
        )
        for i in range(1, n + 1)
    ]
    return rechain(rows)


def test_parked_messages_chain_by_id_over_their_bytes_reason_and_time():
    rows = parked(6)
    assert check(rows).first_break is None and rows[1].prev_position == 2
    assert (
        canonical_parked(4, 2, "t", 0, 9, None, b"\xff", "undecodable", "x", T0)
        == f'[1,4,2,"t",0,9,null,"ff","undecodable","x",{micros(T0)}]'.encode()
    )
    for change in ({"value": b"\xfe"}, {"reason": "refused_by_database"}, {"parked_at": T0}, {"key": b"K"}):
        edited = [*rows[:3], replace(rows[3], **change), *rows[4:]]
        assert check(edited).first_break.position == 8, change


def test_a_deleted_parked_message_is_named_by_its_successor():
    rows = parked(5)
    del rows[2]
    assert (check(rows).first_break.position, check(rows).first_break.problem) == (6, "missing")


def head(row: ChainRow, rows: int) -> Head:
    return Head(
        chain="meeting",
        meeting_id="m1",
        position=row.position,
        hash=row.hash.hex(),
        rows=rows,
        recorded_at=row.recorded_at.isoformat(),
        published_at=T0.isoformat(),
    )


def head_check(rows: list[ChainRow], heads: list[Head]) -> HeadCheck:
    result = HeadCheck(heads)
    result.feed((r.position, r.hash) for r in rows)
    result.finish()
    return result


def test_a_log_that_keeps_every_published_head_passes_and_names_the_latest():
    rows = chain_v2(20)
    result = head_check(rows, [head(rows[4], 5), head(rows[19], 20), head(rows[9], 10)])
    assert not result.failures and result.latest.position == 20 and result.as_dict()["checked"] == 3


def test_an_edit_re_hashed_to_the_end_fails_the_first_head_after_it():
    rows = chain_v2(20)
    heads = [head(rows[4], 5), head(rows[9], 10), head(rows[19], 20)]
    forged = rechain([*rows[:7], replace(rows[7], payload='{"n": "forged"}'), *rows[8:]])
    assert check(forged).first_break is None  # the chain alone cannot see it
    failures = head_check(forged, heads).failures
    assert [f.head.position for f in failures] == [10, 20] and "re-hashed" in failures[0].detail


def test_a_tail_cut_after_a_head_was_published_fails_that_head():
    rows = chain_v2(20)
    failures = head_check(rows[:15], [head(rows[9], 10), head(rows[19], 20)]).failures
    assert [f.head.position for f in failures] == [20] and "removed from its end" in failures[0].detail
    assert head_check([], [head(rows[0], 1)]).failures[0].detail.startswith("the chain is empty")


def test_a_row_removed_before_a_head_and_re_linked_fails_on_the_missing_position_or_the_count():
    rows = chain_v2(10)
    relinked = rechain([*rows[:3], *rows[4:]])
    failures = head_check(relinked, [head(rows[3], 4), head(rows[9], 10)]).failures
    assert [f.head.position for f in failures] == [4, 10] and "no row at position 4" in failures[0].detail


def test_heads_travel_as_tagged_json_and_anything_else_is_refused():
    rows = chain_v2(3)
    published = head(rows[2], 3)
    value = encode_head(published)
    assert value.startswith(b'{"type":"chain.head","v":1,"chain":"meeting","meeting_id":"m1","position":3,')
    assert decode_head(value) == published
    with pytest.raises(msgspec.ValidationError):
        decode_head(value.replace(b'"chain.head"', b'"vote.cast"'))
    with pytest.raises(msgspec.DecodeError):
        decode_head(b"\xff")


def test_messages_parked_before_the_chain_are_counted_as_not_covered_but_one_after_it_breaks_the_chain():
    legacy = [replace(row, hash=None) for row in parked(2)]
    chained = rechain(parked(5)[2:])
    result = ParkedCheck()
    result.feed([*legacy, *chained])
    assert (result.legacy, result.rows, result.first_break) == (2, 3, None)
    result = ParkedCheck()
    result.feed([*chained, replace(parked(7)[-1], hash=None, prev_position=chained[-1].position)])
    assert result.first_break.problem == "unhashed" and result.legacy == 0


def test_a_link_is_sha256_of_the_previous_hash_then_the_canonical_bytes_as_docs_publish_it():
    # link feeds the two parts to SHA-256 without joining them (issue 15): the digest must stay the published one.
    prev, body = (
        bytes(range(32)),
        canonical_v3(7, 3, "m1", "e7", "vote.cast", "accepted", None, '{"a":"\\""}', T0, "t", 0, 1, T0),
    )
    assert link(prev, body) == hashlib.sha256(prev + body).digest()


def test_v3_canonical_bytes_from_microseconds_equal_those_from_the_datetimes():
    common = (7, 3, "m1", "e7", "vote.cast", "rejected", "poll_closed", '{"x": 1}')
    source = ("votes.submissions", 2, 41)
    assert canonical_v3(*common, T0, *source, APPENDED) == canonical_v3_micros(
        *common, micros(T0), *source, micros(APPENDED)
    )
    assert canonical_v3(*common, T0, *source, None) == canonical_v3_micros(*common, micros(T0), *source, None)

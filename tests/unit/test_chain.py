"""The hash chain, pure: links, canonical bytes, and how a check reports the first break."""

from projections.chain import GENESIS, ChainCheck, ChainRow, canonical, hashes, link


def chain_of(n: int, meeting: str = "m1", start: int = 1, step: int = 1) -> list[ChainRow]:
    raw = [(p, meeting, f"e{p}", "vote.cast", "accepted", None, f'{{"n": {p}}}') for p in range(start, start + n * step, step)]
    return [ChainRow(p, prev, m, e, t, d, r, payload, h)
            for (p, m, e, t, d, r, payload), (prev, h) in zip(raw, hashes(raw))]


def test_the_first_row_chains_to_the_genesis_and_each_next_row_to_its_predecessor():
    rows = chain_of(3, step=5)
    assert rows[0].prev_position is None and rows[0].hash == rows[0].expected_hash(GENESIS)
    assert rows[1].prev_position == 1 and rows[1].hash == link(rows[0].hash, canonical(
        6, 1, "m1", "e6", "vote.cast", "accepted", None, '{"n": 6}'))


def test_canonical_bytes_are_a_json_array_an_auditor_can_rebuild():
    assert canonical(7, 3, "m1", "e7", "vote.cast", "rejected", "not_entitled", '{"a":"é"}') == \
        '[7,3,"m1","e7","vote.cast","rejected","not_entitled","{\\"a\\":\\"é\\"}"]'.encode()


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

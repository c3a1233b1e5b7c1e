"""The compact form (migration 019): the ledger writes it on every row, the folds read it, `audit verify` checks it."""

import asyncpg
import msgspec
import pytest

from events import COMPACT_FORMAT, decode, decode_compact, encode_compact
from services.adapters.kafka.topics import producer, publish
from services.read.verify import verify_meeting
from services.runtime.rebuild import replay_meeting
from tests.factories import cast, register_event, revoke, small_meeting
from tests.integration.helpers import cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

VOTES = [
    cast("R-1", {"2": "for"}, executed=1),
    cast("R-2", {"2": "against"}, executed=2, channel="phone"),
    revoke("R-1", executed=3),
    cast("X-9", {"2": "for"}),  # rejected: not_entitled
    cast("R-2", {"5": "for"}),  # rejected: invalid_choice
]
TOTAL = 2 + len(VOTES)
TALLY = "SELECT option, sum(shares) FROM tally_buckets WHERE meeting_id = 'm1' AND item_id = '2' GROUP BY 1"


@pytest.fixture
async def logged(settings):
    """The meeting's rows as the ledger appended them (nothing projected yet); yields a superuser connection."""
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event(), *VOTES])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", TOTAL)
    conn = await asyncpg.connect(settings.pg_dsn)
    yield conn
    await conn.close()


async def as_attacker(conn, sql: str, *args) -> None:
    """As database superuser in replica mode, past the append-only triggers, as an attacker could."""
    await conn.execute("SET session_replication_role = replica")
    await conn.execute(sql, *args)
    await conn.execute("SET session_replication_role = origin")


async def test_the_ledger_writes_every_rows_compact_form_as_its_payloads_decoding(logged):
    rows = await logged.fetch("SELECT decision, payload::text AS payload, compact FROM ledger_log ORDER BY position")
    assert [r["decision"] for r in rows].count("rejected") == 2
    for row in rows:  # accepted and rejected alike
        assert row["compact"][0] == COMPACT_FORMAT
        assert row["compact"] == encode_compact(decode(row["payload"]))


async def test_the_folds_read_the_compact_form_and_verify_names_one_that_is_not_the_payloads(settings, logged):
    position = await logged.fetchval("SELECT position FROM ledger_log WHERE event_id = $1", VOTES[1].event_id)
    forged = msgspec.structs.replace(VOTES[1], choices={"2": "for"})
    await as_attacker(
        logged, "UPDATE ledger_log SET compact = $1 WHERE position = $2", encode_compact(forged), position
    )
    await run_projector(settings, TOTAL)
    # The projector counted the forged form: the folds read it, not the payload.
    assert dict(await logged.fetch(TALLY)).get("against", 0) == 0
    result = await verify_meeting(logged, "m1")
    assert not result.ok
    assert result.compact_mismatch == {"position": position, "rows": 1}
    assert result.chain_break is None  # the payload and the chain are untouched
    assert result.tally_mismatches  # and the tally recomputed from payloads is not the projection
    code, out, _ = await cli(settings, "audit", "verify", "--meeting", "m1", "--no-heads")
    assert code == 1
    assert f"FAIL compact_mismatch: row {position}'s compact form is not its payload's decoding (1 row(s))" in out


async def test_rows_without_a_compact_form_or_of_another_format_are_folded_from_their_payload(settings, logged):
    older = await logged.fetchval("SELECT position FROM ledger_log WHERE event_id = $1", VOTES[0].event_id)
    future = await logged.fetchval("SELECT position FROM ledger_log WHERE event_id = $1", VOTES[1].event_id)
    await as_attacker(logged, "UPDATE ledger_log SET compact = NULL WHERE position = $1", older)  # as before 019
    stored = await logged.fetchval("SELECT compact FROM ledger_log WHERE position = $1", future)
    assert decode_compact(stored) is not None
    await as_attacker(
        logged,
        "UPDATE ledger_log SET compact = $1 WHERE position = $2",
        bytes([COMPACT_FORMAT + 1]) + stored[1:],
        future,
    )
    await run_projector(settings, TOTAL)
    assert dict(await logged.fetch(TALLY)).get("against", 0) > 0  # R-2's vote, from its payload
    tally, rows = await replay_meeting(logged, "m1", TOTAL)  # a replay (and `projections rebuild`) reads the same way
    assert rows == TOTAL and tally.voters.keys() == {"R-1", "R-2"}
    result = await verify_meeting(logged, "m1")
    assert result.rows_without_compact == 1
    # Another format is no finding (the folds did not read it), or the first format bump would fail every older row.
    assert result.rows_other_compact_format == 1 and result.compact_mismatch is None
    assert result.tally_compared and not result.tally_mismatches  # the projection folded both from their payloads
    assert result.ok

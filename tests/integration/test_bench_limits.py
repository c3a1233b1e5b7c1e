"""The physical limits on real Kafka and PostgreSQL: every message and row accounted for, the ledger's rows."""

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from events import decode
from projections.chain import ChainCheck, ChainRow
from projections.log_row import LOG_COLUMNS
from services.adapters.kafka.topics import client_options
from services.devtools.bench import limits, scratch
from services.devtools.bench.workload import build
from services.settings import Settings
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration

SIGNATURE_REASONS = {
    "signature_required",
    "unknown_channel",
    "key_not_yet_valid",
    "key_revoked",
    "bad_signature",
    "foreign_event_id",
    "out_of_scope",
}


@pytest.fixture(scope="module")
def workload():
    return build(2000, positions=2000)


@pytest.fixture
def namespace(bench_namespace):
    """A topic namespace on the session's services; its topics are dropped afterwards."""
    return bench_namespace


async def _topics_named(cfg: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(cfg, "operator"))
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(cfg.topic_prefix)]
    finally:
        await admin.close()


async def test_kafka_limit_consumes_every_message_it_produced_and_deletes_its_topic(namespace, workload):
    result = await limits.kafka_limit(namespace, workload)
    assert result["messages"] == result["consumed"] == len(workload.submission_payloads) == 2000
    assert result["bytes"] == sum(len(k) + len(v) for k, v in workload.submission_payloads)
    assert result["produce_per_s"] > 0 and result["consume_per_s"] > 0
    assert result["produce_seconds"] > 0 and result["consume_seconds"] > 0
    assert await _topics_named(namespace) == []


async def test_copy_limit_copies_every_ledger_row_into_the_bare_and_the_indexed_table(namespace, workload):
    result = await limits.copy_limit(namespace, workload)
    expected = len(workload.admin_payloads) + len(workload.submission_payloads)
    assert result["rows"] == result["unindexed_rows_in_table"] == result["indexed_rows_in_table"] == expected
    assert result["indexed_table_indexes"] >= 4  # PK, unique event_id, meeting/position, admin rows
    assert result["unindexed_rows_per_s"] > 0 and result["indexed_rows_per_s"] > 0
    assert result["indexed_bytes"] > result["unindexed_bytes"]  # the indexes take room of their own


async def test_the_copied_rows_chain_their_hashes_as_the_log_verifier_expects(namespace, workload):
    rows = limits.ledger_rows(namespace, workload)
    check = ChainCheck()
    check.feed(
        ChainRow(
            **{
                c: row[LOG_COLUMNS.index(c)]
                for c in (
                    "position",
                    "prev_position",
                    "meeting_id",
                    "event_id",
                    "type",
                    "decision",
                    "reason",
                    "payload",
                    "hash",
                    "chain_version",
                    "recorded_at",
                    "source_topic",
                    "source_partition",
                    "source_offset",
                )
            }
        )
        for row in rows
    )
    assert check.rows == len(rows) and check.first_break is None
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))


async def test_the_copied_rows_are_what_the_running_ledger_logs_for_the_same_messages(settings, workload):
    await scratch.publish_workload(settings, workload.admin_payloads, workload.submission_payloads)
    total = len(workload.admin_payloads) + len(workload.submission_payloads)
    try:
        async with running_ledger(settings):
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", total)
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            logged = await conn.fetch("SELECT * FROM ledger_log")
        finally:
            await conn.close()
    finally:
        await scratch.drop_topics(settings)
    # Positions (and so hashes) depend on how Kafka batched the partitions; everything else must match,
    # the Kafka coordinates included: the fake records sit where the broker put the real ones.
    same = (
        "event_id",
        "type",
        "control_number",
        "channel",
        "executed_at",
        "received_at",
        "decision",
        "reason",
        "payload",
        "source_topic",
        "source_partition",
        "source_offset",
    )
    ours = {tuple(row[LOG_COLUMNS.index(c)] for c in same) for row in limits.ledger_rows(settings, workload)}
    theirs = {tuple(row[c] for c in same) for row in logged}
    assert ours == theirs


async def test_the_workload_is_signed_in_batches_and_unsigned_the_same_submissions_get_the_same_decisions(
    namespace, workload
):
    signed = limits.ledger_rows(namespace, workload)
    unsigned = limits.ledger_rows(namespace, workload.unsigned())
    auths = [decode(payload).auth for _, payload in workload.submission_payloads]
    assert all(auth is not None for auth in auths)
    # Each channel signs its share of a window as one batch: the busiest signs hundreds at once.
    assert max(auth.batch_size for auth in auths if auth) >= 200
    assert all(decode(payload).auth is None for _, payload in workload.unsigned().submission_payloads)

    def decisions(rows: list[tuple]) -> list[tuple]:
        # The unsigned ids are the signed ones out of their channel's namespace ("desk/7" for "desk:7", S6).
        columns = [LOG_COLUMNS.index(c) for c in ("event_id", "decision", "reason")]
        return [(row[columns[0]].replace("/", ":", 1), row[columns[1]], row[columns[2]]) for row in rows]

    # The signatures hold (no signature_required, unknown_channel, bad_signature, ...): the judge decides
    # every submission as it does unsigned on a meeting not requiring signatures.
    assert decisions(signed) == decisions(unsigned)
    assert {row[LOG_COLUMNS.index("reason")] for row in signed}.isdisjoint(SIGNATURE_REASONS)

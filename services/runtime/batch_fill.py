"""Fills a ledger batch with the records already waiting in Kafka, so they do not wait for a batch of their own.

aiokafka fetches a partition again only once its buffered records are handed out. While the ledger commits
batch n, the fetcher buffers the few records that arrive in its first milliseconds and fetches nothing more;
batch n+1 is then those few records, and everything that arrived during batch n waits for it to commit
too. Measured in the log's batch sizes at 300/s: 196, 6, 198, 16, 200, 41, ... (every other batch tiny,
each costing a whole commit with its fsync). Before a batch commits, this asks the broker (on an idle client
of its own, as AdminWatermark does) how far each assigned partition reaches; where records wait beyond the
batch, it takes what the fetcher brings within WAIT_MS into this batch. The whole fill gives up after
TIMEOUT_S; whatever fails, the batch goes on as it came and the consumer's positions are where it left them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.adapters.kafka.topics import client_options, started
from services.settings import Settings

log = logging.getLogger("vote_ledger.ledger")

# Longest wait for the waiting records: a fetch is one broker round trip (~1 ms idle). Records the broker
# counts but the fetch does not return (a transaction's commit marker) cost at most this per batch.
WAIT_MS = 5
# The whole fill (the ListOffsets round trip and the fetch) at most this: aiokafka alone waits longer in both
# (end_offsets up to its request timeout when the broker is slow, a fetch for the end of a rebalance that began
# during it). Measured with a load average of 4.8: a fresh client's first ListOffsets 103 ms (it connects to the
# leader), the next 99 1.0-9.9 ms (p50 1.3); 50 ms cut every first fill. A slow fill costs the batch this, once.
TIMEOUT_S = 0.25


class BatchFill:
    """Reads the assigned partitions' ends and pulls the records waiting past a batch into it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect the idle client that reads end offsets (read committed, as the ledger reads)."""
        self.client = AIOKafkaConsumer(**client_options(self.settings, "ledger"), isolation_level="read_committed")
        await started(self.client)

    async def stop(self) -> None:
        """Disconnect."""
        if self.client is not None:
            await self.client.stop()

    async def fill(self, consumer, records: Sequence[ConsumerRecord], room: int) -> list[ConsumerRecord]:
        """``records`` plus up to ``room`` records waiting right after them; just ``records`` if none or on any error.

        An optimisation only: whatever fails here (the broker, a rebalance, a record the client cannot parse,
        the time bound), the batch goes on as it came, every partition read again from where the batch ended,
        and the failure is left for the consume loop's next getmany to meet (the stall watch's, FastStream's).
        """
        if room <= 0 or self.client is None:
            return list(records)
        before: dict[TopicPartition, int] = {}
        try:
            async with asyncio.timeout(TIMEOUT_S):
                asked = _positions(consumer)
                ends = await self.client.end_offsets(list(asked)) if asked else {}
                # Read again after the round trip (no await from here to the fetch): the stall watch may have
                # paused or sought a partition meanwhile.
                before = {tp: p for tp, p in _positions(consumer).items() if ends.get(tp, 0) > p}
                if not before or consumer._subscription.reassignment_in_progress:
                    return list(records)  # a rebalance: the fetch would wait for its end, for records maybe not ours
                more = await _fetched(consumer, list(before), room)
        except Exception as exc:  # noqa: BLE001 - never the batch's failure: it commits without the extra records
            sought = _restore(consumer, before)
            log.warning(
                "batch of %d not filled (%s: %s); it goes on as it came%s",
                len(records),
                type(exc).__name__,
                exc,
                f", {sought} partition(s) read again from where it ends" if sought else "",
            )
            return list(records)
        return [*records, *(record for batch in more.values() for record in batch)]


async def _fetched(consumer, partitions: list[TopicPartition], room: int) -> dict[TopicPartition, list]:
    """What the consumer's fetcher holds or brings within WAIT_MS for ``partitions``: aiokafka's getmany, less
    what getmany does besides, none of it the fill's to do.

    The instance's getmany is the stall watch's wrapper (shield_getmany): on an offset out of range it parks the
    offsets as lost and skips past them, on a parse error it pauses and rewinds, all under a batch that commits
    regardless. aiokafka's own raises a pending coordinator error (GroupAuthorizationFailedError, ...) and forgets
    it, so the consume loop would never see it; and it counts the call as a poll (fetch_context) in a count that
    is never given back when the call raises or is cut by the time bound, stopping the clock of
    max_poll_interval_ms for good.
    """
    return await consumer._fetcher.fetched_records(partitions, WAIT_MS / 1000, max_records=room)


def _positions(consumer) -> dict[TopicPartition, int]:
    """Next offset to hand out per assigned, unpaused partition (the consumer's own state, no round trip)."""
    positions = {}
    paused = consumer.paused()
    for tp in consumer.assignment():
        if tp in paused:
            continue  # the stall watch's or an operator's pause: not ours to read
        state = consumer._subscription.subscription.assignment.state_value(tp)  # as metrics.consumer_offsets
        if state is not None and state.has_valid_position:
            positions[tp] = state.position
    return positions


def _restore(consumer, before: dict[TopicPartition, int]) -> int:
    """Seek every partition the failed fill asked for back to where the batch ended; how many were.

    Records it drained and dropped (a partition read before another raised, a fetch cut by the time bound) are
    then handed out again, never skipped; the seek also drops a fetched response the client raised in the midst
    of (its parser cannot go on after a record it raised on), so the consume loop's next poll fetches it anew.
    """
    sought = 0
    for tp, position in before.items():
        if tp not in consumer.assignment():
            continue  # revoked meanwhile: its new owner starts from the offsets stored in PostgreSQL
        state = consumer._subscription.subscription.assignment.state_value(tp)
        if state is None or not state.has_valid_position:
            continue  # assigned anew by a rebalance: the assignment listener seeks it to its stored offset
        consumer.seek(tp, position)
        sought += 1
    return sought

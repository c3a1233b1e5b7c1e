"""Fills a ledger batch with the records already waiting in Kafka, so they do not wait for a batch of their own.

aiokafka fetches a partition again only once its buffered records are handed out. While the ledger commits
batch n, the fetcher buffers the few records that arrive in its first milliseconds and fetches nothing more;
batch n+1 is then those few records, and everything that arrived during batch n waits for it to commit
too. Measured in the log's batch sizes at 300/s: 196, 6, 198, 16, 200, 41, ... (every other batch tiny,
each costing a whole commit with its fsync). Before a batch commits, this asks the broker (on an idle client
of its own, as AdminWatermark does) how far each assigned partition reaches; where records wait beyond the
batch, it takes what the fetcher brings within WAIT_MS into this batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.adapters.kafka.topics import client_options, started
from services.settings import Settings

log = logging.getLogger("vote_ledger.ledger")

# Longest wait for the waiting records: a fetch is one broker round trip (~1 ms idle). Records the broker
# counts but the fetch does not return (a transaction's commit marker) cost at most this per batch.
WAIT_MS = 5


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

        An optimisation only: whatever fails here (the broker, a rebalance), the batch goes on as it came.
        """
        if room <= 0 or self.client is None:
            return list(records)
        try:
            positions = _positions(consumer)
            ends = await self.client.end_offsets(list(positions)) if positions else {}
            waiting = [tp for tp, position in positions.items() if ends.get(tp, 0) > position]
            if not waiting:
                return list(records)
            more = await consumer.getmany(*waiting, timeout_ms=WAIT_MS, max_records=room)
        except Exception as exc:  # noqa: BLE001 - never the batch's failure: it commits without the extra records
            log.debug("batch not filled (%s: %s)", type(exc).__name__, exc)
            return list(records)
        return [*records, *(record for batch in more.values() for record in batch)]


def _positions(consumer) -> dict:
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

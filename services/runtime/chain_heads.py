"""Anchors the log outside the database: the ledger publishes chain heads to ``ledger.heads``.

Every ``heads_every_rows`` appended rows or ``heads_every_seconds`` (VOTE_LEDGER_HEADS_EVERY_ROWS,
VOTE_LEDGER_HEADS_EVERY_SECONDS), the ledger publishes, for each meeting whose chain moved, its last
(position, hash), its row count and when that row was recorded, and likewise for the parked
messages' chain (projections/heads.py has the format). Once a head is on the broker, a superuser of
the database can no longer edit and re-hash, or cut, the chain before it without `audit verify`
(which reads the topic from the beginning) naming that head. Heads are read from PostgreSQL, as
committed: a head never names a row that a rollback could take back.

A meeting's head also carries its Merkle tree's head (tree_size, merkle_root), which holders check
their receipts against (projections/receipts.py). The publisher keeps one merkle.Frontier per
meeting (O(log n) hashes) and feeds it the chain hashes of the rows appended since its last
publication; a starting ledger rebuilds them from the whole log's hashes on its first publication,
streamed (memory stays O(log n) per meeting). Measured on this 2-core machine shared with other
work: from 100,000 rows 0.39-0.50 s (0.17-0.23 s reading the hashes, 0.22-0.27 s hashing), so about
4-5 s for 1,000,000 rows by estimate; measured there 8.3-11.4 s (the machine was busier), within one
repeatable-read snapshot. After that, two SHA-256 per appended row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from projections.heads import Head, decode_head, encode_head
from projections.merkle import Frontier
from projections.receipts import log_leaf
from services.adapters.kafka import raw as kafka_raw
from services.adapters.kafka.topics import CONNECT_TIMEOUT_S, client_options, ensure_topics, producer, started
from services.adapters.kafka.topics import unreachable as kafka_unreachable
from services.adapters.postgres.connect import LEDGER_ROLE, connect_as
from services.adapters.postgres.log import heads as log_heads
from services.adapters.postgres.log import proofs as log_proofs
from services.adapters.postgres.log import reads as log_reads
from services.observability import outage
from services.runtime import failures
from services.runtime.retry import Backoff
from services.runtime.tasks import cancel_and_wait
from services.settings import Settings

log = logging.getLogger("vote_ledger.heads")

STOP_TIMEOUT = 10.0  # a stopping ledger waits at most this long to publish its last heads


class HeadsUnavailable(RuntimeError):
    """The heads topic could not be read (broker unreachable, or a message that is not a head)."""


class HeadPublisher:
    """Publishes the chain heads that moved, as a background task of the ledger app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: asyncpg.Connection | None = None
        self.stack: AsyncExitStack | None = None
        self.producer = None
        self.task: asyncio.Task | None = None
        self.seen = 0  # log position up to which rows are in ``trees``
        self.trees: dict[str, Frontier] = {}  # each meeting's Merkle tree up to ``seen`` (its size: its rows)
        self.parked_id: int | None = None  # the parked chain's head last published
        self.last_publication = time.monotonic()
        self.published = 0  # messages sent so far

    def attach(self, app) -> HeadPublisher:
        """Run with a FastStream app: start with it, stop (publishing the last heads) after it."""
        app.on_startup(self.start)
        app.after_shutdown(self.stop)  # after the subscriber stopped: the last batch is in the heads
        return self

    async def start(self) -> None:
        """Start publishing in the background; a broker or database outage is retried, never fatal."""
        self.task = asyncio.create_task(self._run(), name="chain-heads")

    async def stop(self) -> None:
        """Stop the task and publish what moved since the last time (bounded by STOP_TIMEOUT)."""
        if self.task is not None:
            await cancel_and_wait(self.task)
        try:
            await asyncio.wait_for(self._connect_and_publish(), STOP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - stopping must not fail on the anchor
            log.warning("could not publish the last chain heads: %r", exc)
        finally:
            await self._disconnect()

    async def _connect_and_publish(self) -> None:
        await self._connect()
        await self.publish_moved()

    async def _run(self) -> None:
        tick = min(1.0, self.settings.heads_every_seconds)
        backoff = Backoff(first=1.0, cap=outage.CAP_S)
        lost: outage.Dependency | None = None
        while True:
            try:
                await self._connect()
                if await self._due():
                    await self.publish_moved()
                if lost is not None:
                    lost.ok()  # one line: how long the outage lasted
                    lost = None
                backoff.reset()
                await asyncio.sleep(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep anchoring whatever failed; the ledger goes on
                delay = backoff.failed()
                line = f"publishing chain heads failed; retrying in {delay:.0f} s"
                lost = failures.report(exc, "the chain heads publisher", log, line) or lost
                await self._disconnect()
                await asyncio.sleep(delay)

    async def _due(self) -> bool:
        """Whether enough rows or time passed since the last publication."""
        if time.monotonic() - self.last_publication >= self.settings.heads_every_seconds:
            return True
        head = await log_reads.head(self.conn)
        return head - self.seen >= self.settings.heads_every_rows

    async def _connect(self) -> None:
        if self.conn is None or self.conn.is_closed():
            self.conn = await connect_as(self.settings, LEDGER_ROLE)
        if self.producer is None:
            await ensure_topics(self.settings, "ledger")
            self.stack = AsyncExitStack()
            self.producer = await self.stack.enter_async_context(producer(self.settings, "ledger", linger_ms=0))

    async def _disconnect(self) -> None:
        conn, stack = self.conn, self.stack
        self.conn = self.stack = self.producer = None
        # A bounded close: after an outage the server may never answer the goodbye.
        for close in (
            (conn.close(timeout=2) if conn is not None and not conn.is_closed() else None),
            (stack.aclose() if stack is not None else None),
        ):
            if close is not None:
                with contextlib.suppress(Exception):
                    await close

    async def publish_moved(self) -> int:
        """Publish the head of every chain that moved since the last publication; return how many."""
        async with self.conn.transaction(isolation="repeatable_read", readonly=True):
            head = await log_reads.head(self.conn)
            grown = await self._grown(head)
            rows = await log_heads.meeting_heads(self.conn, sorted(grown), head) if grown else []
            parked = await log_heads.parked_head(self.conn)
        now = datetime.now(UTC).isoformat()
        heads = [
            Head(
                chain="meeting",
                meeting_id=r["meeting_id"],
                position=r["position"],
                hash=bytes(r["hash"]).hex(),
                rows=grown[r["meeting_id"]].size,
                recorded_at=r["recorded_at"].isoformat(),
                published_at=now,
                tree_size=grown[r["meeting_id"]].size,
                merkle_root=grown[r["meeting_id"]].root().hex(),
            )
            for r in rows
            if r["hash"] is not None
        ]
        if parked is not None and parked["id"] != self.parked_id:
            heads.append(
                Head(
                    chain="parked",
                    meeting_id=None,
                    position=parked["id"],
                    hash=bytes(parked["hash"]).hex(),
                    rows=parked["rows"],
                    recorded_at=parked["parked_at"].isoformat(),
                    published_at=now,
                )
            )
        sent = [
            await self.producer.send(
                self.settings.heads_topic,
                encode_head(h),
                key=h.meeting_id.encode() if h.meeting_id is not None else None,
            )
            for h in heads
        ]
        await asyncio.gather(*sent)  # acknowledged by the broker (acks=all) before we move on
        # Only now: a failed send publishes the same heads again next time, with the same counts.
        self.seen, self.last_publication = head, time.monotonic()
        self.trees.update(grown)
        if parked is not None:
            self.parked_id = parked["id"]
        self.published += len(heads)
        return len(heads)

    async def _grown(self, head: int) -> dict[str, Frontier]:
        """Copies of the trees of the meetings with rows in (seen, head], fed those rows' chain hashes.

        Copies: the trees move on only once the heads are acknowledged (a failed send starts over).
        """
        grown: dict[str, Frontier] = {}
        async for r in log_proofs.hashes_between(self.conn, self.seen, head):
            tree = grown.get(r["meeting_id"])
            if tree is None:
                kept = self.trees.get(r["meeting_id"], Frontier())
                tree = grown[r["meeting_id"]] = Frontier(kept.size, list(kept.nodes))
            tree.append(log_leaf(bytes(r["hash"]) if r["hash"] is not None else None))
        return grown


async def read_heads(settings: Settings, timeout: float = 20.0) -> list[Head]:
    """Every head published on the heads topic so far, in publication order.

    Raises HeadsUnavailable if the broker does not answer in time; a message that is not a head is
    skipped with a warning (only the ledger should write to the topic). A missing topic has no heads.
    """
    # The operator's login, else the ledger's: both may read the heads (an auditor's tool may hold either).
    consumer = AIOKafkaConsumer(
        **client_options(settings, ("operator", "ledger")),
        enable_auto_commit=False,
        request_timeout_ms=int(timeout * 1000),
    )
    topic = settings.heads_topic
    try:
        await asyncio.wait_for(consumer.start(), min(timeout, CONNECT_TIMEOUT_S))
    except (TimeoutError, KafkaError, OSError) as exc:
        await consumer.stop()
        # Said as every other command says it (the adapter's line), whatever the client raised.
        line = kafka_unreachable(KafkaConnectionError(str(exc)), settings.kafka_bootstrap)
        raise HeadsUnavailable(line) from None
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(settings, topic))]
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        heads: list[Head] = []
        deadline = time.monotonic() + timeout
        for tp in partitions:
            offset = starts[tp]
            while offset < ends[tp]:
                if time.monotonic() > deadline:
                    raise HeadsUnavailable(f"reading {topic} took more than {timeout:.0f} s")
                # Read leniently (services/adapters/kafka/raw.py): one record the Kafka client cannot parse,
                # e.g. a header key that is not UTF-8, must not take every anchor away for good.
                raw, aborted = await kafka_raw.fetch(consumer._client, tp, offset)
                records = [r for r in kafka_raw.parse(raw, aborted) if offset <= r.offset < ends[tp]]
                if not records:
                    offset += 1  # bytes that frame no record: step over them
                    continue
                for record in records:
                    if record.control:
                        continue
                    try:
                        if record.problem:
                            raise ValueError(record.problem)
                        heads.append(decode_head(record.value or b""))
                    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                        # Skipped, loudly: one stray message must not take every published anchor
                        # away from the auditor (a forged head still fails verification, by name).
                        log.warning(
                            "%s offset %d is not a chain head (%s): skipped; only the ledger should"
                            " write to this topic",
                            topic,
                            record.offset,
                            exc,
                            extra={"topic": topic, "offset": record.offset},
                        )
                offset = records[-1].offset + 1
        return heads
    except KafkaError as exc:
        raise HeadsUnavailable(f"cannot read {topic} ({exc!r})") from None
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partition numbers (one, as ensure_topics creates it, unless an operator changed it)."""
    admin = AIOKafkaAdminClient(**client_options(settings, ("operator", "ledger")))
    await started(admin)
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [p["partition"] for p in described["partitions"]] or [0]

"""The ledger's FastStream app: broker, batch subscriber on both topics, rebalance listener, lifecycle."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from services.adapters.kafka.topic_clock import TopicClock, topic_clock
from services.adapters.kafka.topics import AdminWatermark, faststream_security
from services.observability import logs, metrics, outage
from services.runtime import failures, ingest
from services.runtime.answers import AnswerRelay
from services.runtime.batch_fill import BatchFill
from services.runtime.chain_heads import HeadPublisher
from services.runtime.failures import cannot_go_on
from services.runtime.gc_pacing import Pacer
from services.runtime.ledger import Ledger
from services.runtime.ledger_consumer import (
    Halt,
    SeekToStoredOffsets,
    in_fresh_context,
    raw_bodies,
    rewind,
    seek_back,
    tolerant_parser,
)
from services.runtime.retry import Backoff
from services.runtime.stall_watch import StallWatch
from services.runtime.tasks import cancel_and_wait
from services.settings import Settings

log = logging.getLogger("vote_ledger.ledger")


def build_app(settings: Settings) -> tuple[FastStream, Ledger]:
    """Wire the ledger: broker, batch subscriber on both topics, rebalance listener, lifecycle."""
    broker = KafkaBroker(
        # A list: FastStream wraps a string in a list whole, so "host1:9092,host2:9092" (a cluster's bootstrap)
        # reached aiokafka as one malformed address and the ledger found no broker (issue 14).
        [server.strip() for server in (settings.kafka_bootstrap or "").split(",") if server.strip()],
        client_id="vote-ledger-ledger",
        # What the ledger publishes (answers, parked messages, chain heads) is acknowledged only once every
        # in-sync replica has it, and a retried send is not written twice (FastStream's default is acks=1).
        acks="all",
        enable_idempotence=True,
        security=faststream_security(settings, "ledger"),
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.LEDGER, app_name="vote-ledger-ledger")],
        # Ours, not FastStream's own (a handler of its own on stdout, colour codes, not propagated): its
        # lines go through services/observability/logs.py like every other, as JSON when that is asked for.
        logger=log,
    )
    ledger = Ledger(settings)
    ledger.broker = broker
    listener = SeekToStoredOffsets(ledger)
    subscriber = broker.subscriber(
        settings.submissions_topic,
        settings.admin_topic,
        # "none": an offset out of range (records deleted in Kafka) is raised to us, who record the
        # loss, rather than silently reset; partitions never consumed are sought to their start.
        batch=True,
        group_id=settings.consumer_group,
        auto_offset_reset="none",
        max_records=settings.batch_max,
        # Only the wait of an idle poll (getmany returns as soon as a fetch brings records), but FastStream then
        # sleeps as long again: a vote arriving at a trickle waited up to 50 ms more with 50. Idle cost: ~50 polls/s.
        batch_timeout_ms=10,
        # What aiokafka fetches ahead of the batch in hand, bounded in bytes (issue 15): with a backlog every
        # assigned partition holds one fetched response, up to partition_fetch_bytes each and fetch_max_bytes per
        # broker, and a batch is what is buffered (plus BatchFill's one more getmany), up to batch_max records. At
        # 8 MiB a partition (50 MiB in all, aiokafka's default) a signed batch was the full 20,000 records and the
        # ledger alone peaked at 455 MiB with a 100,000 backlog, against 207 MiB at 1 MiB / 16 MiB and the same
        # ingest rate with the cores busy (one run, alternating; up to a fifth slower when they idle: README
        # Benchmarks). Bytes, unlike a record count, bound it whatever the submissions' size.
        fetch_max_bytes=settings.fetch_max_bytes,
        max_partition_fetch_bytes=settings.partition_fetch_bytes,
        listener=listener,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_bodies,
        parser=tolerant_parser,
        # A channel's aborted transaction never happened: its messages are not read, let alone logged.
        isolation_level="read_committed",
        group_instance_id=settings.instance_id or None,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 3, 500),
    )
    listener.subscriber = ledger.subscriber = subscriber
    watermark = AdminWatermark(settings)
    filler = BatchFill(settings)  # records waiting past a batch join it rather than wait for one of their own

    backoff = Backoff(first=0.5, cap=10.0)  # consecutive batches that could not commit: paces the retries
    halt = Halt()  # once a batch cannot go on, no later one commits past it
    pacer = Pacer()  # the judge's state out of full collections: their pauses were the latency's tail (gc_pacing)

    @subscriber
    async def on_batch(message: KafkaMessage) -> None:
        """Append one batch; on failure rewind to the committed offsets and retry later."""
        # Not in FastStream's context: it holds this message, and so the whole batch, in a context variable, and
        # every timer set while the batch is handled (asyncpg's statement-cache expiry, 300 s; the timeouts of
        # Kafka and PostgreSQL calls, kept in the loop's heap after they are cancelled) keeps a copy of the
        # context: 20,000-record batches stayed alive long after their commit (ledger_consumer.in_fresh_context).
        await in_fresh_context(_logged_batch(message, message.raw_message))

    async def _logged_batch(message: KafkaMessage, records) -> None:
        # Every line of this batch (its failures, the one-by-one commits, parked messages) carries its offsets:
        # bound once per batch, not per record (records are bound only on the paths that log them).
        with logs.bind(**ingest.batch_context(records)):
            await _on_batch(message, records)

    async def _on_batch(message: KafkaMessage, records) -> None:
        """Commit the batch; ack it, or seek back to what is deferred, or rewind after a failure."""
        partitions = {TopicPartition(r.topic, r.partition) for r in records}
        if halt.halted:  # an earlier batch gave up: committing this one would move the offsets past it
            await halt.hold(lambda: rewind(subscriber.consumer, ledger, partitions))
            return
        seconds = metrics.Stopwatch()
        try:
            # fill() never raises; what it adds is this batch's from here on (a rewind covers their partitions). The
            # admin watermark is read after it, never before: every record of the batch was published before that read.
            records = await filler.fill(subscriber.consumer, records, settings.batch_max - len(records))
            partitions.update(TopicPartition(r.topic, r.partition) for r in records)
            admin_end = await watermark.end_offsets()
            deferred = await ledger.commit(records, broker, admin_end)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch must not be skipped
            if (reason := cannot_go_on(exc)) is not None:
                halt.give_up(reason)
                failures.give_up(reason)  # services_cmd.serve stops the ledger and exits with this line
                # Neither acked nor committed: rewound, and held until the app stops (no later batch commits).
                await halt.hold(lambda: rewind(subscriber.consumer, ledger, partitions))
                return
            delay = backoff.failed()
            dependency = outage.of(exc)
            # An outage is said once by its dependency (and counted); any other failure is a bug's: its traceback.
            if dependency is not None:
                dependency.failed(exc, "the ledger's batches")
            (log.debug if dependency is not None else log.error)(
                "batch of %d not committed (failure %d in a row); rewinding to the stored offsets, retrying in %.1f s",
                len(records),
                backoff.failures,
                delay,
                exc_info=True,
            )
            try:
                await rewind(subscriber.consumer, ledger, partitions)
            except failures.CannotGoOn as fatal:
                halt.give_up(str(fatal))
                failures.give_up(str(fatal))
                await halt.hold(lambda: rewind(subscriber.consumer, ledger, partitions))
                return
            await asyncio.sleep(delay)
            return
        if backoff.failures:
            outage.postgres().ok()  # a batch committed: PostgreSQL answers (and Kafka gave it)
        backoff.reset()
        metrics.record_batch(len(records), seconds())
        offsets = metrics.consumer_offsets(subscriber.consumer)
        lags = metrics.lag_of(offsets)
        metrics.record_consumer_lag(lags)
        pacer.settle()
        if not any(lags.values()):
            pacer.idle()  # nothing waiting in Kafka: the rare full sweep costs no vote its pause
        ledger.backlog.note(offsets)  # /readyz: how long the oldest unconsumed record has waited
        if deferred:
            # Meeting administration is behind: read it first, then these submissions again. If
            # only transaction markers are left on it, no batch will ever come to move its offset:
            # the stall watch reads it now and moves the offset past them.
            watch.nudge()
            await seek_back(subscriber.consumer, deferred)
            await asyncio.sleep(0.1)
            return
        # Kafka's own commit is informational (lag dashboards); PostgreSQL holds the truth.
        try:
            await message.ack()
        except CommitFailedError:
            # The group rebalanced since this batch was read (another member owns its partitions now): the batch
            # is committed in PostgreSQL; this escaped as an ERROR with a 45-line traceback per rebalance.
            log.info("batch committed; Kafka refused its informational offset commit after a rebalance")

    app = FastStream(broker, logger=log)

    async def check_clock() -> None:
        await warn_of_topic_clock(settings)

    app.on_startup(check_clock)
    app.on_startup(ledger.start)
    app.on_startup(watermark.start)
    app.on_startup(filler.start)
    HeadPublisher(settings).attach(app)  # anchors every meeting's chain on ledger.heads as the log grows
    AnswerRelay(settings).attach(app)  # one answer per logged or parked submission on votes.decisions
    watch = StallWatch(
        settings,
        ledger,
        subscriber,
        broker,
        watermark,
        rewind=lambda partitions: rewind(subscriber.consumer, ledger, partitions),
    )
    app.after_startup(watch.start)  # the consumer exists once the broker has started
    kafka_watch = KafkaWatch(broker)
    app.after_startup(kafka_watch.start)
    app.on_shutdown(kafka_watch.stop)
    app.on_shutdown(halt.stop)  # before the broker stops: a held batch returns, its consumer is stopped
    app.on_shutdown(watch.stop)
    app.after_shutdown(ledger.stop)
    app.after_shutdown(watermark.stop)
    app.after_shutdown(filler.stop)
    return app, ledger


class KafkaWatch:
    """Asks Kafka every WATCH_S whether it answers, so the log says when it went and when it came back.

    aiokafka retries on its own (its fetcher, coordinator and producer each every 100 ms: ~85 failed
    connects a second measured during a 10 s outage, told as counts by log_repeats) and raises nothing
    to the ledger while it does: without this, nothing of ours said Kafka was gone, or for how long.
    """

    WATCH_S = 2.0  # one metadata request (describe_cluster) per 2 s: the outage's length is exact to ~2 s

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        """Watch in the background."""
        self.task = asyncio.create_task(self._run(), name="kafka-watch")

    async def stop(self) -> None:
        """Stop watching."""
        await cancel_and_wait(self.task)

    async def _run(self) -> None:
        kafka = outage.kafka()
        while True:
            try:
                answers = await asyncio.wait_for(self.broker.ping(timeout=self.WATCH_S), self.WATCH_S + 1)
            except Exception:  # noqa: BLE001 - a timeout or a closed client: no answer
                answers = False
            if answers:
                failures.kafka_answered()  # also forgets a refused login: a later outage is only an outage
            else:
                kafka.failed(f"no answer to a metadata request within {self.WATCH_S:g} s", "the ledger")
            await asyncio.sleep(self.WATCH_S)


async def warn_of_topic_clock(settings: Settings) -> TopicClock | None:
    """Log a WARNING when votes.submissions does not stamp the broker's clock (review M4); never stops the start.

    On a CreateTime topic appended_at is NULL and key validity and the broker cut-off fall back to each
    channel's own received_at: the operator must hear it from the ledger, not find it in the contract.
    """
    try:
        clock = await asyncio.wait_for(topic_clock(settings, settings.submissions_topic, "ledger"), 15)
    except Exception as exc:  # noqa: BLE001 - a check, not a precondition: the consumer says if Kafka is down
        log.warning("could not tell which clock stamps %s: %s: %s", settings.submissions_topic, type(exc).__name__, exc)
        return None
    warning = clock.warning(settings.kafka_bootstrap)
    if warning is not None:
        log.warning(warning)
    return clock

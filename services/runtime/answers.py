"""The answers relay: one answer on votes.decisions for every submission logged or parked, exactly once.

It runs inside the ledger process (ledger_app.py) as a background task. It reads the log by position
and the parked messages by id (what is committed in PostgreSQL: an answer never names a row a
rollback could take back) and publishes, in Kafka transactions, ``submission.decided`` for every row
logged from the submissions topic and ``submission.parked`` for every message parked from it
(events/answers.py). Exactly once, across kill -9 and restarts, without any state of its own:

- every answer carries a header ``answered_through`` = "<position> <parked id>", the relay's cursor
  once that answer is published;
- the producer is transactional under one transactional id per deployment (consumer group and
  answers topic): starting it fences any earlier relay of that id and makes the broker finish (abort)
  the transaction that relay left open, so afterwards the topic, read committed, holds exactly the
  answers that will ever be visible from before;
- the relay then resumes from the highest cursor among each partition's last committed answer (read
  back from the partition's end, past transaction markers and aborted records), and publishes what
  follows in order, one transaction per round.

One relay at a time per answers topic: a PostgreSQL session advisory lock on a connection of its
own. The lock only avoids two relays fencing each other in turn; correctness rests on the fencing
above. A login able to take that lock (any database login can take an advisory lock) can delay the
answers, never duplicate or lose one: the waiting relay names the session that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer

from services.adapters.kafka.topics import ensure_topics, partitions_of, producer
from services.adapters.postgres.connect import LEDGER_ROLE, connect_as
from services.adapters.postgres.log import answers as log_answers
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log.append import NOTIFY_CHANNEL
from services.observability import outage
from services.runtime import answer_of, failures
from services.runtime.answers_cursor import answered_through, cursor_header
from services.runtime.retry import Backoff
from services.runtime.tasks import cancel_and_wait
from services.settings import Settings

log = logging.getLogger("vote_ledger.answers")

# One round is one Kafka transaction: a few hundred kB of answers (about 300 bytes each; a parked
# message's detail may reach 2,000 characters, hence fewer of those).
ROWS_PER_ROUND = 2000
PARKED_PER_ROUND = 200
POLL_S = 0.5  # parked messages wake nobody (only appended rows NOTIFY): the relay looks this often
LOCK_RETRY_S = 2.0  # a relay waiting for the lock tries again this often
STOP_TIMEOUT = 10.0


def transactional_id(settings: Settings) -> str:
    """The relay's Kafka transactional id: one per deployment (consumer group and answers topic)."""
    return f"vote-ledger-answers.{settings.consumer_group}.{settings.decisions_topic}"


class AnswerRelay:
    """Publishes the answers to channels, as a background task of the ledger app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.task: asyncio.Task | None = None
        self.published = 0  # answers committed on the topic by this process
        self.position = 0  # log position answered through
        self.parked_id = 0  # parked id answered through
        self._stack: AsyncExitStack | None = None
        self._failure: str | None = None  # the failure class last logged (one line per class, not per attempt)
        self._lost: outage.Dependency | None = None  # the dependency whose outage this relay reported
        self._wake = asyncio.Event()

    def attach(self, app) -> AnswerRelay:
        """Run with a FastStream app: start after it started, stop when it stops."""
        app.after_startup(self.start)
        app.on_shutdown(self.stop)
        return self

    async def start(self) -> None:
        """Start relaying in the background; a broker or database outage is retried, never fatal."""
        self.task = asyncio.create_task(self._run(), name="answers-relay")

    async def stop(self) -> None:
        """Stop the task (an open transaction is aborted by the broker, or fenced by the next relay)."""
        await cancel_and_wait(self.task)
        await self._close()

    async def _run(self) -> None:
        backoff = Backoff(first=1.0, cap=outage.CAP_S)
        while True:
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep answering whatever failed; the ledger goes on
                delay = backoff.failed()
                kind = type(exc).__name__
                line = f"answers relay: {kind}: {exc}; retrying with back-off (now {delay:.0f} s)"
                if kind != self._failure:  # an outage is said by its dependency; anything else once per class
                    self._failure = kind
                    self._lost = failures.report(exc, "the answers relay", log, line) or self._lost
                else:
                    log.debug("%s", line)
                await self._close()
                await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        """Take the lock, fence earlier relays, find the cursor on the topic, then relay until something fails."""
        self._stack = stack = AsyncExitStack()
        conn = await connect_as(self.settings, LEDGER_ROLE)
        stack.push_async_callback(conn.close, timeout=2)
        await self._lock(conn)
        await ensure_topics(self.settings, "ledger")
        partitions = await partitions_of(self.settings, [self.settings.decisions_topic], "ledger")
        client = await stack.enter_async_context(
            producer(self.settings, "ledger", linger_ms=5, transactional_id=transactional_id(self.settings))
        )
        # Waits for the producer id: earlier relays of this id are fenced and their open transaction ended.
        await client.begin_transaction()
        await client.commit_transaction()  # empty: no request
        self.position, self.parked_id = await answered_through(self.settings)
        if self.position > await log_reads.head(conn):
            # Never by our writes (answers follow committed rows): the database was restored from an
            # older backup, or points at another log. Nothing is answered until the log passes it.
            log.error(
                "answers relay: %s has answered up to position %d, beyond the log's end: is this the log it answered?",
                self.settings.decisions_topic,
                self.position,
                extra={"position": self.position},
            )
        log.info(
            "answers relay: resuming after position %d and parked id %d on %s",
            self.position,
            self.parked_id,
            self.settings.decisions_topic,
            extra={"position": self.position},
        )
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        while True:
            self._wake.clear()  # before reading: a NOTIFY from here on wakes the next wait
            sent = await self._round(conn, client, len(partitions) or 1)
            if self._failure is not None:
                if self._lost is not None:
                    self._lost.ok()  # says how long the outage lasted
                    self._lost = None
                log.info("answers relay: publishing again (after %d failures)", backoff.failures)
                self._failure = None
            backoff.reset()
            if not sent:
                # asyncio.timeout, not wait_for: 3.11's wait_for could swallow the stop's cancellation when a
                # NOTIFY woke it at that moment (see services/runtime/tasks.py).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_S):
                        await self._wake.wait()

    async def _lock(self, conn: asyncpg.Connection) -> None:
        """Wait for the relay's lock (another ledger process may be relaying)."""
        said = False
        while not await log_answers.try_lock(conn, self.settings.decisions_topic):
            if not said:
                holder = await log_answers.lock_holder(conn, self.settings.decisions_topic)
                log.info("answers relay: another session relays (%s); waiting for its lock", holder or "unknown")
                said = True
            await asyncio.sleep(LOCK_RETRY_S)

    async def _round(self, conn: asyncpg.Connection, client: AIOKafkaProducer, partitions: int) -> int:
        """Publish the answers logged or parked since the cursor, in one transaction; return how many."""
        topic = self.settings.submissions_topic
        rows = await log_answers.decided_rows(conn, topic, self.position, ROWS_PER_ROUND)
        parked = await log_answers.parked_messages(conn, topic, self.parked_id, PARKED_PER_ROUND)
        if not rows and not parked:
            return 0
        position, parked_id = self.position, self.parked_id
        out = self.settings.decisions_topic
        await client.begin_transaction()
        try:
            pending = []
            for row in rows:
                position = row["position"]
                pending.append(
                    await client.send(
                        out,
                        msgspec.json.encode(answer_of.decided(row)),
                        key=answer_of.decided_key(row),
                        headers=[cursor_header(position, parked_id)],
                    )
                )
            for message in parked:
                parked_id = message["id"]
                answer, key = answer_of.parked(message)
                pending.append(
                    await client.send(
                        out,
                        msgspec.json.encode(answer),
                        key=key,
                        # Keyless: the partition number the message was sent to, so its channel finds it there
                        # (a keyed answer lands where its submission did when both topics have as many partitions).
                        partition=None if key is not None else message["source_partition"] % partitions,
                        headers=[cursor_header(position, parked_id)],
                    )
                )
            await asyncio.gather(*pending)
            await client.commit_transaction()
        except BaseException:
            # The session ends (the caller reconnects and reads the cursor back from the topic); an
            # abort here is a courtesy: the next relay's fencing aborts it anyway.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.abort_transaction(), 2)
            raise
        self.position, self.parked_id = position, parked_id
        self.published += len(pending)
        return len(pending)

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), STOP_TIMEOUT)

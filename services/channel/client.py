"""A voting channel's Kafka client: sign submissions (alone or in batches), publish them, await their answers.

A channel engineer's whole contract in one place (docs/channels.md): event ids namespaced by the
channel (S6), the canonical bytes and batch signature of projections.signing, the Kafka key of the
wire contract (topics.key_for), the answers on votes.decisions (events/answers.py), read committed.
Retries are safe: a retry republishes the very bytes first signed (same event id, same signature),
which the ledger treats as a redelivery and applies once (R18); it answers the first delivery only,
so the client keeps reading answers from before its first publication.

An answer is ours only when both its event id and its ``payload_sha256`` (the SHA-256 of the message
as the ledger received it) match what this client published: anyone able to publish can send a
message under our (predictable) event id that is rejected or parked, and the ledger answers it under
that id too (adversary t15, review M2).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from events import Submission
from events.answers import AnyAnswer
from projections.signing import sign_batch
from services.adapters.kafka.topics import client_options, key_for, partitions_of, producer, started
from services.channel.keys import SigningKey
from services.settings import Settings

log = logging.getLogger(__name__)

# The wire schema bounds an event id to 200 characters (events/schema.py NonEmpty).
EVENT_ID_MAX = 200
# A high-volume channel signs what it has in hand as one batch: one Ed25519 signature and a path of
# log2(n) hashes per submission. 1,024 keeps paths at 10 hashes (about 700 bytes of auth per message);
# the wire contract allows up to 2^20 per batch.
BATCH_MAX = 1024
# Answers are read from this long before the client first published: the relay stamps them with its
# own clock, which may lag the client's.
CLOCK_SLACK_S = 60.0
ANSWERS_FROM_START = datetime.fromtimestamp(0).astimezone()  # answers_from: read the whole topic

_answers = msgspec.json.Decoder(AnyAnswer)


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed submission ready to publish: its (namespaced) event id, Kafka key and the exact bytes."""

    event_id: str
    key: bytes
    payload: bytes

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the bytes published: what the answer's ``payload_sha256`` must be."""
        return hashlib.sha256(self.payload).hexdigest()


def namespaced(event: Submission, channel_id: str) -> Submission:
    """The event with its id prefixed by ``<channel_id>:`` (S6) unless it already is; ValueError past 200 characters."""
    prefix = f"{channel_id}:"
    if event.event_id.startswith(prefix):
        return event
    event_id = prefix + event.event_id
    if len(event_id) > EVENT_ID_MAX:
        raise ValueError(f"event id {event.event_id!r}: over {EVENT_ID_MAX} characters once prefixed with {prefix!r}")
    return msgspec.structs.replace(event, event_id=event_id)


def sign(events: Sequence[Submission], key: SigningKey, batch_max: int = BATCH_MAX) -> list[Signed]:
    """Sign submissions with one key, ``batch_max`` to a batch, in order; ids namespaced by the channel (S6).

    Deterministic: Ed25519 signatures are, so the same submissions in the same batches give the same
    bytes, and publishing them again (even from another process) is a redelivery (R18).
    """
    named = [namespaced(event, key.channel_id) for event in events]
    seen: set[str] = set()
    for event in named:
        if event.event_id in seen:  # one batch holding an id twice would be logged once and rejected once
            raise ValueError(f"event id {event.event_id!r} twice")
        seen.add(event.event_id)
    out: list[Signed] = []
    for start in range(0, len(named), batch_max):
        chunk = named[start : start + batch_max]
        payloads = sign_batch(chunk, key.channel_id, key.key_id, key.private_key)
        out += [Signed(e.event_id, key_for(e), p) for e, p in zip(chunk, payloads, strict=True)]
    return out


def sign_per_channel(events: Sequence[Submission], key_of: Callable[[Submission], SigningKey]) -> list[Signed]:
    """Sign submissions of several channels: each channel's share of them as one batch, the result in input order."""
    groups: dict[tuple[str, str], tuple[SigningKey, list[int]]] = {}
    for index, event in enumerate(events):
        key = key_of(event)
        groups.setdefault((key.channel_id, key.key_id), (key, []))[1].append(index)
    out: list[Signed | None] = [None] * len(events)
    for key, indexes in groups.values():
        for index, signed in zip(indexes, sign([events[i] for i in indexes], key, len(indexes)), strict=True):
            out[index] = signed
    return [s for s in out if s is not None]


class ChannelClient:
    """Publishes signed submissions on votes.submissions and reads their answers on votes.decisions.

    ``answers_from``: where reading answers starts: None, just before the first publication (new
    submissions); a time, the answers the relay published from then on (a retry of submissions
    published earlier, e.g. by a process that crashed); ANSWERS_FROM_START, the whole topic.
    """

    def __init__(
        self,
        settings: Settings,
        roles: str | tuple[str, ...] = "channel",
        answers_from: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.roles = roles
        self.answers_from = answers_from
        self._stack = AsyncExitStack()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._wanted: dict[str, set[str]] = {}  # event id -> digests of the bytes we published under it
        self._answers: dict[str, Any] = {}

    async def __aenter__(self) -> ChannelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the producer and the answers reader."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self._stack.aclose()
        self._producer = None

    def expect(self, item: Signed) -> None:
        """Await an answer to these bytes: under their event id, with their digest."""
        self._wanted.setdefault(item.event_id, set()).add(item.digest)

    async def send(self, signed: Iterable[Signed]) -> list[asyncio.Future]:
        """Hand signed submissions to the producer; the futures resolve when the broker acknowledged each."""
        if self._producer is None:
            self._producer = await self._stack.enter_async_context(producer(self.settings, self.roles))
        futures = []
        for item in signed:
            self.expect(item)
            futures.append(await self._producer.send(self.settings.submissions_topic, item.payload, key=item.key))
        return futures

    async def publish(self, signed: Sequence[Signed]) -> None:
        """Publish signed submissions and wait until the broker acknowledged every one (acks=all)."""
        await self.watch()  # before publishing: an answer may come back faster than we would start reading
        futures = await self.send(signed)
        if futures:
            await asyncio.gather(*futures)

    async def watch(self, timeout: float = 30.0) -> None:
        """Start reading votes.decisions, where ``answers_from`` says (idempotent)."""
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            **client_options(self.settings, self.roles), isolation_level="read_committed", enable_auto_commit=False
        )
        await started(consumer)
        try:
            partitions = await self._partitions(timeout)
            consumer.assign(partitions)
            if self.answers_from is None:
                ends = await consumer.end_offsets(partitions)
                starts = {tp: ends[tp] for tp in partitions}
            else:
                since_ms = max(0, int((self.answers_from.timestamp() - CLOCK_SLACK_S) * 1000))
                found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
                ends = await consumer.end_offsets(partitions)
                starts = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def _partitions(self, timeout: float) -> list[TopicPartition]:
        """The answers topic's partitions, waiting for the ledger to create it (a fresh deployment)."""
        topic = self.settings.decisions_topic
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await partitions_of(self.settings, [topic], self.roles)
            if found:
                return sorted(found, key=lambda tp: tp.partition)
            if loop.time() >= deadline:
                raise TimeoutError(f"no topic {topic} after {timeout:g} s: is the ledger running? it creates it")
            await asyncio.sleep(0.5)

    async def answers(self, event_ids: Iterable[str], timeout: float) -> dict[str, Any]:
        """The answers to what this client published under these event ids, arriving within ``timeout`` seconds.

        The first answer per id whose payload_sha256 is the digest of bytes we published under it; an id
        this client has not published gets no answer (it cannot tell its answer from another's).
        """
        await self.watch()
        assert self._consumer is not None
        wanted = set(event_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not wanted <= self._answers.keys():
            left = deadline - loop.time()
            if left <= 0:
                break
            batches = await self._consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000), max_records=10_000)
            for records in batches.values():
                for record in records:
                    self.take(record.value)
        return {i: self._answers[i] for i in wanted if i in self._answers}

    def take(self, value: bytes | None) -> None:
        """Keep one record of votes.decisions if it answers bytes this client published (the first such per id)."""
        try:
            answer = _answers.decode(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # not an answer this client knows (a newer ledger's): not ours to judge
        if answer.event_id is None or answer.event_id in self._answers:
            return  # the first of ours holds: a later one is about other bytes under the id
        if answer.payload_sha256 in self._wanted.get(answer.event_id, ()):
            self._answers[answer.event_id] = answer
        # else: someone else's message under the id (forged, foreign, parked), or not ours at all: ignored

    async def submit(self, signed: Sequence[Signed], timeout: float = 30.0, attempts: int = 3) -> dict[str, Any]:
        """Publish, await every answer, and republish the same bytes of those unanswered, up to ``attempts`` times.

        Returns the answers by event id (those still missing after the last attempt are absent). A
        publication the broker refuses (a KafkaError) counts as an attempt too.
        """
        pending = list(signed)
        got: dict[str, Any] = {}
        for attempt in range(1, attempts + 1):
            try:
                await self.publish(pending)
            except KafkaError as exc:
                if attempt == attempts:
                    raise
                log.warning("publishing %d submissions failed (%s): retrying the same bytes", len(pending), exc)
                await asyncio.sleep(min(2.0**attempt, 10.0))
                continue
            got |= await self.answers([s.event_id for s in pending], timeout)
            pending = [s for s in pending if s.event_id not in got]
            if not pending:
                break
            if attempt < attempts:
                log.warning("%d submissions unanswered after %g s: republishing the same bytes", len(pending), timeout)
        return got

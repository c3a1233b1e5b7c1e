"""Peer measurement: the same workload through the `eventsourcing` library (9.5, PostgreSQL).

Same topics, same pure Judge; only storage and projection differ: Ballot aggregates saved with one
`Application.save(*aggregates)` transaction per Kafka batch, and a `ProjectionRunner` that commits
each event's tally-view update with its tracking record (the library's exactly-once guarantee).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid5

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from events import ADMIN_EVENTS, VoteCast
from projections.judge import Judge, Received
from projections.validation import WRONG_TOPIC
from services.adapters.kafka.topics import client_options
from services.devtools.bench.scratch import scratch_database
from services.devtools.bench.workload import Workload
from services.runtime.ingest import decode_batch
from services.settings import Settings

NAMESPACE = UUID("6f1d6c1e-8a0b-4c55-9d55-0b5f1f1f2e01")


class Ballot(Aggregate):
    """Every submission for one control number of one meeting, with the Judge's decision."""

    @staticmethod
    def create_id(meeting_id: str, control_number: str) -> UUID:
        """Deterministic id: a control number's ballot is found without an index."""
        return uuid5(NAMESPACE, f"ballot/{meeting_id}/{control_number}")

    def __init__(self, meeting_id: str, control_number: str) -> None:
        self.meeting_id, self.control_number = meeting_id, control_number

    @event("Cast")
    def cast(self, submission: dict, shares: int) -> None:
        """An accepted vote.cast and the shares it represents."""

    @event("Revoked")
    def revoke(self, submission: dict) -> None:
        """An accepted vote.revoked."""

    @event("Rejected")
    def reject(self, submission: dict, reason: str) -> None:
        """A refused submission: recorded like every other."""


class Meeting(Aggregate):
    """A meeting's administration and its meeting-wide submissions (proxy substitutions)."""

    @staticmethod
    def create_id(meeting_id: str) -> UUID:
        """Deterministic id from the meeting id."""
        return uuid5(NAMESPACE, f"meeting/{meeting_id}")

    def __init__(self, meeting_id: str) -> None:
        self.meeting_id = meeting_id

    @event("AdminRecorded")
    def record_admin(self, message: dict, reason: str | None) -> None:
        """An admin event (meeting.scheduled, positions.recorded, polls.closed, a channel key), and its decision."""

    @event("Submitted")
    def submit(self, submission: dict, reason: str | None) -> None:
        """A proxy.substituted, and its decision (reason None: accepted)."""


class Votes(Application):
    """The write model: judged submissions appended as aggregate events."""


class TallyView(PostgresTrackingRecorder):
    """Shares per (item, option), present shares and counters, updated atomically with tracking."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        prefix = self.tracking_table_name.removesuffix("_tracking")
        t = {name: Identifier(self.datastore.schema, f"{prefix}_{name}") for name in ("ballots", "tally", "counters")}
        self.sql_create_statements += [
            SQL(s).format(**t)
            for s in (
                "CREATE TABLE IF NOT EXISTS {ballots} (ballot_id uuid PRIMARY KEY, executed_at timestamptz,"
                " received_at timestamptz, event_id text, shares bigint, contribution jsonb, revoked_at timestamptz)",
                "CREATE TABLE IF NOT EXISTS {tally}"
                " (item text, option text, shares bigint, PRIMARY KEY (item, option))",
                "CREATE TABLE IF NOT EXISTS {counters} (id int PRIMARY KEY, accepted bigint, rejected bigint,"
                " live_votes bigint, present_shares bigint)",
                "INSERT INTO {counters} VALUES (1, 0, 0, 0, 0) ON CONFLICT DO NOTHING",
            )
        ]
        self.select_ballot = SQL("SELECT * FROM {ballots} WHERE ballot_id = %s").format(**t)
        self.upsert_ballot = SQL(
            "INSERT INTO {ballots} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ballot_id) DO UPDATE SET"
            " (executed_at, received_at, event_id, shares, contribution, revoked_at) = (excluded.executed_at,"
            " excluded.received_at, excluded.event_id, excluded.shares, excluded.contribution,"
            " excluded.revoked_at)"
        ).format(**t)
        self.add_tally = SQL(
            "INSERT INTO {tally} AS t VALUES (%s, %s, %s) ON CONFLICT (item, option)"
            " DO UPDATE SET shares = t.shares + excluded.shares"
        ).format(**t)
        self.add_counters = SQL(
            "UPDATE {counters} SET accepted = accepted + %s, rejected = rejected + %s,"
            " live_votes = live_votes + %s, present_shares = present_shares + %s"
        ).format(**t)
        self.select_counters = SQL("SELECT accepted, rejected, live_votes, present_shares FROM {counters}").format(**t)

    def apply(
        self,
        tracking: Tracking,
        ballot_id: UUID | None = None,
        cast: dict | None = None,
        revoked_at: datetime | None = None,
        rejected: bool = False,
    ) -> None:
        """Fold a submission: latest executed_at wins (R5), a revocation voids earlier casts (R7)."""
        # Pipelined like the library's own insert_events: three round trips per event, not seven.
        # Without a ballot (rejections, proxy substitutions) the submission is only counted.
        with self.datastore.get_connection() as conn, conn.pipeline(), conn.transaction():
            curs = conn.cursor()
            self._insert_tracking(curs, tracking)
            if ballot_id is None:
                curs.execute(self.add_counters, (int(not rejected), int(rejected), 0, 0), prepare=True)
                return
            curs.execute(self.select_ballot, (ballot_id,), prepare=True)
            old = curs.fetchone() or {"executed_at": None, "revoked_at": None}
            new = dict(old)
            if cast is not None and (old["executed_at"] is None or _key(cast) > _key(old)):
                new.update(cast)
            if revoked_at is not None and (old["revoked_at"] is None or revoked_at > old["revoked_at"]):
                new["revoked_at"] = revoked_at
            live, deltas = (_live(old), _live(new)), Counter()
            for sign, state, counted in ((-1, old, live[0]), (+1, new, live[1])):
                for item, option, shares in state["contribution"] if counted else ():
                    deltas[(item, option)] += sign * shares
            if rows := [(item, option, shares) for (item, option), shares in deltas.items() if shares]:
                curs.executemany(self.add_tally, rows)
            if new != old:
                curs.execute(
                    self.upsert_ballot,
                    (
                        ballot_id,
                        new["executed_at"],
                        new.get("received_at"),
                        new.get("event_id"),
                        new.get("shares"),
                        Jsonb(new.get("contribution")),
                        new["revoked_at"],
                    ),
                    prepare=True,
                )
            present = (new["shares"] if live[1] else 0) - (old["shares"] if live[0] else 0)
            curs.execute(self.add_counters, (1, 0, live[1] - live[0], present), prepare=True)

    def counters(self) -> dict[str, int]:
        """accepted, rejected, live_votes and present_shares."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_counters)
            return {name: int(value) for name, value in curs.fetchone().items()}


def _key(state: dict) -> tuple:
    return state["executed_at"], state["received_at"], state["event_id"]  # R5 order, as ours


def _live(state: dict) -> bool:
    return state["executed_at"] is not None and (
        state["revoked_at"] is None or state["executed_at"] >= state["revoked_at"]
    )


class TallyProjection(Projection[TallyView]):
    """Folds the submission events of `Votes` into the tally view."""

    name = "tally"
    # Filtered in the database: aggregate creations and admin events never reach the projection.
    topics = tuple(get_topic(cls) for cls in (Ballot.Cast, Ballot.Revoked, Ballot.Rejected, Meeting.Submitted))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Rejections and proxy substitutions: counted, the tally does not change."""
        self.view.apply(tracking, rejected=getattr(domain_event, "reason", None) is not None)

    @process_event.register(Ballot.Cast)
    def _cast(self, e: Ballot.Cast, tracking: Tracking) -> None:
        s = e.submission  # times are the wire's RFC 3339 strings, with their offsets
        self.view.apply(
            tracking,
            e.originator_id,
            cast={
                "executed_at": datetime.fromisoformat(s["executed_at"]),
                "event_id": s["event_id"],
                "received_at": datetime.fromisoformat(s["received_at"]),
                "shares": e.shares,
                "contribution": [
                    [item, option, n]
                    for item, choice in s["choices"].items()
                    for option, n in (choice.items() if isinstance(choice, dict) else [(choice, e.shares)])
                ],
            },
        )

    @process_event.register(Ballot.Revoked)
    def _revoked(self, e: Ballot.Revoked, tracking: Tracking) -> None:
        self.view.apply(tracking, e.originator_id, revoked_at=datetime.fromisoformat(e.submission["executed_at"]))


def _get(app: Votes, touched: dict[UUID, Aggregate], cls: type[Aggregate], **ids: str) -> Any:
    """The aggregate this batch already touched, else the stored one, else a new one."""
    aggregate_id = cls.create_id(**ids)
    if aggregate_id not in touched:
        # A ballot never seen costs a read that finds nothing: an aggregate must know its version.
        try:
            touched[aggregate_id] = app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            touched[aggregate_id] = cls(**ids)
    return touched[aggregate_id]


def _append(app: Votes, judge: Judge, decoded: list, seen: set[str], admin_topic: str) -> int | None:
    """Judge a batch, save the aggregates it touched in one transaction; return the last id to project."""
    touched: dict[UUID, Aggregate] = {}
    # As services.runtime.ingest.decide: admin first, duplicates skipped (R18), wrong topics refused.
    for record, ev in sorted(decoded, key=lambda pair: pair[0].topic != admin_topic):
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        admin = isinstance(ev, ADMIN_EVENTS)
        # Judged on the bytes its channel signed (S2), as the ledger does.
        reason = WRONG_TOPIC if (record.topic == admin_topic) != admin else judge.judge(ev, Received(record.value))
        fact, number = msgspec.to_builtins(ev), getattr(ev, "control_number", None)
        if number is None:
            meeting = _get(app, touched, Meeting, meeting_id=ev.meeting_id)
            (meeting.record_admin if admin else meeting.submit)(fact, reason)
            continue
        ballot = _get(app, touched, Ballot, meeting_id=ev.meeting_id, control_number=number)
        if reason is not None:
            ballot.reject(fact, reason)
        elif isinstance(ev, VoteCast):  # no shares given: the whole record-date position
            ballot.cast(fact, ev.shares or judge.meetings[ev.meeting_id].positions[number].shares)
        else:
            ballot.revoke(fact)
    recordings = app.save(*touched.values())
    return max((r.notification.id for r in recordings if r.notification.topic in TallyProjection.topics), default=None)


def _env(dsn: str, positions: int) -> dict[str, str]:
    """The library's configuration for one scratch database."""
    url = urlsplit(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname,
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        # Appends through the library's insert function (as its author's speed runs do; with one
        # writer the table lock it skips is moot): the default pipelined insert hangs on a
        # multi-MB transaction, e.g. a 100k-position register or a 20,000-submission batch
        # (psycopg 3.3.9 leaves a partly flushed message unsent and waits to read).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        # The library's aggregate cache, right for a single writer: a re-vote does not re-read
        # its ballot's events, and cached aggregates are used as they are (no deep copy per get).
        "AGGREGATE_CACHE_MAXSIZE": str(positions),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }


def _caught_up(runner: ProjectionRunner, notification_id: int | None) -> None:
    """Block until the view has tracked ``notification_id``; re-raise a projection error."""
    # Polled every 10 ms, not with TrackingRecorder.wait's 100-800 ms backoff: the projection's lag.
    while not runner.view.has_tracking_id(runner.app.name, notification_id):
        if runner.is_interrupted.is_set():
            runner.run_forever(timeout=0)  # raises the processing thread's error
            raise RuntimeError("the projection runner stopped")
        time.sleep(0.01)


async def _consume(settings: Settings, workload: Workload, app: Votes) -> int | None:
    """The admin topic to its end, then every submission; return the last notification id."""
    judge, seen = Judge(), set()
    options = {
        **client_options(settings, "operator"),
        "enable_auto_commit": False,
        "max_partition_fetch_bytes": 8 << 20,
    }
    admin = AIOKafkaConsumer(**options)
    await admin.start()
    try:
        tp = TopicPartition(settings.admin_topic, 0)  # one partition (services.adapters.kafka.topics.ensure_topics)
        admin.assign([tp])
        await admin.seek_to_beginning(tp)
        end, records = (await admin.end_offsets([tp]))[tp], []
        while await admin.position(tp) < end:
            records += (await admin.getmany(tp, timeout_ms=1000)).get(tp, [])
    finally:
        await admin.stop()
    last = await asyncio.to_thread(_append, app, judge, decode_batch(records)[0], seen, settings.admin_topic)
    consumer = AIOKafkaConsumer(
        settings.submissions_topic,
        group_id=settings.consumer_group + "-eventsourcing",
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    try:
        done, total, idle_since = 0, len(workload.submission_payloads), time.monotonic()
        while done < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max)
            if records := [r for partition in batch.values() for r in partition]:
                decoded = decode_batch(records)[0]  # the workload holds no malformed message
                last = await asyncio.to_thread(_append, app, judge, decoded, seen, settings.admin_topic) or last
                await consumer.commit()  # after the save: at least once
                done, idle_since = done + len(records), time.monotonic()
            elif time.monotonic() - idle_since > 120:
                raise TimeoutError(f"only {done} of {total} submissions arrived")
    finally:
        await consumer.stop()
    return last


async def measure(settings: Settings, workload: Workload) -> dict:
    """Consume the published workload into eventsourcing; time the appends and the projection."""
    async with scratch_database(settings, "es", migrated=False) as dsn:
        runner = await asyncio.to_thread(
            lambda: ProjectionRunner(
                application_class=Votes,
                projection_class=TallyProjection,
                view_class=TallyView,
                env=_env(dsn, workload.positions),
            ).__enter__()
        )
        try:
            started = time.perf_counter()
            last = await _consume(settings, workload, runner.app)
            appended = time.perf_counter()
            await asyncio.to_thread(_caught_up, runner, last)
            caught_up = time.perf_counter()
            counters = await asyncio.to_thread(runner.view.counters)
            stored = await asyncio.to_thread(runner.app.recorder.max_notification_id)
        finally:
            await asyncio.to_thread(runner.__exit__, None, None, None)  # joins threads, closes the app
            runner.view.datastore.close()
    n, seconds = len(workload.submissions), caught_up - started
    return {
        "system": f"eventsourcing {version('eventsourcing')} (PostgreSQL)",
        "submissions": n,
        "seconds": round(seconds, 3),
        "submissions_per_s": round(n / seconds, 1),
        "append_seconds": round(appended - started, 3),
        "projection_lag_seconds": round(caught_up - appended, 3),
        **counters,
        "events_stored": stored,
        "design": "Ballot aggregate per control number (+ Meeting aggregate), app.save(*aggregates) per Kafka "
        "batch; ProjectionRunner folds each event into a PostgreSQL tally view, view update and "
        "tracking row in one transaction per event",
    }

"""Publish one meeting-administration event and report the ledger's decision: `meeting amend`, `channel register`.

Both commands publish as the admin login (the only principal allowed to write meetings.admin), then poll
the log as the reader role for the row under the event's id, so the operator sees accepted or rejected
with its reason instead of "published".
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli import UserError
from services.cli.common import positive_number

# How long to wait for the ledger to log the event (it logs an admin event within a batch: well under a
# second on the local stack).
DECISION_WAIT_S = 30.0
EVENT_ID_MAX = 200  # the wire schema's bound (events/schema.py NonEmpty)


def add_wait(parser: argparse.ArgumentParser) -> None:
    """Add --wait S / --no-wait to a command that publishes an admin event."""
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument(
        "--wait",
        type=positive_number(3600),
        default=DECISION_WAIT_S,
        metavar="S",
        help=f"seconds to wait for the ledger's decision, read as the reader role (default {DECISION_WAIT_S:g})",
    )
    wait.add_argument("--no-wait", action="store_true", help="publish only: do not wait for the decision")


def admin_event(cls: type, **fields: Any) -> Any:
    """The event as the ledger will decode it: a field the wire schema or the codec refuses is a one-line error here.

    msgspec checks a Struct's constraints when it converts, but the codec's own checks (times within 1900-9000,
    no NUL) only when it decodes: the ledger would park such an event, and the command then only said that no
    decision came. So each event makes the round trip through the wire codec before it is published.
    """
    import msgspec

    from events import MalformedMessage, decode, encode

    try:
        event = msgspec.convert(fields, cls, from_attributes=False, strict=False)
        decode(encode(event))
    except msgspec.ValidationError as exc:
        raise UserError(f"not a valid {cls.__name__}: {exc}") from None
    except MalformedMessage as exc:
        raise UserError(f"not a valid {cls.__name__}: the ledger would park it ({exc.reason}: {exc.detail})") from None
    return event


def publish_admin(event: Any, said: str, wait: float | None) -> int:
    """Publish as meeting administration, then report the ledger's decision (exit 1: rejected or none in time).

    ``said``: what was published, in words, e.g. "published meeting.adjourned (…) for M (event E)".
    """
    from services.adapters.kafka.topics import producer, publish
    from services.cli.meeting_cmd import kafka_settings, run_kafka

    current = kafka_settings()

    async def go() -> None:
        async with producer(current, "admin") as client:  # only meeting administration may write meetings.admin
            await publish(client, current, [event])

    run_kafka(current, go())
    if wait is None:
        print(f"{said}; not checked (--no-wait)")
        return 0
    if not (current.pg_reader_dsn or current.pg_dsn):
        print(f"{said}; not checked (no reader DSN: VOTE_LEDGER_PG_READER_DSN)")
        return 0
    decided = await_decision(event.meeting_id, event.event_id, wait)
    if decided is None:
        print(said, flush=True)
        raise UserError(f"the ledger logged no decision on {event.event_id} within {wait:g} s: is it running?")
    if decided["decision"] == "accepted":
        print(f"{said}: accepted at position {decided['position']}")
        return 0
    print(f"{said}: rejected {decided['reason']}")
    return 1


def await_decision(meeting_id: str, event_id: str, wait: float) -> dict[str, Any] | None:
    """The log row's decision on the meeting's admin event, polled as the reader role for up to ``wait`` seconds."""
    import asyncio

    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.adapters.postgres.log.admin import admin_decision
    from services.settings import settings

    async def go() -> dict[str, Any] | None:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while (row := await admin_decision(conn, meeting_id, event_id)) is None:
                if loop.time() >= deadline:
                    return None
                await asyncio.sleep(0.25)
            return dict(row)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except OSError as exc:
        raise UserError(f"published, but the log could not be read: {exc}") from None

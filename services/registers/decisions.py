"""What the ledger decided on the events a load published: accepted, already loaded, rejected, or not yet.

The ledger logs an event once per (meeting, event id) (R18): the same record published again (an
identical reload) gets no new row, so the row under its id is the one logged before. A row's source
(topic, partition, offset) tells the two apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.adapters.postgres.connect import READER_ROLE, connect_as
from services.adapters.postgres.log.register import load_decisions
from services.settings import Settings

# Rejected events listed by name before the count of the rest: a changed register of 500 chunks is
# refused chunk by chunk, and the first few say why.
REJECTIONS_SHOWN = 10
# Reasons that mean the log holds another version of the meeting or its register.
_OTHER_VERSION = {"duplicate_meeting", "duplicate_chunk", "duplicate_position", "chunks_mismatch"}


@dataclass(frozen=True)
class Sent:
    """A published event: its id, what it is in words, and where the broker put it."""

    event_id: str
    what: str
    topic: str
    partition: int
    offset: int


@dataclass
class Decisions:
    """The ledger's decisions on a load's events, so far."""

    accepted: list[Sent] = field(default_factory=list)  # logged from the records just published
    before: list[Sent] = field(default_factory=list)  # accepted under their ids before (R18: applied once)
    rejected: list[tuple[Sent, str]] = field(default_factory=list)
    undecided: list[Sent] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The outcome in words (all decided): accepted, already loaded, or each rejection."""
        total = len(self.accepted) + len(self.before) + len(self.rejected)
        if self.rejected:
            found = [f"the ledger rejected {len(self.rejected):,} of {total:,} events:"]
            found += [f"  {sent.what}: {reason}" for sent, reason in self.rejected[:REJECTIONS_SHOWN]]
            if len(self.rejected) > REJECTIONS_SHOWN:
                found.append(f"  ... and {len(self.rejected) - REJECTIONS_SHOWN:,} more")
            if _OTHER_VERSION & {reason for _sent, reason in self.rejected}:
                found.append(
                    "the log holds another version of this meeting or its register, which stands: a changed "
                    "register needs a new meeting id (docs/register.md)"
                )
            return found
        if not self.accepted:
            return [f"already loaded: the ledger had accepted all {total:,} events before (R18: applied once)"]
        earlier = f", {len(self.before):,} of them logged before" if self.before else ""
        return [f"the ledger accepted all {total:,} events{earlier}"]


def decide(sent: Sequence[Sent], rows: Iterable[Any]) -> Decisions:
    """Each published event's decision from the rows logged under its id (in log order)."""
    by_id: dict[str, list[Any]] = {}
    for row in rows:
        by_id.setdefault(row["event_id"], []).append(row)
    decisions = Decisions()
    for one in sent:
        logged = by_id.get(one.event_id, [])
        now = [r for r in logged if (r["source_topic"], r["source_partition"], r["source_offset"]) == _source(one)]
        earlier = [r for r in logged if r not in now]
        if now and now[0]["decision"] == "accepted":
            decisions.accepted.append(one)
        elif now:
            decisions.rejected.append((one, now[0]["reason"]))
        elif any(r["decision"] == "accepted" for r in earlier):
            decisions.before.append(one)
        elif earlier:
            # The same record was rejected before: the ledger skips it as a redelivery (R18), still rejected.
            decisions.rejected.append((one, earlier[-1]["reason"]))
        else:
            decisions.undecided.append(one)
    return decisions


def _source(sent: Sent) -> tuple[str, int, int]:
    return sent.topic, sent.partition, sent.offset


async def await_decisions(settings: Settings, meeting_id: str, sent: Sequence[Sent], wait: float) -> Decisions:
    """Poll the log, as the reader role, until every published event is decided or ``wait`` seconds pass."""
    conn = await connect_as(settings, READER_ROLE)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        ids = sorted({one.event_id for one in sent})
        while True:
            decisions = decide(sent, await load_decisions(conn, meeting_id, ids))
            if not decisions.undecided or loop.time() >= deadline:
                return decisions
            await asyncio.sleep(0.25)
    finally:
        await conn.close()

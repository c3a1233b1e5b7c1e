"""Two ledgers and two projectors at once: a ledger kill -9ed during a consumer-group rebalance, a projector killed.

Both ledgers are static members of one consumer group (distinct VOTE_LEDGER_INSTANCE_IDs) appending to one log
under the append lock; both projectors follow it, one active (the advisory lock), one standing by. While a
seeded workload is published at a paced rate, each round changes the group's membership (a third ledger
joins; a ledger stops gracefully, which for a static member rebalances once its session expires) and, as soon
as the group coordinator reports the rebalance under way (polled every 20 ms), kill -9s one of the ledgers in
the group; the active projector is killed afterwards. Every killed process is restarted (same instance id).
Then nothing is lost or doubled, the tally equals a replay, `audit verify` passes (tests/faults/harness.py).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.adapters.kafka.topics import TOPIC_ROLES, client_options, partitions_of, started
from services.runtime.ledger import Ledger
from services.runtime.ledger_consumer import seek_to_stored
from tests.faults import harness
from tests.faults.test_soak import topics_known

pytestmark = pytest.mark.faults

RATE = 300  # submissions a second: the faults land mid-ingest
POLL_S = 0.02  # how often the coordinator is asked for the group's state while a rebalance is awaited


class Group:
    """The ledger consumer group as its coordinator describes it (state and members' instance ids)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.admin = AIOKafkaAdminClient(**client_options(settings, TOPIC_ROLES))

    async def __aenter__(self) -> Group:
        await started(self.admin)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.admin.close()

    async def describe(self) -> tuple[str, int]:
        """(state, number of members): Stable, PreparingRebalance, CompletingRebalance, Empty, Dead."""
        (response,) = await self.admin.describe_consumer_groups([self.settings.consumer_group])
        group = response.to_object()["groups"][0]
        return group["state"], len(group["members"])

    async def wait(self, members: int, timeout: float = 60.0) -> float:
        """Wait until the group is Stable with this many members; the seconds it took."""
        began = time.monotonic()
        while (found := await self.describe()) != ("Stable", members):
            assert time.monotonic() - began < timeout, (
                f"group {found} after {timeout} s, expected Stable with {members}"
            )
            await asyncio.sleep(0.1)
        return time.monotonic() - began

    async def rebalancing(self, timeout: float = 60.0) -> float:
        """Wait until the coordinator reports a rebalance under way; the seconds it took."""
        began, seen = time.monotonic(), None
        while (found := await self.describe())[0] not in ("PreparingRebalance", "CompletingRebalance"):
            if found != seen:
                print(f"  group {found} at {time.monotonic() - began:.2f} s")
                seen = found
            assert time.monotonic() - began < timeout, f"no rebalance began within {timeout} s"
            await asyncio.sleep(POLL_S)
        print(f"  group {found} at {time.monotonic() - began:.2f} s")
        return time.monotonic() - began


async def joining(services: harness.Services, name: str, timeout: float = 120.0) -> None:
    """Wait until a started ledger's subscriber is up: it sends its JoinGroup right after this line."""
    began = time.monotonic()
    while (
        "waiting for messages"
        not in (services.logs / f"{name}.log").read_text(errors="replace").rsplit("==== start", 1)[-1]
    ):
        assert services.running(name), services.tail()
        assert time.monotonic() - began < timeout, f"{name} not consuming after {timeout} s"
        await asyncio.sleep(0.02)


def active_projector(services: harness.Services, names: list[str]) -> str:
    """The projector holding the lead: the running one whose log's last word is not "standing by"."""
    for name in names:
        if not services.running(name):
            continue
        text = (services.logs / f"{name}.log").read_text(errors="replace")
        last_start = text.rsplit("==== start", 1)[-1]
        if "standing by" not in last_start or "taking over" in last_start.rsplit("standing by", 1)[-1]:
            return name
    raise AssertionError(f"no active projector among {names}: {services.tail()}")


async def recover(settings, work: harness.Workload, published: int, stalls: list[int]) -> float:
    """Seconds from now until every id published so far is logged and projected; a stall counts past the bound."""
    took = await harness.wait_caught_up(settings, work, harness.STALL_BOUND_S, published)
    if took is None:
        stalls.append(published)
        took = await harness.wait_caught_up(settings, work, 120.0, published)
        assert took is not None, f"ingest never resumed after {published} published"
        took += harness.STALL_BOUND_S
    return took


async def rebalance_case(
    settings, services: harness.Services, seed: int, rounds: int
) -> tuple[harness.Outcome, list[float], int, list[str], int]:
    """``rounds`` rounds of (membership change, kill -9 of a ledger mid-rebalance, restart), then the active
    projector killed; returns the verdict, each injection's recovery seconds, the stalls, notes, and the events."""
    print(f"\nrebalance: seed {seed}, {rounds} rounds (rerun with {harness.SEED_VARIABLE}={seed})")
    await topics_known(settings)  # else a ledger started before the broker's metadata lists them may give up
    await harness.load_meeting(settings)
    # More than the rounds need at RATE even on a slow machine: publishing halts once the faults are over.
    work = harness.workload(settings, seed, count=int(RATE * (30 + 30 * rounds)))
    recoveries: list[float] = []
    stalls: list[int] = []
    notes: list[str] = []
    halt = asyncio.Event()
    try:
        members, spare = ["ledger-a", "ledger-b"], "ledger-c"
        for name in members:
            services.start("ledger", name, instance_id=name)
        projectors = [services.start("projector", f"projector-{x}") for x in "ab"]
        async with Group(settings) as group:
            await group.wait(members=2, timeout=120)
            publishing = asyncio.create_task(harness.publish(settings, work, rate=RATE, halt=halt))
            # Ingest under way (the meeting logged, submissions flowing) before the first membership change.
            assert await harness.wait_caught_up(settings, work, 90, published=max(1, work.published)) is not None
            for turn in range(rounds):
                await asyncio.sleep(2)
                victim = members[turn % len(members)]
                if spare is not None:
                    services.start("ledger", spare, instance_id=spare)  # joins: every member rejoins
                    await joining(services, spare)
                    change, members, spare = f"{spare} joined", [*members, spare], None
                else:
                    # A static member leaves no group on SIGTERM: its session expires (6 s), then the rebalance.
                    spare = next(name for name in reversed(members) if name != victim)
                    services.kill(spare, signal.SIGTERM)
                    change, members = f"{spare} stopped", [name for name in members if name != spare]
                waited = await group.rebalancing()
                services.kill(victim)  # kill -9 while the group is rebalancing
                during = "publishing" if not publishing.done() else "draining the backlog"
                notes.append(f"{change}, {victim} kill -9ed {waited:.2f} s into the rebalance watch ({during})")
                await asyncio.sleep(1.0)  # dead for a moment: the group goes on without it
                services.restart(victim)  # the same instance id
                recoveries.append(await recover(settings, work, work.published, stalls))
                await group.wait(members=len(members), timeout=120)
            await asyncio.sleep(2)
            active = active_projector(services, projectors)
            services.kill(active)  # kill -9 of the active projector mid-ingest: the standby takes over
            notes.append(f"{active} (active) kill -9ed")
            await asyncio.sleep(1.0)
            services.restart(active)  # comes back as the standby
            recoveries.append(await recover(settings, work, work.published, stalls))
            halt.set()
            await publishing
        await harness.settle(settings, work, timeout=120)
        outcome = await harness.verify(settings, work)
        notes.append(f"{outcome.answered} answers on votes.decisions, one per submission")  # verify checked
    finally:
        halt.set()
        services.stop_all()
    return outcome, recoveries, len(stalls), notes, work.published  # published: halted before the workload's end


FAULTS = (
    "kill -9 of a ledger during a consumer-group rebalance (2 ledgers, a third joining or one leaving),"
    " then of the active projector (2 projectors)"
)


async def test_a_ledger_killed_during_a_rebalance_and_the_active_projector_killed_lose_and_double_nothing(
    settings, services
):
    seed = harness.fault_seed(14)
    outcome, recoveries, stalled, notes, events = await rebalance_case(settings, services, seed, rounds=2)
    harness.record(
        "rebalance",
        faults=FAULTS,
        cases=len(recoveries),
        lost=outcome.lost,
        doubled=outcome.doubled,
        stalled=stalled,
        recovery_s=recoveries,
        seed=seed,
        events=events,
        notes="; ".join(notes),
    )
    assert stalled == 0, notes


@pytest.mark.long
async def test_repeated_rebalances_with_kills_across_seeds_lose_and_double_nothing(settings, services):
    """Three seeds one after the other on one log, six rounds each (three joins, three leaves)."""
    seeds = [harness.fault_seed(101), 202, 303]
    recoveries: list[float] = []
    lost = doubled = stalled = events = 0
    notes = []
    for seed in seeds:
        outcome, times, stalls, said, count = await rebalance_case(settings, services, seed, rounds=6)
        recoveries += times
        lost, doubled, stalled, events = (
            lost + outcome.lost,
            doubled + outcome.doubled,
            stalled + stalls,
            events + count,
        )
        notes.append(f"seed {seed}: " + "; ".join(said))
    harness.record(
        "rebalance-long",
        faults=FAULTS,
        cases=len(recoveries),
        lost=lost,
        doubled=doubled,
        stalled=stalled,
        recovery_s=recoveries,
        seed=seeds[0],
        events=events,
        notes=" | ".join(notes),
    )
    assert stalled == 0, notes


class RevokedWhileReading(Ledger):
    """Fault injection, not a stand-in: the real ledger, whose rebalance is forced at a chosen moment.

    Every behaviour is the real Ledger's; only `stored_offsets` is wrapped, so that right after it reads
    the stored offsets the consumer loses every partition but ``keep`` (as the coordinator's new assignment
    would), the window a live rebalance hits only by chance.
    """

    def __init__(self, settings, consumer: AIOKafkaConsumer, keep: list[TopicPartition]) -> None:
        super().__init__(settings)
        self.consumer, self.keep = consumer, keep

    async def stored_offsets(self, partitions):
        """Read them, then lose every partition but ``keep`` (as the coordinator's new assignment would)."""
        stored = await super().stored_offsets(partitions)
        self.consumer.assign(self.keep)
        return stored


async def test_a_rebalance_during_the_seek_to_stored_offsets_seeks_only_the_partitions_still_assigned(settings):
    # Seen in the rebalance case: "cannot seek to the committed offsets (IllegalStateError: Partitions {...} are
    # not assigned)", an ERROR with its traceback and a retry, whenever a rebalance landed during the awaits.
    partitions = sorted(await partitions_of(settings, [settings.submissions_topic]))
    consumer = AIOKafkaConsumer(**client_options(settings, TOPIC_ROLES), auto_offset_reset="none")
    await started(consumer)
    ledger = RevokedWhileReading(settings, consumer, partitions[:1])
    await ledger.start()
    try:
        consumer.assign(partitions)
        await seek_to_stored(consumer, ledger, partitions)
        assert consumer.assignment() == set(partitions[:1])
        assert await consumer.position(partitions[0]) == 0  # never consumed: sought to its start
    finally:
        await ledger.stop()
        await consumer.stop()

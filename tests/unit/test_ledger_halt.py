"""A batch that cannot go on is rewound and held until the ledger stops: no later batch commits past it."""

from __future__ import annotations

import asyncio

import asyncpg

from services.runtime.ledger_consumer import Halt


async def test_a_batch_that_gave_up_is_rewound_and_held_until_the_app_stops_not_for_a_fixed_time():
    halt = Halt()
    rewound = asyncio.Event()

    async def rewind() -> None:
        rewound.set()

    assert not halt.halted
    halt.give_up("PostgreSQL refused a privilege this service needs")
    held = asyncio.create_task(halt.hold(rewind))
    await asyncio.wait_for(rewound.wait(), 1.0)  # rewound first: the consumer's position is back on the stored offsets
    await asyncio.sleep(0.3)
    assert not held.done()  # still held: returning let the consumer fetch and a later batch commit past it
    await halt.stop()
    await asyncio.wait_for(held, 1.0)


async def test_once_one_batch_gave_up_every_later_batch_is_halted_with_the_first_reason():
    halt = Halt()
    halt.give_up("the database has no vote-ledger schema")
    halt.give_up("a second reason")
    assert halt.halted and halt.reason == "the database has no vote-ledger schema"


async def test_a_rewind_that_fails_or_never_ends_does_not_release_the_batch_and_stopping_ends_it():
    halt = Halt()
    halt.give_up("refused")
    started = asyncio.Event()

    async def failing() -> None:
        raise asyncpg.InsufficientPrivilegeError("permission denied for table ledger_offsets")

    async def endless() -> None:  # rewind() retries forever while PostgreSQL is down
        started.set()
        await asyncio.Event().wait()

    failed = asyncio.create_task(halt.hold(failing))
    hanging = asyncio.create_task(halt.hold(endless))
    await asyncio.wait_for(started.wait(), 1.0)
    await asyncio.sleep(0.1)
    assert not failed.done() and not hanging.done()
    await halt.stop()
    await asyncio.wait_for(asyncio.gather(failed, hanging), 1.0)  # neither raises: the batch is held, not lost

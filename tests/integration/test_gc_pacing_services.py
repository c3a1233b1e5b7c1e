"""The ledger's and the projector's state leaves CPython's full collections once a batch commits (gc_pacing)."""

import gc

import pytest

from services.adapters.kafka.topics import producer, publish
from services.runtime.projector import Projector
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration

VOTES = [cast("R-1", {"2": "for"}), cast("R-2", {"3": "against"})]


@pytest.fixture(autouse=True)
def unfrozen():
    """Nothing stays frozen for the next test of this worker."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _collected_ids() -> set[int]:
    return {id(o) for generation in range(3) for o in gc.get_objects(generation)}


async def test_after_a_committed_batch_neither_the_judge_nor_the_fold_is_walked_by_a_full_collection(settings):
    async with running_ledger(settings) as ledger, producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event(), *VOTES])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(VOTES))
        meeting = ledger.judge.meetings["m1"]
        assert gc.is_tracked(meeting)
        assert id(meeting) not in _collected_ids()  # frozen by the batch that scheduled it, or a later one
    gc.unfreeze()
    projector = Projector(settings)
    await projector.start()
    try:
        assert await projector.catch_up() == 2 + len(VOTES)
        tally = projector.projection.tallies["m1"]
        assert gc.is_tracked(tally)
        assert id(tally) not in _collected_ids()
        assert gc.get_freeze_count() > 0
    finally:
        await projector.stop()

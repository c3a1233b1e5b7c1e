"""The event streams' broadcast of the projector's checkpoint (services/api/listener.py), and the stream's settings."""

import asyncio
import time

from fastapi import routing

from services.api import stream
from services.api.listener import ProjectedFeed


async def _never_connects():
    raise AssertionError("these tests never open a connection")


def test_a_later_checkpoint_moves_the_position_and_keeps_the_epoch():
    feed = ProjectedFeed(_never_connects)
    feed.announce(5)
    feed.announce(9)
    assert feed.version == (0, 9)


def test_the_same_or_an_older_checkpoint_again_bumps_the_epoch_so_streams_reread():
    feed = ProjectedFeed(_never_connects)
    feed.announce(9)
    seen = feed.version
    feed.announce(9)  # a rebuild swapped rows in at the unchanged checkpoint
    assert feed.version == (1, 9) and feed.version > seen
    feed.announce(7)  # re-read on a reconnection, say: never moves the position back
    assert feed.version == (2, 9)
    feed.announce(10)
    assert feed.version == (2, 10) > (2, 9) > (1, 9)


async def test_one_announcement_wakes_every_waiter_with_the_new_version():
    feed = ProjectedFeed(_never_connects)
    seen = feed.version
    waiters = [asyncio.create_task(feed.wait_moved(seen, 5.0)) for _ in range(3)]
    await asyncio.sleep(0)
    started = time.monotonic()
    feed.announce(4)
    assert await asyncio.gather(*waiters) == [(0, 4)] * 3
    assert time.monotonic() - started < 1.0


async def test_a_waiter_that_has_not_seen_the_current_version_returns_at_once():
    feed = ProjectedFeed(_never_connects)
    feed.announce(3)
    started = time.monotonic()
    assert await feed.wait_moved((0, 1), 5.0) == (0, 3)
    assert time.monotonic() - started < 1.0


async def test_a_waiter_times_out_with_the_version_unchanged():
    feed = ProjectedFeed(_never_connects)
    feed.announce(3)
    started = time.monotonic()
    assert await feed.wait_moved(feed.version, 0.05) == (0, 3)
    assert time.monotonic() - started >= 0.05


def test_a_notification_that_is_not_a_log_position_is_ignored():
    feed = ProjectedFeed(_never_connects)
    feed._on_notification(None, 1, "tally_projected", "12")
    feed._on_notification(None, 1, "tally_projected", "not a position")
    assert feed.version == (0, 12)


def test_a_last_event_id_that_is_not_a_position_asks_for_the_current_tally():
    assert stream._held("42-3") == (42, 3)
    assert stream._held("42") == (42, None)  # a client of before the generation was in the id
    assert stream._held(None) is None
    assert stream._held("abc") is None and stream._held("42-x") is None


def test_a_last_event_id_holds_the_tally_only_at_its_position_and_generation():
    assert stream.event_id(42, 3) == "42-3"
    assert stream._holds((42, 3), 42, 3)
    assert not stream._holds((42, 2), 42, 3)  # rebuilt since: the client is sent the rebuilt tally
    assert not stream._holds((41, 3), 42, 3) and not stream._holds(None, 42, 0)
    # A plain position says nothing of rebuilds: it holds only while there has been none.
    assert stream._holds((42, None), 42, 0) and not stream._holds((42, None), 42, 1)


def test_the_streams_comment_comes_before_fastapis_own_ping_and_the_token_recheck_within_30_s():
    # FastAPI writes `: ping` after 15 s without an item; ours must come first so one comment is sent.
    assert stream.KEEPALIVE_S < routing._PING_INTERVAL <= 15.0
    assert stream.RECHECK_S <= 30.0  # the issue: a revoked token's streams end within 30 s
    assert stream.COALESCE_S == 0.25

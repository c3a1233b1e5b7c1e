"""Every reader pointed at a hot standby (VOTE_LEDGER_PG_READER_DSN), with the services writing on the primary.

A primary + synchronous hot standby of this module's own (tests/pg_pair.py: own home under /tmp, free
ports, always stopped), `db migrate`d as the owner login; Kafka is the session's (the `endpoints` the
`settings` fixture uses), in a topic namespace of the module's own. The ledger and projector run as
`services run` subprocesses on the primary; the CLI reads and the HTTP API read the standby. Each
answer names its log position, which never exceeds the primary's, and equals it once replay caught up.
Replay is paused (pg_wal_replay_pause) to make the standby's answers visibly older.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import asyncpg
import httpx
import pytest

from services.adapters.kafka.topics import ensure_topics
from services.adapters.postgres.connect import READER_ROLE, connect_as
from services.adapters.postgres.tally_store import PROJECTED_CHANNEL
from services.api.listener import ProjectedFeed
from services.devtools.bench.scratch import drop_topics
from services.devtools.stack import postgres_standby
from services.runtime.chain_heads import read_heads
from services.settings import Settings
from tests.conftest import as_operator, free_port, settings_env
from tests.faults.harness import Services, load_meeting, publish, settle, workload
from tests.integration.helpers import api_token, cli, running_api
from tests.integration.test_api_stream import open_stream
from tests.pg_pair import CLI, db_migrate, primary_dsns, running_pair

MEETING = "cbak-2023-agm"
SEED = 1414


@pytest.fixture(scope="module")
def pair():
    """This module's primary + standby; stopped (and its home removed) at the end of the module, even on failure."""
    with running_pair("vl-standby-readers-") as cfg:
        db_migrate(primary_dsns(cfg).pg_dsn)
        yield cfg


class Scene:
    """The pair, the settings (writers on the primary, the reader on the standby) and the workload's progress."""

    def __init__(self, cfg, settings: Settings) -> None:
        self.cfg = cfg
        self.settings = settings
        self.primary = primary_dsns(cfg)
        self.standby = postgres_standby.standby_dsns(cfg)
        self.work = workload(settings, SEED, 900)

    async def primary_point(self) -> tuple[int, int]:
        """(log head, projection checkpoint) on the primary."""
        return await _point(self.primary.pg_admin_dsn)

    async def standby_point(self) -> tuple[int, int]:
        """(log head, projection checkpoint) on the standby."""
        return await _point(self.standby.pg_admin_dsn)

    async def caught_up(self, timeout: float = 60.0) -> tuple[int, int]:
        """Wait until the standby's point equals the primary's; return it (log head, checkpoint)."""
        deadline = time.monotonic() + timeout
        while True:
            primary, standby = await self.primary_point(), await self.standby_point()
            if primary == standby:
                return primary
            assert time.monotonic() < deadline, f"standby {standby} never reached the primary's {primary}"
            await asyncio.sleep(0.1)

    async def replay(self, paused: bool) -> None:
        """Pause or resume the standby's WAL replay (it keeps receiving: the primary's commits do not wait)."""
        conn = await asyncpg.connect(self.standby.pg_admin_dsn)
        try:
            await conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")
        finally:
            await conn.close()


async def _point(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT coalesce(max(position), 0) FROM ledger_log),"
            " (SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE projection = 'tally')"
        )
        return row[0], row[1]
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def scene(pair, endpoints, tmp_path_factory):
    """The ledger and projector on the primary with the meeting and 300 submissions in; readers on the standby.

    Its topics (t<tag>.*) are deleted at the end, even on failure: namespaces left behind once exhausted the
    shared broker's open files.
    """
    tag = uuid.uuid4().hex[:10]
    primary, standby = primary_dsns(pair), postgres_standby.standby_dsns(pair)
    settings = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        **as_operator(endpoints),
        pg_dsn=primary.pg_dsn,
        pg_ledger_dsn=primary.pg_ledger_dsn,
        pg_projector_dsn=primary.pg_projector_dsn,
        pg_reader_dsn=standby.pg_reader_dsn,  # every reader on the standby
        submission_partitions=4,
        topic_prefix=f"t{tag}.",
        consumer_group=f"vote-ledger-{tag}",
        api_port=free_port(),
        ledger_metrics_port=free_port(),
        projector_metrics_port=free_port(),
        heads_every_seconds=1,  # heads soon after each commit: the paused-replay case needs one beyond the standby
    )
    found = Scene(pair, settings)
    services = Services(settings, tmp_path_factory.mktemp("standby-readers-logs"))
    try:
        await ensure_topics(settings)
        services.start("ledger")
        services.start("projector")
        await load_meeting(settings)
        await publish(settings, found.work, stop=300)
        await settle(settings, found.work, timeout=180)
        await found.caught_up()
        yield found
    finally:
        services.stop_all()
        await drop_topics(settings)


def _meeting_heads(heads) -> list[int]:
    return [h.position for h in heads if h.chain == "meeting" and h.meeting_id == MEETING]


async def _json(scene: Scene, *args: str) -> dict:
    code, out, err = await cli(scene.settings, *args)
    assert code == 0, f"{args}: {err}"
    return json.loads(out)


async def test_cli_reads_answer_on_the_standby_at_the_primarys_position_once_replay_caught_up(scene, tmp_path):
    """tally, report, status, meeting list/show, proxies, channel list, audit, export: each answers from the standby."""
    head, checkpoint = await scene.caught_up()
    assert checkpoint > 0
    m = ("--meeting", MEETING)
    tally = await _json(scene, "tally", *m, "--json")
    assert tally["as_of_position"] == checkpoint
    status = await _json(scene, "status", "--json")
    assert (status["log_head"], status["projector_checkpoint"]) == (head, checkpoint)
    assert status["database"] == "standby" and status["replay_lag_bytes"] == 0
    final = await _json(scene, "report", "final", *m, "--format", "json")
    assert final["as_of_position"] == checkpoint
    assert (await _json(scene, "tally", *m, "--as-of", str(head // 2), "--json"))["as_of_position"] == head // 2
    for args in (
        ("meeting", "list"),
        ("meeting", "show", MEETING),
        ("proxies", *m),
        ("report", "overvotes", *m),
        ("report", "rejections", *m),
        ("report", "timeline", *m),
        ("report", "campaign", *m),
        ("report", "call-list", *m),
        ("audit", "events", *m),
        ("tally", "diff", *m, "1", str(head)),
        ("channel", "list", *m),
        ("export", *m, "--out", str(tmp_path / "export.zip")),
        ("audit", "prove", *m, "--out", str(tmp_path / "receipt.json"), scene.work.event_ids[0]),
    ):
        code, out, err = await cli(scene.settings, *args)
        assert code == 0, f"{args}: {err}"
        assert out.strip(), args
    code, out, err = await cli(scene.settings, "audit", "verify", *m)
    assert code == 0, out + err
    assert "VERIFIED" in out


async def test_tally_watch_on_the_standby_refreshes_by_polling(scene):
    """`tally --watch` reads at its own interval (it never LISTENs), so a standby serves it as it is."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *("tally", "--meeting", MEETING, "--json", "--watch", "0.3"),
        env={**os.environ, **settings_env(scene.settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Read until two snapshots are complete (a third begun), not for a fixed time: on a loaded CI machine the
    # CLI's start alone took more than the 4 s this once waited, and the test saw no output at all.
    seen = ""
    deadline = asyncio.get_running_loop().time() + 90
    try:
        while seen.count("}\n{") < 2 and (left := deadline - asyncio.get_running_loop().time()) > 0:
            chunk = await asyncio.wait_for(proc.stdout.read(65536), left)
            if not chunk:
                break
            seen += chunk.decode()
    except TimeoutError:
        pass
    finally:
        proc.terminate()
        rest, err = (part.decode() for part in await proc.communicate())
    out = seen + rest
    snapshots = [json.loads(block) for block in out.replace("}\n{", "}\x00{").split("\x00") if block.strip()]
    assert len(snapshots) >= 2, (out[-300:], err)
    assert all(s["meeting_id"] == MEETING for s in snapshots)


async def test_with_replay_paused_answers_are_older_than_the_primarys_and_catch_up_when_it_resumes(scene):
    """A standby behind: every answer's position below the primary's (never above), then equal once it replays."""
    await scene.replay(paused=True)
    try:
        await publish(scene.settings, scene.work, start=300, stop=600)
        await settle(scene.settings, scene.work, 180)
        _, primary_checkpoint = await scene.primary_point()
        tally = await _json(scene, "tally", "--meeting", MEETING, "--json")
        status = await _json(scene, "status", "--json")
        assert tally["as_of_position"] < primary_checkpoint
        assert status["log_head"] < (await scene.primary_point())[0]
        assert status["database"] == "standby" and status["replay_lag_bytes"] > 0
        # audit verify waits for the rows the heads published meanwhile name (REPLAY_WAIT_S), resumed here.
        standby_head, _ = await scene.standby_point()
        deadline = time.monotonic() + 30
        while max(_meeting_heads(await read_heads(scene.settings)), default=0) <= standby_head:
            assert time.monotonic() < deadline, "no chain head published beyond the standby's position"
            await asyncio.sleep(0.5)
        verify = asyncio.create_task(cli(scene.settings, "audit", "verify", "--meeting", MEETING))
        await asyncio.sleep(2.0)
        assert not verify.done(), "audit verify did not wait for the standby to replay the published heads"
    finally:
        await scene.replay(paused=False)
    code, out, err = await verify
    assert code == 0, out + err
    _, checkpoint = await scene.caught_up()
    assert (await _json(scene, "tally", "--meeting", MEETING, "--json"))["as_of_position"] == checkpoint


async def test_the_api_on_the_standby_is_ready_says_so_and_streams_updates_by_polling(scene):
    """/readyz and /v1/status name the standby and its replay lag; the SSE stream pushes each new checkpoint."""
    settings = scene.settings.model_copy(update={"api_port": free_port()})
    token, _ = await api_token(settings, "ops")
    await scene.caught_up()  # the token, issued on the primary, replayed
    headers = {"Authorization": f"Bearer {token}"}
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + 30
        while (ready := await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.2)
        assert ready.json()["database"] == "standby" and ready.json()["replay_lag_s"] is not None
        status = await client.get("/v1/status", headers=headers)
        assert status.status_code == 200 and status.json()["database"] == "standby"
        assert int(status.headers["X-Log-Position"]) <= (await scene.primary_point())[0]
        async with open_stream(client, base, MEETING, token) as events:
            _, first, _ = await events.tally(timeout=30)
            await publish(scene.settings, scene.work, start=600, stop=900)
            await settle(scene.settings, scene.work, 180)
            _, primary_checkpoint = await scene.primary_point()
            _, data = await events.tally_at(primary_checkpoint, timeout=30)
            assert first < data["as_of_position"] == primary_checkpoint


async def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_feed_polls_a_standby_and_listens_on_the_same_connection_once_it_is_promoted(scene):
    """Last in the module (it promotes the standby): polling while in recovery, then LISTEN, no reconnection."""
    feed = ProjectedFeed(lambda: connect_as(scene.settings, READER_ROLE))
    task = asyncio.create_task(feed.run())
    try:
        await _until(lambda: feed.connected and feed.standby)
        pid = feed.backend_pid
        # A standby is promoted once its primary is stopped (promote refuses otherwise: two primaries).
        await asyncio.to_thread(postgres_standby.stop_primary, scene.cfg, print, "fast")
        await asyncio.to_thread(postgres_standby.promote, scene.cfg, print)
        await _until(lambda: not feed.standby)
        await _until(lambda: feed.connected)
        assert feed.backend_pid == pid
        # The projector's announcement on the promoted server now reaches the feed as a notification.
        later = feed.position + 1000
        conn = await asyncpg.connect(scene.standby.pg_admin_dsn)
        try:
            await conn.execute("SELECT pg_notify($1, $2)", PROJECTED_CHANNEL, str(later))
        finally:
            await conn.close()
        await _until(lambda: feed.position == later, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""`vote-ledger stack up --replicated`: three KRaft brokers (and the PostgreSQL pair), in a home of its own.

One replicated stack for the module, started through the CLI as an operator would (home under tmp, free
ports), ALWAYS stopped at the end; the cases read its output, its status, the cluster's shape and the
topics `ensure_topics` makes on it from the printed settings.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.adapters.kafka.topics import client_options, ensure_topics
from services.devtools.stack import kafka_cluster, postgres_standby
from services.devtools.stack.common import StackConfig
from services.local_stack import record_ports
from services.settings import load
from tests.conftest import CLI, free_port
from tests.faults.test_broker_faults import free_bases
from tests.own_stack import own_stack

pytestmark = pytest.mark.integration


def stack_env(home: Path, kafka: int, controller: int, pg: int) -> dict[str, str]:
    """A `vote-ledger stack` environment for this home and ports only (none of the shared stack's variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_")}
    return env | {
        "VOTE_LEDGER_HOME": str(home),
        "VOTE_LEDGER_CACHE": str(load().cache),
        "VOTE_LEDGER_KAFKA_PORT": str(kafka),
        "VOTE_LEDGER_KAFKA_CONTROLLER_PORT": str(controller),
        "VOTE_LEDGER_PG_PORT": str(pg),
    }


def free_pg_ports() -> int:
    """A PostgreSQL port free now with the standby's (the next one) free too."""
    from tests.pg_pair import free_port_pair

    return free_port_pair()


def stack(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """Run `vote-ledger stack ...` in the environment."""
    return subprocess.run([*CLI, "stack", *args], env=env, capture_output=True, text=True, timeout=timeout)


def exported(stdout: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0]
    return found


@pytest.fixture(scope="module")
def replicated():
    """`stack up --replicated` in a home of its own on free ports; `stack down` at the end, even on failure."""
    kafka, controller = free_bases()
    pg = free_pg_ports()

    def env(cfg: StackConfig) -> dict[str, str]:
        return stack_env(cfg.home, kafka, controller, pg)

    def up(cfg: StackConfig) -> subprocess.CompletedProcess[str]:
        run = stack(env(cfg), "up", "--replicated")
        assert run.returncode == 0, run.stderr[-3000:]
        return run

    with own_stack(
        "vl-replicated-",
        lambda home: StackConfig(home, load().cache, kafka, controller, pg, replicated=True),
        up,
        stop=lambda cfg: stack(env(cfg), "down", timeout=180),  # as an operator stops it (then own_stack's)
    ) as (cfg, run):
        yield env(cfg), cfg, run


def test_the_replicated_stack_prints_three_brokers_and_the_topic_durability(replicated):
    env, cfg, run = replicated
    found = exported(run.stdout)
    port = cfg.kafka_port
    assert found["VOTE_LEDGER_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{port},127.0.0.1:{port + 10},127.0.0.1:{port + 20}"
    assert found["VOTE_LEDGER_TOPIC_REPLICATION"] == "3"
    assert found["VOTE_LEDGER_TOPIC_MIN_INSYNC"] == "2"
    assert f"127.0.0.1:{cfg.pg_port}/" in found["VOTE_LEDGER_PG_DSN"]
    assert {"VOTE_LEDGER_KAFKA_OPERATOR_LOGIN", "VOTE_LEDGER_KAFKA_CHANNEL_LOGIN"} <= found.keys()
    assert json.loads((cfg.home / "ports.json").read_text())["replicated"] is True
    reader = postgres_standby.standby_dsns(cfg).pg_reader_dsn
    assert f"# readers on the standby: export VOTE_LEDGER_PG_READER_DSN={shlex.quote(reader)}" in run.stdout


def test_each_node_runs_on_its_own_ports_and_files_and_the_quorum_has_a_leader(replicated):
    _, cfg, _ = replicated
    for node in kafka_cluster.NODES:
        assert kafka_cluster.node_ports(cfg, node) == (
            cfg.kafka_port + 10 * (node - 1),
            cfg.kafka_controller_port + 10 * (node - 1),
        )
        assert kafka_cluster.node_pid(cfg, node) is not None
        assert (cfg.home / f"kafka-server-{node}.properties").stat().st_mode & 0o777 == 0o600
        assert (cfg.home / f"kafka-data-{node}" / "meta.properties").exists()
        assert (cfg.home / "logs" / f"kafka-{node}.log").exists()
    assert kafka_cluster.active_controller(cfg) in kafka_cluster.NODES


async def test_topics_made_with_the_printed_settings_have_three_replicas_and_a_minimum_of_two_in_sync(replicated):
    env, cfg, run = replicated
    found = exported(run.stdout)
    settings = load(
        kafka_bootstrap=found["VOTE_LEDGER_KAFKA_BOOTSTRAP"],
        topic_replication=int(found["VOTE_LEDGER_TOPIC_REPLICATION"]),
        topic_min_insync=int(found["VOTE_LEDGER_TOPIC_MIN_INSYNC"]),
        kafka_operator_login=found["VOTE_LEDGER_KAFKA_OPERATOR_LOGIN"],
        kafka_ledger_login=found["VOTE_LEDGER_KAFKA_OPERATOR_LOGIN"],
        kafka_admin_login=found["VOTE_LEDGER_KAFKA_OPERATOR_LOGIN"],
        topic_prefix="shape.",
    )
    await ensure_topics(settings)
    topics = [settings.submissions_topic, settings.decisions_topic, settings.admin_topic, settings.heads_topic]
    described = kafka_cluster.describe(cfg, topics)
    assert {t["topic"] for t in described} == set(topics)
    for topic in described:
        for partition in topic["partitions"]:
            assert sorted(partition["replicas"]) == [1, 2, 3], (topic["topic"], partition)
            assert sorted(partition["isr"]) == [1, 2, 3], (topic["topic"], partition)
    assert kafka_cluster.under_replicated(cfg, topics) == 0
    assert await min_insync(settings, topics) == {topic: "2" for topic in topics}


async def min_insync(settings, topics: list[str]) -> dict[str, str]:
    """Each topic's min.insync.replicas as the brokers report it."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings, "operator"))
    await admin.start()
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"min.insync.replicas": None}) for t in topics]
        )
    finally:
        await admin.close()
    found = {}
    for answer in answers:
        for _code, _message, _type, name, entries in answer.resources:
            for entry in entries:
                if entry[0] == "min.insync.replicas":
                    found[name] = entry[1]
    return found


def test_status_lists_every_node_running_with_its_pid_and_ports(replicated):
    env, cfg, _ = replicated
    run = stack(env, "status", "--format", "json")
    info = json.loads(run.stdout)
    assert info["replicated"] is True
    nodes = info["kafka_nodes"]
    assert [n["node"] for n in nodes] == [1, 2, 3]
    for node in nodes:
        assert node["running"] and node["pid"] == kafka_cluster.node_pid(cfg, node["node"])
        client, controller = kafka_cluster.node_ports(cfg, node["node"])
        assert (node["address"], node["controller_address"]) == (f"127.0.0.1:{client}", f"127.0.0.1:{controller}")
    assert info["kafka"]["running"] and info["kafka"]["address"] == kafka_cluster.bootstrap(cfg)
    assert run.returncode == (0 if info["postgres"]["running"] and info["standby"]["running"] else 3)
    table = stack(env, "status").stdout
    assert all(f"kafka-{node}" in table for node in (1, 2, 3)) and "pg-standby" in table


def test_status_of_a_node_down_says_so_and_exits_three(replicated):
    env, cfg, _ = replicated
    kafka_cluster.kill_node(cfg, 3)
    try:
        run = stack(env, "status", "--format", "json")
        info = json.loads(run.stdout)
        assert [n["running"] for n in info["kafka_nodes"]] == [True, True, False]
        assert info["kafka"]["running"] is False and run.returncode == 3
    finally:
        kafka_cluster.start_node(cfg, 3, print)
        kafka_cluster.wait_node_ready(cfg, 3, print, 180)
    assert kafka_cluster.node_pid(cfg, 3) is not None


def test_stack_up_without_the_flag_on_a_replicated_home_is_refused_in_one_line(replicated):
    env, _, _ = replicated
    run = stack(env, "up", timeout=60)
    assert run.returncode != 0 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "is replicated (`stack up --replicated`), not single-node" in lines[0], run.stderr


def test_a_principal_added_on_the_replicated_stack_can_log_in(replicated):
    env, _, _ = replicated
    run = stack(env, "principal", "add", "channel-cluster", "--role", "channel", timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    login = exported(run.stdout)["VOTE_LEDGER_KAFKA_CHANNEL_LOGIN"]
    assert login.startswith("channel-cluster:")


def test_stack_up_replicated_on_a_single_node_home_is_refused_before_anything_starts(tmp_path):
    record_ports(tmp_path, {"kafka_port": 1, "kafka_controller_port": 2, "pg_port": 3})
    env = stack_env(tmp_path, *free_bases(), free_port())
    run = stack(env, "up", "--replicated", timeout=60)
    assert run.returncode != 0 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "is single-node (`stack up`), not replicated" in lines[0], run.stderr
    assert not (tmp_path / "kafka-data-1").exists() and not (tmp_path / "pg-data").exists()


def test_node_ports_step_by_ten_from_the_defaults():
    cfg = StackConfig(Path("/nonexistent"), Path("/nonexistent"), 19092, 19093, 15432, replicated=True)
    assert [kafka_cluster.node_ports(cfg, node) for node in kafka_cluster.NODES] == [
        (19092, 19093),
        (19102, 19103),
        (19112, 19113),
    ]
    assert kafka_cluster.bootstrap(cfg) == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert kafka_cluster.voters(cfg) == "1@127.0.0.1:19093,2@127.0.0.1:19103,3@127.0.0.1:19113"


def test_status_of_the_live_standby_shows_its_state_and_sync_state(replicated):
    env, cfg, _ = replicated
    postgres_standby.wait_streaming(cfg, print)
    table = stack(env, "status").stdout
    row = next(line for line in table.splitlines() if line.startswith("pg-standby"))
    assert "running (streaming, sync_state sync" in row, table


async def _rows(dsn: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_stack_promote_makes_the_standby_a_primary_and_prints_every_dsn_on_it(replicated):
    # Last of the module: the promoted standby stays a primary until `stack down`.
    env, cfg, _ = replicated
    primary = exported(replicated[2].stdout)["VOTE_LEDGER_PG_ADMIN_DSN"]
    await _rows(primary, "CREATE TABLE promoted_log AS SELECT n FROM generate_series(1, 100) AS n")
    refused = stack(env, "promote", timeout=180)
    assert refused.returncode != 0 and "stop the primary first" in refused.stderr, refused.stderr[-2000:]
    postgres_standby.stop_primary(cfg, print, mode="fast")  # as the refusal says: the primary first
    run = stack(env, "promote", timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    found = exported(run.stdout)
    standby = f"127.0.0.1:{cfg.pg_port + 1}/"
    dsns = [name for name in found if name.startswith("VOTE_LEDGER_PG_") and name.endswith("_DSN")]
    assert dsns and all(standby in found[name] for name in dsns), found
    assert found["VOTE_LEDGER_KAFKA_BOOTSTRAP"] == kafka_cluster.bootstrap(cfg)
    assert found["VOTE_LEDGER_TOPIC_REPLICATION"] == "3"
    info = json.loads(stack(env, "status", "--format", "json").stdout)
    assert info["standby"]["role"] == "primary (promoted)"
    status = stack(env, "status")
    assert status.returncode == 0, status.stdout  # the home is its brokers and the promoted server now
    row = next(line for line in status.stdout.splitlines() if line.startswith("postgres "))
    assert "running (primary (promoted))" in row and f"127.0.0.1:{cfg.pg_port + 1}" in row, status.stdout
    assert f"@127.0.0.1:{cfg.pg_port + 1}/" in next(
        line for line in status.stdout.splitlines() if line.startswith("postgres dsn")
    )
    assert info["postgres"]["running"] and not any(line.startswith("pg-standby") for line in status.stdout.splitlines())


async def test_a_promoted_home_is_started_again_by_stack_promote_and_refused_by_stack_up(replicated):
    env, cfg, _ = replicated
    assert stack(env, "down", timeout=180).returncode == 0
    refused = stack(env, "up", "--replicated", timeout=180)
    assert refused.returncode != 0 and refused.stdout == "", refused.stderr[-2000:]
    assert "run `vote-ledger stack promote` to start the promoted server" in refused.stderr
    errors = [line for line in refused.stderr.strip().splitlines() if "warning:" not in line]  # ports' warnings
    assert len(errors) == 1 and f"remove {cfg.home}" in errors[0], refused.stderr
    # Refused before anything started: no broker left running.
    assert [kafka_cluster.node_pid(cfg, node) for node in kafka_cluster.NODES] == [None, None, None]
    run = stack(env, "promote", timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    found = exported(run.stdout)
    dsns = [name for name in found if name.startswith("VOTE_LEDGER_PG_") and name.endswith("_DSN")]
    assert dsns and all(f"127.0.0.1:{cfg.pg_port + 1}/" in found[name] for name in dsns), found
    assert found["VOTE_LEDGER_KAFKA_BOOTSTRAP"] == kafka_cluster.bootstrap(cfg)
    rows = await _rows(found["VOTE_LEDGER_PG_ADMIN_DSN"], "SELECT count(*), pg_is_in_recovery() FROM promoted_log")
    assert tuple(rows[0]) == (100, False)
    assert stack(env, "status").returncode == 0

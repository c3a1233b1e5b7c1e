"""The replicated stack's Kafka: three KRaft nodes (broker + controller each) on loopback, run with kafka.py's steps.

Node i (1..3) listens on kafka_port + 10*(i-1) and kafka_controller_port + 10*(i-1); its files are
<home>/kafka-data-<i>, kafka-server-<i>.properties, kafka-<i>.pid and logs/kafka-<i>.log (StackConfig.node_*).
The fault suite (tests/faults/test_broker_faults.py) kills and restarts nodes with kill_node/start_node.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.devtools.stack import kafka as _kafka
from services.devtools.stack import kafka_jars as _jars
from services.devtools.stack.common import Log, StackConfig, StackError, run_sync
from services.devtools.stack.kafka_auth import authenticated
from services.local_stack import LOOPBACK, cluster_bootstrap

NODES = (1, 2, 3)
# Three JVMs share two cores with PostgreSQL and the services: 512 MB each (the single node's 768 MB is for
# a broker holding every replica alone).
HEAP = ("-Xms192m", "-Xmx512m")
STOP_TIMEOUT_S = 20.0
CLUSTER_ID_FILE = "kafka-cluster-id"  # the id every node was formatted with (a new node must share it)


def _replicated(cfg: StackConfig) -> StackConfig:
    return cfg if cfg.replicated else replace(cfg, replicated=True)


def node_ports(cfg: StackConfig, node: int) -> tuple[int, int]:
    """The node's (client, controller) ports."""
    return cfg.node_ports(node)


def bootstrap(cfg: StackConfig) -> str:
    """The bootstrap list naming all three brokers."""
    return cluster_bootstrap(cfg.kafka_port)


def voters(cfg: StackConfig) -> str:
    """controller.quorum.voters: every node's id at its controller port."""
    return ",".join(f"{node}@{LOOPBACK}:{node_ports(cfg, node)[1]}" for node in NODES)


def write_properties(cfg: StackConfig, node: int) -> Path:
    """Fill the nodes' properties template for this node of the cluster into the home."""
    # Three replicas, two in sync for a write; two I/O threads each: three JVMs share the 2 cores.
    return _kafka.write_properties(_replicated(cfg), node, voters=voters(cfg), replication=3, min_isr=2, io_threads=2)


def cluster_id(cfg: StackConfig) -> str:
    """The cluster's id: the one recorded in the home, else a new one (recorded)."""
    path = cfg.home / CLUSTER_ID_FILE
    try:
        return path.read_text().strip()
    except OSError:
        found = _kafka.random_cluster_id()
        path.write_text(found + "\n")
        return found


def node_pid(cfg: StackConfig, node: int) -> int | None:
    """The pid of the node's JVM, or None when it does not run."""
    return _kafka.running_pid(_replicated(cfg), node)


def check(cfg: StackConfig) -> None:
    """Fail before anything starts: a busy port of a node not running, no Java, no Maven for a first fetch."""
    cfg = _replicated(cfg)
    for node in NODES:
        _kafka.check_ports(cfg, node)
        _kafka.check_tools(cfg, node)


def start_node(cfg: StackConfig, node: int, log: Log) -> None:
    """Launch one node (properties written, storage formatted if new) unless it runs; does not wait."""
    cfg = _replicated(cfg)
    if node_pid(cfg, node) is not None:
        return
    _kafka.check_ports(cfg, node)
    java = _jars.java()
    _jars.ensure_libs(cfg, log)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    write_properties(cfg, node)
    _kafka.format_storage(cfg, java, log, node, cluster_id(cfg))
    _kafka.launch(cfg, log, node, java, *HEAP)


def wait_node_ready(cfg: StackConfig, node: int, log: Log, timeout: float = _kafka.READY_TIMEOUT_S) -> None:
    """Block until the node answers a metadata request (its broker registered with the quorum)."""
    _kafka.wait_ready(_replicated(cfg), log, timeout, node)


def up(cfg: StackConfig, log: Log) -> None:
    """Start the three nodes (each launched before any is waited for: the quorum needs two) and wait for all."""
    cfg = _replicated(cfg)
    check(cfg)
    for node in NODES:
        start_node(cfg, node, log)
    for node in NODES:
        wait_node_ready(cfg, node, log)


def down(cfg: StackConfig, log: Log) -> None:
    """Stop every node (SIGTERM, a controlled shutdown; SIGKILL after the timeout)."""
    cfg = _replicated(cfg)
    # All at once: stopped one after the other, the last node alone has no quorum to report its controlled
    # shutdown to and ignored SIGTERM until the timeout (measured: 20 s, then SIGKILL); together they finish
    # while two of three still answer. A SIGKILL after the timeout loses nothing acknowledged (it is in the
    # page cache; the next start recovers the segments).
    stoppers = [
        threading.Thread(target=_kafka.stop, args=(cfg, log, STOP_TIMEOUT_S, node), name=f"stop-kafka-{node}")
        for node in NODES
    ]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


def kill_node(cfg: StackConfig, node: int, sig: int = signal.SIGKILL) -> int:
    """Send the signal to the node's JVM (default: kill -9); wait until a killed one is gone; return its pid."""
    pid = node_pid(cfg, node)
    if pid is None:
        raise StackError(f"Kafka node {node} of {cfg.home} is not running")
    os.kill(pid, sig)
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + 10
        while _kafka.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return pid


def quorum_state(cfg: StackConfig, node: int) -> dict[str, Any]:
    """The node's KRaft quorum-state file (leaderId, leaderEpoch as this node last knew them); {} if none."""
    path = _replicated(cfg).node_data(node) / "__cluster_metadata-0" / "quorum-state"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def active_controller(cfg: StackConfig, timeout: float = 30.0) -> int:
    """The KRaft quorum leader's node id (the active controller), as the running nodes agree on it."""
    # Each voter writes the leader it follows, with the epoch, to its quorum-state file on every election:
    # the newest epoch a running node names is the current leader (no JVM tool needed: a JVM start costs
    # seconds on this machine). Until a leader is elected the files name none (-1): poll.
    deadline = time.monotonic() + timeout
    while True:
        states = [quorum_state(cfg, node) for node in NODES if node_pid(cfg, node) is not None]
        known = [s for s in states if s.get("leaderId", -1) in NODES]
        if known:
            newest = max(known, key=lambda s: int(s.get("leaderEpoch", -1)))
            leader = int(newest["leaderId"])
            if node_pid(cfg, leader) is not None:
                return leader
        if time.monotonic() > deadline:
            raise StackError(f"no running Kafka node of {cfg.home} names a quorum leader")
        time.sleep(0.2)


async def _describe(cfg: StackConfig, topics: list[str]) -> list[dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**_kafka.operator_options(cfg, bootstrap(cfg)), request_timeout_ms=10000)
    try:
        await asyncio.wait_for(admin.start(), timeout=20)
        return list(await admin.describe_topics(topics))
    finally:
        await admin.close()


def describe(cfg: StackConfig, topics: list[str]) -> list[dict[str, Any]]:
    """Each topic's metadata as the brokers describe it (partitions with leader, replicas, isr)."""
    return run_sync(_describe(_replicated(cfg), topics))


def under_replicated(cfg: StackConfig, topics: list[str]) -> int:
    """How many of the topics' partitions have fewer in-sync replicas than replicas (0 once healed)."""
    found = describe(cfg, topics)
    return sum(
        1
        for topic in found
        for partition in topic.get("partitions", [])
        if len(partition.get("isr", [])) < len(partition.get("replicas", []))
    )


def status(cfg: StackConfig) -> list[dict[str, Any]]:
    """Each node: running, pid, client and controller addresses, data dir, log file."""
    cfg = _replicated(cfg)
    rows = []
    for node in NODES:
        client, controller = node_ports(cfg, node)
        pid = node_pid(cfg, node)
        rows.append(
            {
                "node": node,
                "running": pid is not None,
                "pid": pid,
                "address": f"{LOOPBACK}:{client}",
                "controller_address": f"{LOOPBACK}:{controller}",
                "data_dir": str(cfg.node_data(node)),
                "log_file": str(cfg.node_log(node)),
            }
        )
    return rows


def logins_ready(cfg: StackConfig) -> bool:
    """Whether the nodes were formatted with the SCRAM logins (always, for a cluster this version made)."""
    return authenticated(_replicated(cfg))

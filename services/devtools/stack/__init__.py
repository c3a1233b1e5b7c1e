"""Local Kafka + PostgreSQL stack on loopback: start, stop, inspect, and pick endpoints.

The stack needs no Docker: Kafka runs from jars fetched once from Maven Central into the cache
folder (see deploy/local/kafka/pom.xml), PostgreSQL from the machine's own binaries. Shared
definitions live in common.py, Kafka details in kafka.py, PostgreSQL details in postgres.py; this
module only orchestrates them, so the three import in one direction. A replicated stack
(`stack up --replicated`) runs kafka_cluster.py's three Kafka nodes and postgres_standby.py's hot standby.
"""

from __future__ import annotations

import atexit
import fcntl
import threading
from dataclasses import replace
from typing import Any

__all__ = [
    "KAFKA_VERSION",
    "Endpoints",
    "StackConfig",
    "StackError",
    "add_principal",
    "endpoints",
    "promote",
    "resolve_endpoints",
    "stack_down",
    "stack_status",
    "stack_up",
]

from services.devtools.stack import kafka as _kafka
from services.devtools.stack import kafka_auth as _kafka_auth
from services.devtools.stack import kafka_cluster as _cluster
from services.devtools.stack import postgres as _pg
from services.devtools.stack import postgres_standby as _standby
from services.devtools.stack.common import (
    KAFKA_IMAGE,
    KAFKA_VERSION,
    POSTGRES_IMAGE,
    Log,
    StackConfig,
    StackError,
    ephemeral_port_warnings,
    ephemeral_range,
    say,
)
from services.local_stack import DATABASE, Endpoints, record_ports, recorded_replicated, served_endpoints


def _mode(replicated: bool) -> str:
    return "replicated (`stack up --replicated`)" if replicated else "single-node (`stack up`)"


def stack_up(cfg: StackConfig | None = None, log: Log = say, replicated: bool = False) -> Endpoints:
    """Start Kafka and PostgreSQL if they are not running (replicated: three brokers and a standby); return
    their endpoints."""
    cfg = cfg or StackConfig.from_env(replicated=replicated)
    replicated = replicated or cfg.replicated
    recorded = recorded_replicated(cfg.home)
    if recorded is not None and recorded != replicated:
        raise StackError(
            f"the stack of {cfg.home} is {_mode(recorded)}, not {_mode(replicated)}: run that, or use another"
            " VOTE_LEDGER_HOME (--home)"
        )
    cfg = replace(cfg, replicated=replicated)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    # One `stack up` at a time per home, across processes: parallel test workers (pytest -n) each ask for
    # the stack at once, and two starting it together would both find the ports free and both start it.
    with open(cfg.home / "stack-up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _up_replicated(cfg, log) if replicated else _up(cfg, log)


def _record(cfg: StackConfig) -> None:
    # Recorded before anything starts, so status, down and the local-stack fallback find these ports.
    ports = {"kafka_port": cfg.kafka_port, "kafka_controller_port": cfg.kafka_controller_port, "pg_port": cfg.pg_port}
    record_ports(cfg.home, ports, cfg.replicated)


def _up_replicated(cfg: StackConfig, log: Log) -> Endpoints:
    ports = {
        f"{name} (node {node})": port
        for node in _cluster.NODES
        for name, port in zip(
            ("VOTE_LEDGER_KAFKA_PORT", "VOTE_LEDGER_KAFKA_CONTROLLER_PORT"), cfg.node_ports(node), strict=True
        )
    } | {"VOTE_LEDGER_PG_PORT": cfg.pg_port}
    for warning in ephemeral_port_warnings(ports, ephemeral_range()):
        log(f"warning: {warning}")
    _cluster.check(cfg)
    _standby.check_not_promoted(cfg)  # before any broker starts: a refusal leaves nothing running
    _pg.check_ports(cfg)
    _pg.check_tools(cfg, log)
    _record(cfg)
    # The three JVMs boot while PostgreSQL and its standby are set up; a node waits for two voters.
    for node in _cluster.NODES:
        _cluster.start_node(cfg, node, log)
    _standby.up(cfg, log)  # the primary (with its replication login and pg_hba line), then the standby
    for node in _cluster.NODES:
        _cluster.wait_node_ready(cfg, node, log)
    _kafka_auth.ensure_acls(cfg, log)
    return endpoints(cfg)


def _up(cfg: StackConfig, log: Log) -> Endpoints:
    for warning in ephemeral_port_warnings(cfg.ports(), ephemeral_range()):
        log(f"warning: {warning}")
    # Check every port first so a busy one does not leave half a stack running.
    _kafka.check_ports(cfg)
    _pg.check_ports(cfg)
    # And every tool, so a missing one is one line, not a traceback with Kafka started and PostgreSQL not.
    _kafka.check_tools(cfg)
    _pg.check_tools(cfg, log)
    _record(cfg)
    # The JVM takes the longest to boot, so launch it first and set up
    # PostgreSQL while it starts; then wait for Kafka to answer.
    _kafka.start(cfg, log)
    _pg.up(cfg, log)
    _kafka.wait_ready(cfg, log)
    _kafka_auth.ensure_acls(cfg, log)
    return endpoints(cfg)


def stack_down(cfg: StackConfig | None = None, log: Log = say) -> None:
    """Stop Kafka and PostgreSQL (every node and the standby of a replicated home); does nothing for a
    service that is not running."""
    cfg = cfg or StackConfig.from_env()
    if recorded_replicated(cfg.home):
        cfg = replace(cfg, replicated=True)
    if not cfg.replicated:
        _kafka.stop(cfg, log)
        _pg.stop(cfg, log)
        return
    _cluster.down(cfg, log)
    _standby.down(cfg, log)  # the primary first: its shutdown checkpoint reaches the standby before it stops


def promote(cfg: StackConfig | None = None, log: Log = say) -> Endpoints:
    """Promote the replicated stack's standby (the documented failover), or start a promoted home again; return
    the endpoints served by it."""
    cfg = cfg or StackConfig.from_env()
    if not recorded_replicated(cfg.home):
        raise StackError(f"the stack of {cfg.home} has no standby: it was not started with `stack up --replicated`")
    cfg = replace(cfg, replicated=True)
    restart = _standby.is_promoted(cfg)
    if restart:
        # A promoted home after `stack down`: `stack up --replicated` refuses it, so this starts all of it again
        # (the brokers, then the promoted server), and the exports below point at it.
        _cluster.check(cfg)
        for node in _cluster.NODES:
            _cluster.start_node(cfg, node, log)
    _standby.promote(cfg, log)
    if restart:
        for node in _cluster.NODES:
            _cluster.wait_node_ready(cfg, node, log)
    found = _standby.standby_dsns(cfg)
    kafka = endpoints(cfg)
    return replace(
        found,
        kafka_bootstrap=kafka.kafka_bootstrap,
        topic_replication=kafka.topic_replication,
        topic_min_insync=kafka.topic_min_insync,
        **{field: getattr(kafka, field) for field in _kafka_auth.logins(cfg)},
    )


def add_principal(cfg: StackConfig | None, name: str, role: str, log: Log = say) -> str:
    """Create a Kafka principal of the role on the running stack (SCRAM user and ACLs); return its password."""
    return _kafka_auth.add_principal(cfg or StackConfig.from_env(), name, role, log)


def stack_status(cfg: StackConfig | None = None) -> dict[str, Any]:
    """Describe both services (running, pid, address, data dir, log file), cache and version."""
    cfg = cfg or StackConfig.from_env()
    if recorded_replicated(cfg.home):
        cfg = replace(cfg, replicated=True)
    info: dict[str, Any] = {
        "home": str(cfg.home),
        "cache": str(cfg.cache),
        "kafka_version": cfg.kafka_version,
        "replicated": cfg.replicated,
        "kafka": _kafka.status(cfg),
        "postgres": _pg.status(cfg),
    }
    if cfg.replicated:
        nodes = _cluster.status(cfg)
        info["kafka_nodes"] = nodes
        # The cluster as a whole: running when every node is (one down is a degraded cluster, reported so).
        info["kafka"] |= {
            "running": all(node["running"] for node in nodes),
            "address": _cluster.bootstrap(cfg),
            "data_dir": str(cfg.home / "kafka-data-{1,2,3}"),
            "log_file": str(cfg.logs_dir / "kafka-{1,2,3}.log"),
        }
        info["standby"] = _standby.status(cfg)
        if _standby.is_promoted(cfg):
            # The promoted server is this home's primary: status names it so, with its DSN; the old primary
            # stays listed apart (never to be started as a primary again, README "Failover").
            info["old_primary"] = info["postgres"]
            promoted = info["standby"]
            info["postgres"] = {
                **promoted,
                "dsn": info["old_primary"]["dsn"].replace(f":{cfg.pg_port}/", f":{_standby.standby_port(cfg)}/"),
                "passwords": info["old_primary"]["passwords"],
            }
    return info


def endpoints(cfg: StackConfig) -> Endpoints:
    """The endpoints this stack serves once it is up: every DSN with its login and password."""
    return served_endpoints(
        cfg.kafka_port, cfg.pg_port, _pg.passwords(cfg), _kafka_auth.logins(cfg), replicated=cfg.replicated
    )


_containers: list[Any] = []
_container_endpoints: Endpoints | None = None
_resolve_lock = threading.Lock()


def resolve_endpoints(cfg: StackConfig | None = None) -> tuple[Endpoints, str]:
    """Find a Kafka + PostgreSQL to use: "env", else "testcontainers", else the "local" stack."""
    global _container_endpoints
    given = Endpoints.from_env()
    if given is not None:
        return given, "env"
    with _resolve_lock:
        if _container_endpoints is not None:
            return _container_endpoints, "testcontainers"
        if _docker_answers():
            try:
                _container_endpoints = _start_containers()
                return _container_endpoints, "testcontainers"
            except Exception as exc:  # e.g. images cannot be pulled: the local stack still works
                _stop_containers()
                say(f"testcontainers failed ({exc!r}); using the local stack instead")
        return stack_up(cfg), "local"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon, bad DOCKER_HOST: all mean "no Docker"
        return False


def _start_containers() -> Endpoints:
    try:  # testcontainers >= 4.9 moved the modules; the old paths warn
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

    # Same broker behaviour as the local stack: topics are created explicitly.
    kafka = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_NUM_PARTITIONS", "4")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    postgres = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres", dbname=DATABASE, driver=None)
    atexit.register(_stop_containers)
    say(f"starting {KAFKA_IMAGE} and {POSTGRES_IMAGE} with testcontainers")
    # Module-level references keep the containers for the whole process and let
    # the atexit hook stop them (Ryuk would reap them too, but later).
    _containers.append(kafka.start())
    _containers.append(postgres.start())
    # The container's superuser is all we know: the test fixtures make the service logins with it.
    admin = postgres.get_connection_url(driver=None)
    return Endpoints(kafka.get_bootstrap_server(), admin, pg_admin_dsn=admin)


def _stop_containers() -> None:
    while _containers:
        container = _containers.pop()
        try:
            container.stop()
        except Exception:  # best effort at interpreter exit
            pass

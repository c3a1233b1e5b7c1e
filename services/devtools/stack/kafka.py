"""The Kafka half of the local stack: fetch jars, format KRaft storage, start, probe, stop (logins: kafka_auth).

Each step takes a node (1 for the single node; kafka_cluster.py runs nodes 1..3 of a replicated stack with
them): its ports and files come from StackConfig.node_*.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from string import Template
from typing import Any

from services.devtools.stack.common import (
    Log,
    StackConfig,
    StackError,
    log_tail,
    run_sync,
)
from services.devtools.stack.kafka_auth import (
    AUTH_MARKER,
    authenticated,
    passwords,
    salted_scram,
    set_aside_unauthenticated,
    write_private,
)
from services.devtools.stack.kafka_jars import INSTALL_HINT, KAFKA_DEPLOY, ensure_libs, java, jvm, libs_ready
from services.local_stack import KAFKA_USERS, LOOPBACK, kafka_logins, kafka_passwords_file, port_open

PROPERTIES_TEMPLATE = KAFKA_DEPLOY / "server.properties.template"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
START_BANNER = "=== stack up: starting Kafka"

# Popen objects of brokers started by this process: polling them reaps the child,
# otherwise a stopped broker would linger as a zombie that still "exists" as a pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


def properties_file(cfg: StackConfig, node: int = 1) -> Path:
    """The generated server.properties of this stack's node."""
    return cfg.node_properties(node)


def pid_file(cfg: StackConfig, node: int = 1) -> Path:
    """Where the node's pid is recorded."""
    return cfg.node_pid_file(node)


def write_properties(
    cfg: StackConfig,
    node: int = 1,
    *,
    voters: str | None = None,
    replication: int = 1,
    min_isr: int = 1,
    io_threads: int = 4,
) -> Path:
    """Fill deploy/local/kafka/server.properties.template for the node into this stack's home (0600: the
    operator's password); the defaults are the single node's (a cluster passes its voters and replication)."""
    client, controller = cfg.node_ports(node)
    path = properties_file(cfg, node)
    operator = KAFKA_USERS["operator"]
    write_private(
        path,
        Template(PROPERTIES_TEMPLATE.read_text()).substitute(
            node_id=node,
            voters=voters or f"{node}@{LOOPBACK}:{controller}",
            host=LOOPBACK,
            kafka_port=client,
            controller_port=controller,
            log_dirs=cfg.node_data(node),
            operator=operator,
            operator_password=passwords(cfg)[operator],
            replication=replication,
            min_isr=min_isr,
            io_threads=io_threads,
        ),
    )
    return path


def _format_storage(cfg: StackConfig, java: str, log: Log) -> None:
    set_aside_unauthenticated(cfg, log)
    format_storage(cfg, java, log, 1, random_cluster_id())


def format_storage(cfg: StackConfig, java: str, log: Log, node: int, cluster_id: str) -> None:
    """Format a node's KRaft storage for the cluster id with every SCRAM login, unless it is formatted already."""
    data = cfg.node_data(node)
    if (data / "meta.properties").exists():
        return
    log(f"formatting KRaft storage in {data} (cluster id {cluster_id}) with SCRAM logins")
    data.mkdir(parents=True, exist_ok=True)
    # The principals' SCRAM credentials go into the first metadata (KIP-900): the broker needs the
    # operator's to talk to itself before any client could add one. Salted, not clear; and even so in a 0600
    # argument file (`java @file`), not on the command line any local user reads in /proc: a salted password
    # still logs in to SCRAM (it yields the client key).
    scram = [
        arg
        for user, password in sorted(passwords(cfg).items())
        for arg in ("--add-scram", salted_scram(user, password))
    ]
    args = cfg.home / f"kafka-format-{node}.args"
    # The launcher reads the main class and its arguments from the file (JDK 9+ argument files).
    words = ["kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", cluster_id,
             "-c", str(properties_file(cfg, node)), *scram]  # fmt: skip
    # Quoted, so a home with spaces stays one argument; inside quotes the launcher unescapes backslashes.
    write_private(args, "".join('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for w in words))
    try:
        run = subprocess.run([*jvm(cfg, java), f"@{args}"], capture_output=True, text=True, timeout=120)
    finally:
        args.unlink(missing_ok=True)
    if run.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{run.stdout}{run.stderr}")
    (data / AUTH_MARKER).write_text("formatted with the SCRAM logins of kafka-passwords.json\n")


def random_cluster_id() -> str:
    """A new KRaft cluster id."""
    # Kafka's Uuid.toString: URL-safe base64 without padding; like Kafka, avoid a
    # leading "-" that a command line would take for an option.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not; a broker started here is reaped)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_our_broker(pid: int, cfg: StackConfig, node: int = 1) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # Match on this home's properties file, so a reused pid or another stack's
    # broker is never mistaken for ours.
    return b"kafka.Kafka" in argv and str(properties_file(cfg, node)).encode() in argv


def running_pid(cfg: StackConfig, node: int = 1) -> int | None:
    """The pid of this stack's broker (node), or None when it is not running."""
    try:
        pid = int(pid_file(cfg, node).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and _is_our_broker(pid, cfg, node) else None


def check_ports(cfg: StackConfig, node: int = 1) -> None:
    """Fail unless the broker (node) runs already or both of its ports are free."""
    if running_pid(cfg, node) is not None:
        return
    for port in cfg.node_ports(node):
        if port_open(port):
            raise StackError(
                f"port {LOOPBACK}:{port} is taken by another process; stop it or choose other "
                "ports (--kafka-port, --kafka-controller-port or VOTE_LEDGER_KAFKA_*PORT)"
            )


def check_tools(cfg: StackConfig, node: int = 1) -> None:
    """Fail, before anything starts, unless Java (and Maven, while the jars are not cached) are here."""
    if running_pid(cfg, node) is not None:
        return
    java()
    if not libs_ready(cfg) and shutil.which("mvn") is None:
        raise StackError(f"`mvn` is needed once to fetch the Kafka jars: {INSTALL_HINT}")


def start(cfg: StackConfig, log: Log) -> None:
    """Launch the broker in the background unless it already runs; does not wait."""
    if running_pid(cfg) is not None:
        return
    check_ports(cfg)
    binary = java()
    ensure_libs(cfg, log)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    write_properties(cfg)
    _format_storage(cfg, binary, log)
    launch(cfg, log, 1, binary, "-Xms256m", "-Xmx768m")


# Kafka keeps every segment and index of every partition open: the shared stack of a developer who runs the
# suite for weeks died at the machine's 20,000 ("Too many open files", then "all log dirs have failed") with
# 19,774 partition folders. Kafka's own docs ask for 100,000 or more; a broker gets as many as it may (a
# container may forbid raising the hard limit, as here: then the tests' dropping their topics is what helps).
OPEN_FILES = 262_144


def _more_open_files() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((OPEN_FILES, max(hard, OPEN_FILES)), (min(OPEN_FILES, hard), hard)):
        try:  # raising the hard limit needs root (CAP_SYS_RESOURCE); otherwise up to the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return
        except (ValueError, OSError):
            continue


def launch(cfg: StackConfig, log: Log, node: int, java: str, *heap: str) -> None:
    """Start a node whose properties are written and storage formatted, in the background; does not wait."""
    # Heap (the caller's: capped for a dev box) and GC flags as in Kafka's kafka-server-start.sh.
    jvm_options = (
        *heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
    )  # fmt: skip
    cmd = jvm(cfg, java, *jvm_options) + ["kafka.Kafka", str(properties_file(cfg, node))]
    log_file = cfg.node_log(node)
    log(f"starting Kafka {cfg.kafka_version} on {LOOPBACK}:{cfg.node_ports(node)[0]} (log: {log_file})")
    with open(log_file, "ab") as out:
        out.write(f"\n{START_BANNER} {cfg.kafka_version} at {time.ctime()} ===\n".encode())
        out.flush()
        # New session: the broker outlives this process and ignores its Ctrl-C.
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cfg.home, start_new_session=True, preexec_fn=_more_open_files,
        )  # fmt: skip
    _children[proc.pid] = proc
    pid_file(cfg, node).write_text(f"{proc.pid}\n")


def operator_options(cfg: StackConfig, bootstrap: str | None = None) -> dict[str, Any]:
    """aiokafka options logging in to this stack's broker (or the bootstrap given) as the operator
    (PLAINTEXT: an old, unauthenticated stack)."""
    bootstrap = bootstrap or f"{LOOPBACK}:{cfg.kafka_port}"
    login = kafka_logins(cfg.home).get("kafka_operator_login") if authenticated(cfg) else None
    if login is None:
        return {"bootstrap_servers": bootstrap}
    user, _, password = login.partition(":")
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


async def _probe(options: dict[str, Any]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000, client_id="vote-ledger-stack-probe")
    try:
        await asyncio.wait_for(admin.start(), timeout=10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=10)
        if not cluster.get("brokers"):
            raise RuntimeError("metadata lists no broker yet")
    finally:
        await admin.close()


def _startup_errors(log_file: Path) -> str:
    # A failed broker logs its cause once, then pages of orderly shutdown; show the cause.
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return "(no log yet)"
    run = text.rsplit(START_BANNER, 1)[-1].splitlines()
    errors = [line for line in run if " ERROR " in line or " FATAL " in line]
    return "\n".join(errors[:8]) or log_tail(log_file)


def wait_ready(cfg: StackConfig, log: Log, timeout: float = READY_TIMEOUT_S, node: int = 1) -> None:
    """Block until the broker (node) accepts connections and answers a metadata request."""
    port = cfg.node_ports(node)[0]
    bootstrap = f"{LOOPBACK}:{port}"
    log_file = cfg.node_log(node)
    deadline = time.monotonic() + timeout
    last_error = "port not open yet"
    while time.monotonic() < deadline:
        pid = running_pid(cfg, node)
        if pid is None:
            raise StackError(f"Kafka exited during start-up; see {log_file}:\n{_startup_errors(log_file)}")
        if port_open(port):
            try:
                run_sync(_probe(operator_options(cfg, bootstrap)))
                log(f"Kafka is ready at {bootstrap} (pid {pid})")
                return
            except Exception as exc:  # not ready yet: keep polling until the deadline
                last_error = repr(exc)
        time.sleep(0.5)
    raise StackError(
        f"Kafka did not answer a metadata request at {bootstrap} within {timeout:.0f}s "
        f"(last error: {last_error}); see {log_file}:\n{log_tail(log_file)}"
    )


def stop(cfg: StackConfig, log: Log, timeout: float = STOP_TIMEOUT_S, node: int = 1) -> None:
    """Stop the broker (node): SIGTERM (a clean controlled shutdown), SIGKILL after the timeout."""
    pid = running_pid(cfg, node)
    if pid is not None:
        log(f"stopping Kafka (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            log(f"Kafka ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        _children.pop(pid, None)
    pid_file(cfg, node).unlink(missing_ok=True)


def status(cfg: StackConfig) -> dict[str, Any]:
    """Kafka's part of stack_status()."""
    pid = running_pid(cfg)
    return {
        "running": pid is not None,
        "pid": pid,
        "address": f"{LOOPBACK}:{cfg.kafka_port}",
        "controller_address": f"{LOOPBACK}:{cfg.kafka_controller_port}",
        "data_dir": str(cfg.kafka_data),
        "log_file": str(cfg.kafka_log),
        "libs_dir": str(cfg.kafka_libs),
        "libs_ready": libs_ready(cfg),
        "logins": str(kafka_passwords_file(cfg.home)) if authenticated(cfg) else "none (formatted without logins)",
    }

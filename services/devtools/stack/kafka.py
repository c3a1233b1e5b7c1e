"""The Kafka half of the local stack: fetch jars, format KRaft storage, start, probe, stop (logins: kafka_auth).

Each step takes a node (1 for the single node; kafka_cluster.py runs nodes 1..3 of a replicated stack with
them): its ports and files come from StackConfig.node_*.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from string import Template
from typing import Any

from services.devtools.stack.common import (
    DEPLOY_DIR,
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
from services.local_stack import KAFKA_USERS, LOOPBACK, kafka_logins, kafka_passwords_file, port_open

KAFKA_DEPLOY = DEPLOY_DIR / "kafka"
POM = KAFKA_DEPLOY / "pom.xml"
LOG4J2_CONFIG = KAFKA_DEPLOY / "log4j2.yaml"
PROPERTIES_TEMPLATE = KAFKA_DEPLOY / "server.properties.template"
INSTALL_HINT = "install it, e.g. `apt-get install openjdk-17-jre-headless maven`"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
MARKER = "fetched.json"
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


def libs_ready(cfg: StackConfig) -> bool:
    """Whether the cache already holds every jar of a successful fetch for this pom."""
    try:
        marker = json.loads((cfg.kafka_libs.parent / MARKER).read_text())
    except (OSError, ValueError):
        return False
    # A changed pom (new dependency, other version) means the jar set is stale;
    # without the pom (non-editable install) trust the marker.
    if POM.exists() and marker.get("pom_sha256") != _pom_digest(cfg):
        return False
    jars = marker.get("jars") or []
    return bool(jars) and all((cfg.kafka_libs / jar).is_file() for jar in jars)


def _pom_digest(cfg: StackConfig) -> str:
    return hashlib.sha256(POM.read_bytes() + cfg.kafka_version.encode()).hexdigest()


def java() -> str:
    """The java binary (17 or newer), else StackError naming how to install it."""
    return _java()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise StackError(f"`java` (17 or newer) is needed to run Kafka: {INSTALL_HINT}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0_x" style
        major = int(found.group(2))
    if major < 17:
        found_version = major or "of unknown version"
        raise StackError(f"Kafka 4 needs Java 17+, but {java} is {found_version}: {INSTALL_HINT}")
    return java


def ensure_libs(cfg: StackConfig, log: Log) -> None:
    """Fetch the broker jars into the cache with Maven, unless a complete fetch is there."""
    if libs_ready(cfg):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"`mvn` is needed once to fetch the Kafka jars: {INSTALL_HINT}")
    if not POM.exists():
        raise StackError(f"{POM} is missing: this vote-ledger installation is incomplete; reinstall it")
    _java()  # Maven needs it too; fail with the clearer message first
    target = cfg.kafka_libs
    staging = target.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(POM),
        f"-Dmaven.repo.local={cfg.m2}",
        f"-Dkafka.version={cfg.kafka_version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    # Offline first when the private Maven repo exists: after one fetch it holds
    # everything, so a wiped libs folder is rebuilt without network.
    attempts = [cmd[:1] + ["-o"] + cmd[1:], cmd] if cfg.m2.exists() else [cmd]
    for attempt in attempts:
        where = "offline" if "-o" in attempt else "from Maven Central"
        log(f"fetching Kafka {cfg.kafka_version} jars with Maven ({where}) into {cfg.cache}")
        run = subprocess.run(attempt, capture_output=True, text=True, cwd=KAFKA_DEPLOY)
        if run.returncode == 0:
            break
    else:
        output = (run.stdout + run.stderr)[-3000:]
        raise StackError(f"Maven could not fetch Kafka {cfg.kafka_version}:\n{output}")
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if not any(name.startswith("kafka_2.13-") for name in jars):
        raise StackError(f"Maven finished but no kafka_2.13 jar landed in {staging}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker = {"version": cfg.kafka_version, "pom_sha256": _pom_digest(cfg), "jars": jars}
    (target.parent / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    log(f"cached {len(jars)} jars in {target}")


def write_properties(cfg: StackConfig) -> Path:
    """Fill deploy/local/kafka/server.properties.template into this stack's home (0600: the operator's password)."""
    template = Template(PROPERTIES_TEMPLATE.read_text())
    path = properties_file(cfg)
    operator = KAFKA_USERS["operator"]
    write_private(
        path,
        template.substitute(
            host=LOOPBACK,
            kafka_port=cfg.kafka_port,
            controller_port=cfg.kafka_controller_port,
            log_dirs=cfg.kafka_data,
            operator=operator,
            operator_password=passwords(cfg)[operator],
        ),
    )
    return path


def jvm(cfg: StackConfig, java: str, *options: str) -> list[str]:
    """The command line starting a JVM with the Kafka jars and our log4j2 configuration (class and args follow)."""
    return _jvm(cfg, java, *options)


def _jvm(cfg: StackConfig, java: str, *options: str) -> list[str]:
    return [
        java,
        *options,
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        # log4j2's own shutdown hook races Kafka's and closes the appender mid-shutdown,
        # losing the last lines; the File appender flushes every line, so skip the hook.
        "-Dlog4j2.shutdownHookEnabled=false",
        f"-Dkafka.logs.dir={cfg.logs_dir}",
        "-cp",
        f"{cfg.kafka_libs}/*",  # a JVM classpath wildcard, not a shell glob
    ]


def _format_storage(cfg: StackConfig, java: str, log: Log) -> None:
    set_aside_unauthenticated(cfg, log)
    format_storage(cfg, java, log, 1, _random_cluster_id())


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
        run = subprocess.run([*_jvm(cfg, java), f"@{args}"], capture_output=True, text=True, timeout=120)
    finally:
        args.unlink(missing_ok=True)
    if run.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{run.stdout}{run.stderr}")
    (data / AUTH_MARKER).write_text("formatted with the SCRAM logins of kafka-passwords.json\n")


def random_cluster_id() -> str:
    """A new KRaft cluster id."""
    return _random_cluster_id()


def _random_cluster_id() -> str:
    # Kafka's Uuid.toString: URL-safe base64 without padding; like Kafka, avoid a
    # leading "-" that a command line would take for an option.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not; a broker started here is reaped)."""
    return _alive(pid)


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
    return pid if _alive(pid) and _is_our_broker(pid, cfg, node) else None


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
    _java()
    if not libs_ready(cfg) and shutil.which("mvn") is None:
        raise StackError(f"`mvn` is needed once to fetch the Kafka jars: {INSTALL_HINT}")


def start(cfg: StackConfig, log: Log) -> None:
    """Launch the broker in the background unless it already runs; does not wait."""
    if running_pid(cfg) is not None:
        return
    check_ports(cfg)
    java = _java()
    ensure_libs(cfg, log)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    write_properties(cfg)
    _format_storage(cfg, java, log)
    launch(cfg, log, 1, java, "-Xms256m", "-Xmx768m")


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
    cmd = _jvm(cfg, java, *jvm_options) + ["kafka.Kafka", str(properties_file(cfg, node))]
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
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            log(f"Kafka ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
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

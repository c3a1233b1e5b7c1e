"""The Kafka jars of the local stack: fetched once with Maven into the cache, and the JVM command line using them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from services.devtools.stack.common import DEPLOY_DIR, Log, StackConfig, StackError

KAFKA_DEPLOY = DEPLOY_DIR / "kafka"
POM = KAFKA_DEPLOY / "pom.xml"
LOG4J2_CONFIG = KAFKA_DEPLOY / "log4j2.yaml"
INSTALL_HINT = "install it, e.g. `apt-get install openjdk-17-jre-headless maven`"
MARKER = "fetched.json"


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
    java()  # Maven needs it too; fail with the clearer message first
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


def jvm(cfg: StackConfig, java: str, *options: str) -> list[str]:
    """The command line starting a JVM with the Kafka jars and our log4j2 configuration (class and args follow)."""
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

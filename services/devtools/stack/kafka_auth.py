"""The local stack's Kafka logins and permissions: SCRAM passwords, the principals and their ACLs (issue 11)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from services.devtools.stack.common import Log, StackConfig, StackError, run_sync
from services.local_stack import KAFKA_USERS, LOOPBACK, cluster_bootstrap, kafka_logins, kafka_passwords_file

AUTH_MARKER = "vote-ledger-scram"  # in the storage folder: formatted with the SCRAM logins (issue 11)


def passwords(cfg: StackConfig) -> dict[str, str]:
    """The SCRAM password of each of the stack's Kafka principals (by user name); made (0600) on first use."""
    path = kafka_passwords_file(cfg.home)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    missing = [user for user in KAFKA_USERS.values() if user not in known]
    if missing:
        # Hex: nothing that Kafka's --add-scram syntax ('=', ',', ']') or a JAAS string ('"') would misread.
        known |= {user: secrets.token_hex(24) for user in missing}
        cfg.home.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(known, indent=2) + "\n")
    return known


# Kafka's default for a SCRAM credential (and twice SCRAM-SHA-512's minimum of 4096).
SCRAM_ITERATIONS = 8192


def salted_scram(user: str, password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """StorageTool's --add-scram value for the user with the salted password only (no clear password in it)."""
    # SCRAM's SaltedPassword is Hi(password, salt, i) = PBKDF2 with HMAC of the mechanism's hash (RFC 5802 2.2),
    # what Kafka's ScramFormatter.saltedPassword computes from a clear `password=` in this value.
    salt = salt if salt is not None else secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-512=[name={user},iterations={iterations},salt={b64(salt).decode()},"
        f"saltedpassword={b64(salted).decode()}]"
    )


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only: created 0600 before a byte is written (it holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def authenticated(cfg: StackConfig) -> bool:
    """Whether this home's Kafka storage was formatted with the SCRAM logins (issue 11)."""
    return (cfg.node_data(1) / AUTH_MARKER).exists()  # a replicated stack's nodes are formatted alike


def set_aside_unauthenticated(cfg: StackConfig, log: Log) -> None:
    """Move aside storage formatted before the broker required logins (no client could log in to it)."""
    # Storage formatted before the broker required logins has no SCRAM credentials, and no client could
    # log in to it. Its data is moved aside (not deleted: nothing is lost) and a new cluster formatted.
    if not (cfg.kafka_data / "meta.properties").exists() or authenticated(cfg):
        return
    aside = cfg.kafka_data.with_name(f"kafka-data.unauthenticated-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg.kafka_data.rename(aside)
    log(
        f"Kafka's storage was formatted without authentication (before SASL/SCRAM); moved it to {aside} and"
        " formatting anew: its topics start empty (a database's stored offsets of the old topics no longer apply)"
    )


def _settings_as_operator(cfg: StackConfig) -> Any:
    # The topic prefix and consumer group are the environment's (VOTE_LEDGER_TOPIC_PREFIX, ...), so a
    # rehearsal in a namespace of its own is granted its own topics.
    from pydantic import SecretStr

    from services.settings import load

    login = kafka_logins(cfg.home)["kafka_operator_login"]
    return load().model_copy(update={"kafka_bootstrap": bootstrap_of(cfg), "kafka_operator_login": SecretStr(login)})


def bootstrap_of(cfg: StackConfig) -> str:
    """The stack's Kafka bootstrap: its broker, or a replicated stack's three."""
    return cluster_bootstrap(cfg.kafka_port) if cfg.replicated else f"{LOOPBACK}:{cfg.kafka_port}"


def ensure_acls(cfg: StackConfig, log: Log) -> None:
    """Grant the stack's own principals their role's ACLs (idempotent: Kafka keeps one copy of each)."""
    if not authenticated(cfg):
        return  # an old stack still running without authentication: nothing to grant yet
    from services.adapters.kafka.acl import grant

    current = _settings_as_operator(cfg)

    async def all_roles() -> None:
        for role in ("ledger", "admin", "channel"):
            await grant(current, role, KAFKA_USERS[role])

    run_sync(all_roles())
    log(f"Kafka ACLs granted to {', '.join(KAFKA_USERS[r] for r in ('ledger', 'admin', 'channel'))}")


PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def refuse_overlap(user: str, ledger_group: str, others: list[str]) -> None:
    """StackError when the name is a prefix of the ledger's consumer group or shares a prefix with another principal.

    A principal's consumer groups are those starting with ``<user>.``; refusing any prefix relation
    between names (not only with the separator) keeps one principal's groups out of another's and
    out of the ledger's, whatever separator an older grant used (`vote` once covered `vote-ledger`).
    """
    from services.adapters.kafka.acl import overlapping

    if ledger_group.startswith(user):
        raise StackError(f"{user!r} is a prefix of the ledger's consumer group {ledger_group!r}: choose another name")
    clash = overlapping(user, others)
    if clash is not None:
        raise StackError(
            f"{user!r} and the principal {clash!r}: one name is a prefix of the other: choose another name"
        )


def add_principal(cfg: StackConfig, user: str, role: str, log: Log) -> str:
    """Create (or give a new password to) a SCRAM user on the running stack, grant its role's ACLs; return its password.

    The password is not stored: whoever runs this hands it to the principal's owner.
    """
    if PRINCIPAL_NAME.fullmatch(user) is None:
        raise StackError(f"{user!r} is not a principal name: 1 to 64 letters, digits, '.', '_' or '-'")
    if user in KAFKA_USERS.values():
        raise StackError(
            f"{user!r} is one of the stack's own principals (its password is in {kafka_passwords_file(cfg.home)})"
        )
    from services.adapters.kafka.acl import grant, principals
    from services.devtools.stack.kafka import running_pid
    from services.devtools.stack.kafka_jars import java, jvm

    if running_pid(cfg) is None:
        raise StackError("the local stack's Kafka is not running: start it with `vote-ledger stack up`")
    if not authenticated(cfg):
        raise StackError(
            "this stack's Kafka runs without authentication (formatted before SASL/SCRAM): restart it"
            " (`vote-ledger stack down && vote-ledger stack up`) to format it with logins, then add principals"
        )
    current = _settings_as_operator(cfg)
    refuse_overlap(user, current.consumer_group, sorted(run_sync(principals(current)) | set(KAFKA_USERS.values())))

    password = secrets.token_hex(24)
    operator = KAFKA_USERS["operator"]
    client = cfg.home / "kafka-operator-client.properties"
    write_private(
        client,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required"
        f' username="{operator}" password="{passwords(cfg)[operator]}";\n',
    )
    scram = cfg.home / f"kafka-new-principal-{os.getpid()}.properties"
    # In a 0600 file rather than on the command line, where any local user could read it in /proc.
    write_private(scram, f"SCRAM-SHA-512=iterations=8192,password={password}\n")
    try:
        cmd = jvm(cfg, java(), "-Xmx256m") + [
            "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap_of(cfg),
            "--command-config", str(client), "--alter", "--add-config-file", str(scram),
            "--entity-type", "users", "--entity-name", user,
        ]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        scram.unlink(missing_ok=True)
    if run.returncode != 0:
        raise StackError(f"creating the SCRAM user {user} failed:\n{(run.stdout + run.stderr)[-2000:]}")
    acls = run_sync(grant(current, role, user))
    log(f"User:{user} ({role}) may: {'; '.join(map(str, acls))}")
    return password


def logins(cfg: StackConfig) -> dict[str, str]:
    """The Kafka login of each role this stack serves (by Endpoints field); none while it runs unauthenticated."""
    return kafka_logins(cfg.home) if authenticated(cfg) else {}

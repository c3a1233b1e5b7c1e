"""Whether a local stack (`vote-ledger stack up`) runs from a home, and the endpoints it serves there.

settings() asks it when no endpoint variable is set, so it sits outside the developer tooling: it
only reads the stack's password file and knocks on its ports, and starts nothing. The tooling that
does start the stack (services/devtools/stack) names its logins and addresses from here too.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.settings import Settings

LOOPBACK = "127.0.0.1"
DATABASE = "vote_ledger"
SUPERUSER = "postgres"
LOGIN_PREFIX = "vl_"  # the stack's logins: vl_owner, vl_ledger, vl_projector, vl_reader
PASSWORDS_FILE = "pg-passwords.json"
KAFKA_PASSWORDS_FILE = "kafka-passwords.json"  # the Kafka principals' SCRAM passwords (JSON, mode 0600)
# The stack's Kafka principal of each role (services.settings.KAFKA_ROLES): its SCRAM user name. The
# operator is the super user (and the broker's own identity); the channel is the demo's channel.
KAFKA_USERS = {"operator": "operator", "ledger": "ledger", "admin": "admin", "channel": "channel-demo"}
PORTS_FILE = "ports.json"  # the ports `stack up` started this home's stack on
PORT_FIELDS = ("kafka_port", "kafka_controller_port", "pg_port")


@dataclass(frozen=True)
class Endpoints:
    """Where clients connect: Kafka, the owner's DSN, each service's own DSN and the superuser's.

    The service DSNs are None where only one DSN is known (a bare test container, or only
    VOTE_LEDGER_PG_DSN set): services.adapters.postgres.logins.service_logins then makes the logins.
    """

    kafka_bootstrap: str
    pg_dsn: str
    pg_ledger_dsn: str | None = None
    pg_projector_dsn: str | None = None
    pg_reader_dsn: str | None = None
    # The cluster's superuser: only tests (scratch databases, simulated attackers) and admins use it.
    pg_admin_dsn: str | None = None
    # Kafka logins ("user:password") of each role; None: a broker without authentication (PLAINTEXT).
    kafka_operator_login: str | None = None
    kafka_ledger_login: str | None = None
    kafka_admin_login: str | None = None
    kafka_channel_login: str | None = None
    # A replicated stack's topic durability (three brokers: RF 3, min ISR 2); None: the settings' default.
    topic_replication: int | None = None
    topic_min_insync: int | None = None

    def exports(self) -> dict[str, str]:
        """The environment variables that point a process at these endpoints (unknown ones left out)."""
        found = {
            "VOTE_LEDGER_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "VOTE_LEDGER_PG_DSN": self.pg_dsn,
            "VOTE_LEDGER_PG_LEDGER_DSN": self.pg_ledger_dsn,
            "VOTE_LEDGER_PG_PROJECTOR_DSN": self.pg_projector_dsn,
            "VOTE_LEDGER_PG_READER_DSN": self.pg_reader_dsn,
            "VOTE_LEDGER_PG_ADMIN_DSN": self.pg_admin_dsn,
            "VOTE_LEDGER_KAFKA_OPERATOR_LOGIN": self.kafka_operator_login,
            "VOTE_LEDGER_KAFKA_LEDGER_LOGIN": self.kafka_ledger_login,
            "VOTE_LEDGER_KAFKA_ADMIN_LOGIN": self.kafka_admin_login,
            "VOTE_LEDGER_KAFKA_CHANNEL_LOGIN": self.kafka_channel_login,
            "VOTE_LEDGER_TOPIC_REPLICATION": str(self.topic_replication) if self.topic_replication else None,
            "VOTE_LEDGER_TOPIC_MIN_INSYNC": str(self.topic_min_insync) if self.topic_min_insync else None,
        }
        return {name: value for name, value in found.items() if value}

    @classmethod
    def from_env(cls) -> Endpoints | None:
        """The endpoints named by VOTE_LEDGER_* variables, or None unless Kafka and VOTE_LEDGER_PG_DSN are set."""
        from services.settings import LOGIN_FIELDS, load

        current = load()  # the variables as set: no stand-in local stack here, resolve_endpoints starts one
        if not (current.kafka_bootstrap and current.pg_dsn):
            return None
        logins = {field: login.get_secret_value() for field in LOGIN_FIELDS if (login := getattr(current, field))}
        return cls(
            current.kafka_bootstrap,
            current.pg_dsn,
            current.pg_ledger_dsn,
            current.pg_projector_dsn,
            current.pg_reader_dsn,
            current.pg_admin_dsn,
            **logins,
        )


def passwords_file(home: Path) -> Path:
    """The stack's file of the superuser's and the logins' passwords (JSON, mode 0600), in its home."""
    return home / PASSWORDS_FILE


def kafka_passwords_file(home: Path) -> Path:
    """The stack's file of its Kafka principals' SCRAM passwords (JSON by user name, mode 0600), in its home.

    Absent for a stack whose Kafka was formatted before it required authentication (issue 11).
    """
    return home / KAFKA_PASSWORDS_FILE


def kafka_logins(home: Path) -> dict[str, str]:
    """The stack's Kafka login ("user:password") of each role, by Endpoints field; empty without authentication."""
    try:
        known = json.loads(kafka_passwords_file(home).read_text())
    except (OSError, ValueError):
        return {}
    return {f"kafka_{role}_login": f"{user}:{known[user]}" for role, user in KAFKA_USERS.items() if user in known}


def password_names() -> list[str]:
    """The names the password file holds a password for: the superuser, then each login."""
    from services.adapters.postgres.logins import KINDS

    return [SUPERUSER, *(f"{LOGIN_PREFIX}{kind}" for kind in KINDS)]


def served_endpoints(
    kafka_port: int,
    pg_port: int,
    known: dict[str, str],
    kafka: dict[str, str] | None = None,
    replicated: bool = False,
) -> Endpoints:
    """The endpoints a stack on these loopback ports serves, every DSN with its login and password (and
    the Kafka logins of each role, as kafka_logins gives them); a replicated one's three brokers, RF 3, min ISR 2."""
    from services.adapters.postgres.logins import KINDS, Login, login_dsn

    server = f"postgresql://{LOOPBACK}:{pg_port}/{DATABASE}"
    dsn = {kind: login_dsn(server, Login(f"{LOGIN_PREFIX}{kind}", known[f"{LOGIN_PREFIX}{kind}"])) for kind in KINDS}
    return Endpoints(
        kafka_bootstrap=cluster_bootstrap(kafka_port) if replicated else f"{LOOPBACK}:{kafka_port}",
        pg_dsn=dsn["owner"],
        pg_ledger_dsn=dsn["ledger"],
        pg_projector_dsn=dsn["projector"],
        pg_reader_dsn=dsn["reader"],
        pg_admin_dsn=login_dsn(server, Login(SUPERUSER, known[SUPERUSER])),
        **(kafka or {}),
        topic_replication=3 if replicated else None,
        topic_min_insync=2 if replicated else None,
    )


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def record_ports(home: Path, ports: dict[str, int], replicated: bool = False) -> None:
    """Write down the ports (by Settings field) a stack starting from this home listens on, and its mode."""
    home.mkdir(parents=True, exist_ok=True)
    (home / PORTS_FILE).write_text(json.dumps({**ports, "replicated": replicated}, indent=2) + "\n")


def recorded_replicated(home: Path) -> bool | None:
    """Whether the stack of this home was started with --replicated (None: no record of a stack)."""
    try:
        found = json.loads((home / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found.get("replicated") is True


def cluster_bootstrap(kafka_port: int) -> str:
    """The bootstrap list of a replicated stack's three brokers (node i on kafka_port + 10*(i-1))."""
    return ",".join(f"{LOOPBACK}:{kafka_port + 10 * step}" for step in range(3))


def with_recorded_ports(current: Settings) -> Settings:
    """The settings with the ports the stack in their home was started on, for each port not set explicitly.

    Without it, `stack status` or `stack down` for another home looked at the default ports, and the
    local-stack fallback paired that home's passwords with them. A port set explicitly that is not the
    recorded one, while that stack answers: UserError. Once it is down, the new port wins (a new `stack up`).
    """
    path = current.home / PORTS_FILE
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return current  # no record: a stack from before ports were recorded, or none
    recorded = {field: found[field] for field in PORT_FIELDS if type(found.get(field)) is int}
    given = {field: getattr(current, field) for field in recorded if field in current.model_fields_set}
    clashes = {field: port for field, port in given.items() if port != recorded[field]}
    if clashes and any(port_open(recorded[field]) for field in ("kafka_port", "pg_port") if field in recorded):
        from services.errors import UserError
        from services.settings import variable

        said = ", ".join(f"{variable(field)}={port} (recorded: {recorded[field]})" for field, port in clashes.items())
        raise UserError(
            f"{said}: the stack running from {current.home} was started on the ports in {path}; unset the"
            " variable (or flag) to use it, or stop it first (`vote-ledger stack down` without it)"
        )
    return current.model_copy(update={field: port for field, port in recorded.items() if field not in given})


def running_endpoints(current: Settings) -> Endpoints | None:
    """The endpoints of a local stack running from the settings' home (its password file is there and
    both its ports answer), else None: what `eval "$(vote-ledger stack up)"` would export, without starting it."""
    current = with_recorded_ports(current)
    path = passwords_file(current.home)
    if not path.exists() or not (port_open(current.kafka_port) and port_open(current.pg_port)):
        return None
    known = json.loads(path.read_text())
    if not all(name in known for name in password_names()):
        return None  # not a stack this version started (`stack up` completes the file): nothing to stand in
    replicated = bool(recorded_replicated(current.home))
    return served_endpoints(current.kafka_port, current.pg_port, known, kafka_logins(current.home), replicated)

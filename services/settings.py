"""Runtime settings: every VOTE_LEDGER_* variable, read from the environment once, in one place, and checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.errors import UserError
from services.local_stack import running_endpoints  # outside devtools: no stack tooling on this path

# Topic names are part of the wire contract (docs/wire-contract.md); keep them here only.
SUBMISSIONS_TOPIC = "votes.submissions"
ADMIN_TOPIC = "meetings.admin"
PARKED_TOPIC = "ledger.parked"
HEADS_TOPIC = "ledger.heads"  # chain heads the ledger publishes (services/runtime/chain_heads.py)
DECISIONS_TOPIC = "votes.decisions"
TOPICS = (SUBMISSIONS_TOPIC, ADMIN_TOPIC, PARKED_TOPIC, HEADS_TOPIC, DECISIONS_TOPIC)

# The forms a value may take; a malformed one is refused with its variable's name and this form.
# Counts stay within a signed 32-bit integer: Kafka's protocol carries them as int32, and a larger
# value failed deep inside aiokafka ("argument out of range") instead of here.
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(ge=1, le=INT32_MAX)]
Port = Annotated[int, Field(ge=1, le=65535)]
# Finite and at most a day: an interval of inf or 1e99 seconds is a typo, not a policy.
DAY_S = 86400
Seconds = Annotated[float, Field(gt=0, le=DAY_S, allow_inf_nan=False)]
# A broker refuses a session timeout outside its group.min/max.session.timeout.ms (defaults 6 s and 30 min).
SessionTimeoutMs = Annotated[int, Field(ge=6000, le=1_800_000)]
# More partitions than this is no longer "one topic of votes" but a cluster-sizing mistake.
Partitions = Annotated[int, Field(ge=1, le=10000)]
# Kafka's replication factor is a 16-bit count of brokers; no cluster of ours comes near it.
Replication = Annotated[int, Field(ge=1, le=32767)]
# One batch is one transaction held in memory: a million rows is far past where batching pays.
BatchMax = Annotated[int, Field(ge=1, le=1_000_000)]
# Bytes a Kafka fetch may return: at least 1 KiB (the broker still returns a first record batch larger than the
# limit, so nothing gets stuck), at most Kafka's int32.
FetchBytes = Annotated[int, Field(ge=1024, le=INT32_MAX)]

# Kafka's rule for a topic name (and a static member's group.instance.id): these characters, at most 249.
KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]*")
KAFKA_NAME_MAX = 249
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"  # a name, an IPv4 address or a bracketed IPv6 address
_HOST_PORT = re.compile(rf"(?P<host>{_HOST}):(?P<port>[0-9]{{1,5}})")
_PG_HOST = re.compile(rf"(?:{_HOST}|[A-Za-z0-9._%-]+)(?::(?P<port>[0-9]{{1,5}}))?")  # %2F...: a socket folder


# The Kafka logins by role (services/adapters/kafka/topics.py client_options picks one per client).
KAFKA_ROLES = ("operator", "ledger", "admin", "channel")
LOGIN_FIELDS = tuple(f"kafka_{role}_login" for role in KAFKA_ROLES)


def _var(name: str, default: Any = None) -> Any:
    # Each field reads exactly the variable named here (no prefix magic), so grep finds every one.
    return Field(default, validation_alias=name)


class Settings(BaseSettings):
    """Where the services are and how the processes behave: every VOTE_LEDGER_* variable (README "Configuration")."""

    # Empty counts as unset, as it always did; keyword arguments (tests, benchmarks) name the fields.
    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
        extra="ignore",
    )

    kafka_bootstrap: str | None = _var("VOTE_LEDGER_KAFKA_BOOTSTRAP")
    # The owner's login, for `db migrate` (and the scratch databases of tests and the benchmark).
    pg_dsn: str | None = _var("VOTE_LEDGER_PG_DSN")
    # Each service's own login (services/adapters/postgres/connect.py role_dsn): never a superuser.
    pg_ledger_dsn: str | None = _var("VOTE_LEDGER_PG_LEDGER_DSN")
    pg_projector_dsn: str | None = _var("VOTE_LEDGER_PG_PROJECTOR_DSN")
    pg_reader_dsn: str | None = _var("VOTE_LEDGER_PG_READER_DSN")
    # The superuser: `db harden`, the tests' scratch databases and administration; no service reads it.
    pg_admin_dsn: str | None = _var("VOTE_LEDGER_PG_ADMIN_DSN")
    home: Path = _var("VOTE_LEDGER_HOME", Path(".vote-ledger"))
    cache: Path = _var("VOTE_LEDGER_CACHE", Path(".cache"))
    consumer_group: str = _var("VOTE_LEDGER_CONSUMER_GROUP", "vote-ledger")
    submission_partitions: Partitions = _var("VOTE_LEDGER_PARTITIONS", 4)
    # Replication of the topics the ledger creates (issue 14): 1 on a one-broker stack; 3 with
    # min.insync.replicas 2 on a cluster (`stack up --replicated`), so an acknowledged record (every
    # producer of ours sends acks=all) is on two brokers before anyone is told it was received, and
    # one broker may be lost without losing a record or refusing a write.
    topic_replication: Replication = _var("VOTE_LEDGER_TOPIC_REPLICATION", 1)
    topic_min_insync: Replication = _var("VOTE_LEDGER_TOPIC_MIN_INSYNC", 1)
    # A cap, not a wait: a batch holds what Kafka has ready (batch_timeout_ms), up to this many.
    batch_max: BatchMax = _var("VOTE_LEDGER_BATCH_MAX", 20000)
    # What the ledger's Kafka consumer may fetch ahead of the batch in hand, in all and per partition (issue 15):
    # these bound the ledger's memory whatever the backlog (services/runtime/ledger_app.py says why and what).
    fetch_max_bytes: FetchBytes = _var("VOTE_LEDGER_FETCH_MAX_BYTES", 16 << 20)
    partition_fetch_bytes: FetchBytes = _var("VOTE_LEDGER_PARTITION_FETCH_BYTES", 1 << 20)
    # Static group membership (KIP-345): a ledger restarted under the same id takes its partitions
    # back at once instead of waiting for its dead predecessor's session to expire (measured after
    # kill -9: 9.1 s without, see README). One distinct id per ledger process, stable across restarts
    # (e.g. the host or pod name); empty for dynamic membership.
    instance_id: str = _var("VOTE_LEDGER_INSTANCE_ID", "")
    # How long a ledger that vanished without a restart keeps its partitions (broker minimum: 6 s).
    session_timeout_ms: SessionTimeoutMs = _var("VOTE_LEDGER_SESSION_TIMEOUT_MS", 6000)
    # The stall watch (services/runtime/stall_watch.py): how often it looks, and how long a partition's
    # committed offset may stand still with records waiting before it is reported and probed.
    stall_check_s: Seconds = _var("VOTE_LEDGER_STALL_CHECK_S", 2.0)
    stall_after_s: Seconds = _var("VOTE_LEDGER_STALL_AFTER_S", 10.0)
    # Namespaces the topics (e.g. one per test or per rehearsal); empty in production, where the
    # wire contract's names apply unchanged.
    topic_prefix: str = _var("VOTE_LEDGER_TOPIC_PREFIX", "")
    # The ledger publishes the chain heads that moved when this many rows were appended since it
    # last did, or this many seconds passed: the window in which an edit re-hashed to the end
    # could still go unnoticed by `audit verify`.
    heads_every_rows: Count = _var("VOTE_LEDGER_HEADS_EVERY_ROWS", 10000)
    heads_every_seconds: Seconds = _var("VOTE_LEDGER_HEADS_EVERY_SECONDS", 10.0)
    # The local stack (services/devtools/stack): its loopback ports and, when PostgreSQL's binaries are
    # not on the PATH or in the usual places, the folder that holds them.
    kafka_port: Port = _var("VOTE_LEDGER_KAFKA_PORT", 19092)
    kafka_controller_port: Port = _var("VOTE_LEDGER_KAFKA_CONTROLLER_PORT", 19093)
    pg_port: Port = _var("VOTE_LEDGER_PG_PORT", 15432)
    pg_bindir: Path | None = _var("VOTE_LEDGER_PG_BINDIR")
    # Kafka logins, one per role ("user:password", SASL/SCRAM; issue 11): the broker decides what each
    # principal may read and write. None set: PLAINTEXT, for a broker without authentication.
    kafka_operator_login: SecretStr | None = _var("VOTE_LEDGER_KAFKA_OPERATOR_LOGIN")  # topics, status, tooling
    kafka_ledger_login: SecretStr | None = _var("VOTE_LEDGER_KAFKA_LEDGER_LOGIN")  # the ledger process
    kafka_admin_login: SecretStr | None = _var("VOTE_LEDGER_KAFKA_ADMIN_LOGIN")  # meeting administration
    kafka_channel_login: SecretStr | None = _var("VOTE_LEDGER_KAFKA_CHANNEL_LOGIN")  # a channel: votes
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = _var(
        "VOTE_LEDGER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"
    )
    # The HTTP read API and dashboard (services/api): where it listens, and its pool of reader connections.
    api_host: str = _var("VOTE_LEDGER_API_HOST", "127.0.0.1")
    api_port: Port = _var("VOTE_LEDGER_API_PORT", 8470)
    api_pool_max: Annotated[int, Field(ge=1, le=1000)] = _var("VOTE_LEDGER_API_POOL_MAX", 10)
    # /healthz, /readyz and /metrics of the ledger and the projector, each on its own port (the API serves
    # its own on api_port), so `services run all` in one process still gives Prometheus three targets.
    metrics_host: str = _var("VOTE_LEDGER_METRICS_HOST", "127.0.0.1")
    ledger_metrics_port: Port = _var("VOTE_LEDGER_LEDGER_METRICS_PORT", 8471)
    projector_metrics_port: Port = _var("VOTE_LEDGER_PROJECTOR_METRICS_PORT", 8472)
    # /readyz says "not ready" when the service is further behind than this (ingest or projection lag).
    ready_max_lag_s: Seconds = _var("VOTE_LEDGER_READY_MAX_LAG_S", 30.0)
    # Logs: readable lines for a terminal, or one JSON object per line for a log collector.
    log_format: Literal["text", "json"] = _var("VOTE_LEDGER_LOG_FORMAT", "text")

    @field_validator("home", "cache")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Relative to the directory the process started in, fixed once (as `stack up` prints them).
        return Path(value).expanduser().resolve()

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        # aiokafka parses this only when it connects, and a bad one raised ValueError/OverflowError there.
        for entry in value.split(",") if value else ():
            match = _HOST_PORT.fullmatch(entry.strip())
            if match is None:
                raise ValueError(f"{entry.strip()!r} is not host:port" if entry.strip() else "an empty entry")
            if not 1 <= int(match["port"]) <= 65535:
                raise ValueError(f"port {match['port']} is not from 1 to 65535")
        return value

    @field_validator("pg_dsn", "pg_ledger_dsn", "pg_projector_dsn", "pg_reader_dsn", "pg_admin_dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        if value is not None:
            _check_dsn(value)
        return value

    @field_validator(*LOGIN_FIELDS)
    @classmethod
    def _login(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, colon, password = value.get_secret_value().partition(":")
            if not (user and colon and password):
                raise ValueError("no user, ':' or password")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        # Checked here: the broker refused such topics only after the clients had retried for ~40 s.
        longest = max(len(topic) for topic in TOPICS)
        if KAFKA_NAME.fullmatch(value) is None:
            raise ValueError("a character other than a letter, digit, '.', '_' or '-'")
        if len(value) + longest > KAFKA_NAME_MAX:
            raise ValueError(f"{len(value)} characters")
        return value

    @field_validator("consumer_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not value.isprintable() or len(value) > KAFKA_NAME_MAX or not value.strip():
            raise ValueError("empty, unprintable or too long")
        return value

    @field_validator("instance_id")
    @classmethod
    def _instance(cls, value: str) -> str:
        # The broker checks group.instance.id as a topic name (JoinGroupRequest.validateGroupInstanceId).
        if KAFKA_NAME.fullmatch(value) is None or len(value) > KAFKA_NAME_MAX:
            raise ValueError("not a Kafka name")
        return value

    @model_validator(mode="after")
    def _insync_within_replication(self) -> Settings:
        # Kafka accepts min.insync.replicas above the replication factor, then refuses every acks=all write
        # (NotEnoughReplicas): a misconfiguration that would look like an outage, so it is refused here.
        if self.topic_min_insync > self.topic_replication:
            raise ValueError(
                f"VOTE_LEDGER_TOPIC_MIN_INSYNC={self.topic_min_insync} exceeds"
                f" VOTE_LEDGER_TOPIC_REPLICATION={self.topic_replication}: no write could ever be acknowledged"
            )
        return self

    @property
    def submissions_topic(self) -> str:
        """Topic of vote submissions (wire contract: votes.submissions)."""
        return self.topic_prefix + SUBMISSIONS_TOPIC

    @property
    def admin_topic(self) -> str:
        """Topic of meeting administration (wire contract: meetings.admin)."""
        return self.topic_prefix + ADMIN_TOPIC

    @property
    def parked_topic(self) -> str:
        """Dead-letter topic of undecodable messages."""
        return self.topic_prefix + PARKED_TOPIC

    @property
    def heads_topic(self) -> str:
        """Topic of published chain heads (wire contract: ledger.heads)."""
        return self.topic_prefix + HEADS_TOPIC

    @property
    def decisions_topic(self) -> str:
        """Topic of the answers to channels, one per logged or parked submission (wire contract: votes.decisions)."""
        return self.topic_prefix + DECISIONS_TOPIC


def variable(field: str) -> str:
    """The environment variable that sets a field of Settings."""
    return str(Settings.model_fields[field].validation_alias)


def expected_form(field: str) -> str:
    """What a field's variable must hold, in words (for error messages and the README)."""
    info = Settings.model_fields[field]
    bounds = {key: getattr(m, key) for m in info.metadata for key in ("ge", "gt", "le") if hasattr(m, key)}
    if field in TEXT_FORMS:
        return TEXT_FORMS[field]
    if info.annotation is int:
        text = "a whole number"
    elif info.annotation is float:
        text = "a number of seconds"
    else:
        return "text"
    if "ge" in bounds and "le" in bounds:
        return f"{text} from {bounds['ge']} to {bounds['le']}"
    if "gt" in bounds and "le" in bounds:
        return f"{text} above {bounds['gt']:g} and at most {bounds['le']:g}"
    if "ge" in bounds:
        return f"{text} of at least {bounds['ge']}"
    if "gt" in bounds:
        return f"{text} above {bounds['gt']:g}"
    return text


_DSN_FORM = "postgresql://user:password@host:port/database (escape '@', ':' and '/' in the password as %40, %3A, %2F)"
_LOGIN_FORM = "user:password (a Kafka SCRAM login: the user name, ':', then the password)"
_PREFIX_MAX = KAFKA_NAME_MAX - max(len(topic) for topic in TOPICS)
# The forms of the text variables that have one.
TEXT_FORMS = {
    "kafka_bootstrap": "host:port[,host:port...] with each port from 1 to 65535",
    **dict.fromkeys(("pg_dsn", "pg_ledger_dsn", "pg_projector_dsn", "pg_reader_dsn", "pg_admin_dsn"), _DSN_FORM),
    "topic_prefix": f"letters, digits, '.', '_' and '-', at most {_PREFIX_MAX} characters"
    f" (a Kafka topic name is at most {KAFKA_NAME_MAX}, and the longest topic adds {KAFKA_NAME_MAX - _PREFIX_MAX})",
    "consumer_group": f"printable text, not blank, at most {KAFKA_NAME_MAX} characters",
    "instance_id": f"letters, digits, '.', '_' and '-', at most {KAFKA_NAME_MAX} characters (or empty)",
    **dict.fromkeys(LOGIN_FIELDS, _LOGIN_FORM),
    "kafka_sasl_mechanism": "SCRAM-SHA-512 or SCRAM-SHA-256",
    "api_host": "a host name or IP address to listen on",
    "metrics_host": "a host name or IP address to listen on",
    "log_format": "text or json",
}
SECRET_FIELDS = frozenset(name for name, form in TEXT_FORMS.items() if form in (_DSN_FORM, _LOGIN_FORM))


def _check_dsn(dsn: str) -> None:
    # What asyncpg would misread: it took "postgresql://::::@@//" for localhost:5432 and failed there.
    # The reasons never quote the DSN: it holds a password.
    try:
        parts = urlsplit(dsn)  # not parts.port: asyncpg takes several hosts, h1:5432,h2:5433
        if parts.query:
            parse_qs(parts.query, strict_parsing=True)
    except ValueError:
        raise ValueError("it does not parse as a URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("the scheme is not postgresql://")
    auth, _, hosts = parts.netloc.rpartition("@")
    if "@" in auth:
        raise ValueError("more than one '@'")
    for host in hosts.split(",") if hosts else ():
        match = _PG_HOST.fullmatch(host)
        if match is None:
            raise ValueError("a host is not host[:port]")
        if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
            raise ValueError("a port is not from 1 to 65535")
    if "/" in parts.path[1:]:
        raise ValueError("the database name holds '/'")


def load(**overrides: Any) -> Settings:
    """The settings from the environment, with the given fields overridden; a malformed value is the user's error.

    The error is one line naming the variable (or the flag of an override), the value and the form it must take.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a check across fields (_insync_within_replication): its message names them
                problems.append(str(error.get("ctx", {}).get("error") or error["msg"]))
                continue
            name = str(error["loc"][0])
            field = name if name in Settings.model_fields else _field_of(name)
            shown = f"--{name.replace('_', '-')}" if name in overrides else variable(field) if field else name
            reason = f" ({error['ctx']['error']})" if error["type"] == "value_error" else ""
            form = expected_form(field or name)
            if field in SECRET_FIELDS:  # never echo a DSN: it holds a password
                problems.append(f"{shown} is malformed{reason}: expected {form}")
            else:
                problems.append(f"{shown}={error['input']!r} is not valid{reason}: expected {form}")
        raise UserError("; ".join(problems)) from None


def _field_of(alias: str) -> str | None:
    return next((name for name in Settings.model_fields if variable(name) == alias), None)


# The variables that say where the services are; when none is set, a running local stack is used.
ENDPOINT_FIELDS = ("kafka_bootstrap", "pg_dsn", "pg_ledger_dsn", "pg_projector_dsn", "pg_reader_dsn", "pg_admin_dsn")
_local: dict[Path, Settings] = {}


def settings() -> Settings:
    """Return the settings for this process, from the current environment (a malformed value: UserError).

    With no endpoint variable set, a local stack running from VOTE_LEDGER_HOME stands in for
    `eval "$(vote-ledger stack up)"` (said once on stderr); otherwise nothing is guessed.
    """
    current = load()
    if any(getattr(current, field) for field in ENDPOINT_FIELDS):
        return current
    if current.home not in _local:
        _local[current.home] = _on_local_stack(current)
    return _local[current.home]


def _on_local_stack(current: Settings) -> Settings:
    found = running_endpoints(current)
    if found is None:
        return current
    import sys

    print(
        f"vote-ledger: VOTE_LEDGER_KAFKA_BOOTSTRAP and VOTE_LEDGER_PG_DSN are not set; using the local stack"
        f" running from {current.home} (Kafka {found.kafka_bootstrap}, PostgreSQL {urlsplit(found.pg_dsn).port})",
        file=sys.stderr,
    )
    update: dict[str, Any] = {field: getattr(found, field) for field in ENDPOINT_FIELDS}
    # The stack's Kafka logins, where the environment names none (say, another channel's login of one's own).
    update |= {
        field: SecretStr(login)
        for field in LOGIN_FIELDS
        if getattr(current, field) is None and (login := getattr(found, field)) is not None
    }
    return current.model_copy(update=update)


def kafka_login_env(current: Settings) -> dict[str, str]:
    """The environment variables that hand these settings' Kafka logins to a subprocess (set ones only)."""
    found = {variable(field): getattr(current, field) for field in LOGIN_FIELDS}
    env = {name: login.get_secret_value() for name, login in found.items() if login is not None}
    if env:
        env[variable("kafka_sasl_mechanism")] = current.kafka_sasl_mechanism
    return env

"""Runtime settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Topic names are part of the wire contract (docs/wire-contract.md); keep them here only.
SUBMISSIONS_TOPIC = "votes.submissions"
ADMIN_TOPIC = "meetings.admin"
PARKED_TOPIC = "ledger.parked"
HEADS_TOPIC = "ledger.heads"  # chain heads the ledger publishes (services/runtime/chain_heads.py)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Where the services are and how the processes behave."""

    kafka_bootstrap: str | None = field(default_factory=lambda: _env("VOTE_LEDGER_KAFKA_BOOTSTRAP"))
    # The owner's login, for `db migrate` (and the scratch databases of tests and the benchmark).
    pg_dsn: str | None = field(default_factory=lambda: _env("VOTE_LEDGER_PG_DSN"))
    # Each service's own login (services/adapters/postgres/connect.py role_dsn): never a superuser.
    pg_ledger_dsn: str | None = field(default_factory=lambda: _env("VOTE_LEDGER_PG_LEDGER_DSN"))
    pg_projector_dsn: str | None = field(default_factory=lambda: _env("VOTE_LEDGER_PG_PROJECTOR_DSN"))
    pg_reader_dsn: str | None = field(default_factory=lambda: _env("VOTE_LEDGER_PG_READER_DSN"))
    home: Path = field(default_factory=lambda: Path(_env("VOTE_LEDGER_HOME", ".vote-ledger")).resolve())
    cache: Path = field(default_factory=lambda: Path(_env("VOTE_LEDGER_CACHE", ".cache")).resolve())
    consumer_group: str = field(default_factory=lambda: _env("VOTE_LEDGER_CONSUMER_GROUP", "vote-ledger"))
    submission_partitions: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_PARTITIONS", "4")))
    # A cap, not a wait: a batch holds what Kafka has ready (batch_timeout_ms), up to this many.
    batch_max: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_BATCH_MAX", "20000")))
    # Static group membership (KIP-345): a ledger restarted under the same id takes its partitions
    # back at once instead of waiting for its dead predecessor's session to expire (measured after
    # kill -9: 9.1 s without, see README). One distinct id per ledger process, stable across restarts
    # (e.g. the host or pod name); empty for dynamic membership.
    instance_id: str = field(default_factory=lambda: _env("VOTE_LEDGER_INSTANCE_ID", ""))
    # How long a ledger that vanished without a restart keeps its partitions (broker minimum: 6 s).
    session_timeout_ms: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_SESSION_TIMEOUT_MS", "6000")))
    # The stall watch (services/runtime/stall_watch.py): how often it looks, and how long a partition's
    # committed offset may stand still with records waiting before it is reported and probed.
    stall_check_s: float = field(default_factory=lambda: float(_env("VOTE_LEDGER_STALL_CHECK_S", "2")))
    stall_after_s: float = field(default_factory=lambda: float(_env("VOTE_LEDGER_STALL_AFTER_S", "10")))
    # Namespaces the topics (e.g. one per test or per rehearsal); empty in production, where the
    # wire contract's names apply unchanged.
    topic_prefix: str = field(default_factory=lambda: _env("VOTE_LEDGER_TOPIC_PREFIX", ""))
    # The ledger publishes the chain heads that moved when this many rows were appended since it
    # last did, or this many seconds passed: the window in which an edit re-hashed to the end
    # could still go unnoticed by `audit verify`.
    heads_every_rows: int = field(default_factory=lambda: int(_env("VOTE_LEDGER_HEADS_EVERY_ROWS", "10000")))
    heads_every_seconds: float = field(default_factory=lambda: float(_env("VOTE_LEDGER_HEADS_EVERY_SECONDS", "10")))

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


def settings() -> Settings:
    """Return the settings for this process, from the current environment."""
    return Settings()

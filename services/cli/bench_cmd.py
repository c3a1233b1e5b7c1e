"""`vote-ledger bench`: reproducible measurements (replay of the pure fold for now)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import asyncio

from services.bench_ingest import ingest_benchmark
from services.bench_replay import replay_benchmark
from services.cli.common import kafka_bootstrap, pg_dsn
from services.config import settings

run_coroutine = asyncio.run


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` command."""
    bench = sub.add_parser("bench", help="benchmarks", description="Measure vote-ledger on generated workloads.")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="WORKLOAD")
    r = bench_sub.add_parser(
        "replay", help="replay a generated meeting log through the pure fold",
        description="Generate N submissions of a meeting, keep the accepted ones, and time the pure fold: "
                    "on events in memory, and decoding log payloads in the projector's batches. No services needed.")
    r.add_argument("--meeting-file", type=Path, default=Path("deploy/meetings/cbak-2023-agm.toml"))
    r.add_argument("--events", type=int, default=1_000_000, help="submissions to generate (default 1,000,000)")
    r.add_argument("--seed", type=int, default=3)
    r.set_defaults(func=_replay)
    i = bench_sub.add_parser(
        "ingest", help="time the ledger from Kafka to committed log rows",
        description="Publish N submissions to scratch topics, then time one ledger process until every one is "
                    "committed to a scratch database (both removed afterwards). Needs Kafka and PostgreSQL "
                    "(VOTE_LEDGER_KAFKA_BOOTSTRAP, VOTE_LEDGER_PG_DSN).")
    i.add_argument("--meeting-file", type=Path, default=Path("deploy/meetings/cbak-2023-agm.toml"))
    i.add_argument("--events", type=int, default=100_000, help="submissions (default 100,000)")
    i.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    cfg = settings()
    pg_dsn(cfg)
    kafka_bootstrap(cfg)
    print(json.dumps(run_coroutine(ingest_benchmark(cfg, args.meeting_file, args.events)), indent=2))
    return 0


def _replay(args: argparse.Namespace) -> int:
    print(json.dumps(replay_benchmark(args.meeting_file, args.events, args.seed), indent=2))
    return 0

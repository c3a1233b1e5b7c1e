"""`vote-ledger bench`: reproducible measurements (replay of the pure fold for now)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.bench_replay import replay_benchmark


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


def _replay(args: argparse.Namespace) -> int:
    print(json.dumps(replay_benchmark(args.meeting_file, args.events, args.seed), indent=2))
    return 0

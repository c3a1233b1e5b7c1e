"""`vote-ledger simulate`: publish realistic simulated vote traffic for a meeting at a target rate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from services.cli import UserError
from services.cli.common import positive_number
from services.cli.meeting_cmd import kafka_settings, resolve_meeting_file, run_kafka

if TYPE_CHECKING:
    from services.devtools.demo.loader import Progress
    from services.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `simulate`."""
    parser = subparsers.add_parser(
        "simulate",
        help="publish simulated submissions for a loaded meeting at a target rate",
        description="Publish round(RATE x DURATION) submissions of the meeting's simulated proxy "
        "campaign to votes.submissions, in arrival order, at RATE per second: internet, "
        "phone and mail votes, broker instructions and discretionary votes, re-votes, "
        "revocations, a proxy substitution, ballots at the meeting and a few invalid "
        "submissions. Beyond the campaign's natural size, the extra traffic is later-dated "
        "re-votes. Each submission is signed by its simulated channel with the public demo key "
        "`meeting load --simulated-channels` registered (each channel's share of every 512 submissions as one "
        "batch) and published as the channel role. Load the meeting first: vote-ledger meeting load FILE "
        "--simulated-channels (checked in the log as the reader role when one is configured).",
        epilog="example: vote-ledger simulate --meeting cbak-2023-agm --rate 2000 --duration 30",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--meeting", metavar="ID", help="meeting id: deploy/meetings/ID.toml (cwd, else bundled)")
    where.add_argument("--meeting-file", metavar="FILE", help="meeting spec file (TOML)")
    parser.add_argument(
        "--rate", type=positive_number(), default=1000.0, metavar="N", help="submissions per second (default 1000)"
    )
    parser.add_argument(
        "--duration", type=positive_number(), default=30.0, metavar="S", help="seconds to publish for (default 30)"
    )
    parser.add_argument(
        "--turnout",
        type=positive_number(maximum=1),
        metavar="F",
        help="fraction of the outstanding shares whose owners instruct (default: the file's)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="random seed (default: the file's; the same seed republishes the same "
        "event ids, which the ledger applies once)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line each second")
    parser.add_argument(
        "--sample-answer",
        metavar="FILE",
        help="then await the answers (votes.decisions) to the last 50 submissions and write one, the last "
        "accepted, to FILE as JSON: a receipt a holder can check (vote-ledger audit receipt)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from services.devtools.demo.spec import load_spec  # in the handler: the parser loads no developer tooling

    path = resolve_meeting_file(args.meeting_file, args.meeting)
    try:
        load_spec(path)  # report a bad file before touching Kafka
    except ValueError as exc:
        raise UserError(str(exc)) from None
    from services.devtools.demo.loader import simulate

    current = kafka_settings()
    _require_demo_keys(current, path)
    progress = None if args.quiet else _progress
    summary = run_kafka(
        current,
        simulate(
            current,
            path,
            args.rate,
            args.duration,
            turnout=args.turnout,
            seed=args.seed,
            on_progress=progress,
            sample=args.sample_answer is not None,
        ),
    )
    print(
        f"published {summary.published:,} of {summary.target:,} submissions for {summary.meeting_id} "
        f"in {summary.seconds:.1f} s: {summary.rate:,.0f}/s (target {summary.target_rate:,.0f}/s, "
        f"seed {summary.seed})"
    )
    if args.sample_answer is not None:
        if summary.sample is None:
            raise UserError("no answer on votes.decisions to any of the last submissions: is the ledger running?")
        Path(args.sample_answer).write_bytes(msgspec.json.format(msgspec.json.encode(summary.sample), indent=2) + b"\n")
        print(f"answer to {summary.sample.event_id} written to {args.sample_answer}")
    return 0 if summary.published == summary.target else 1


def _require_demo_keys(current: Settings, path: Path) -> None:
    """Stop unless the log holds every simulated channel's demo key (else every submission is unknown_channel)."""
    from services.devtools.demo.loader import demo_keys_missing

    if not (current.pg_reader_dsn or current.pg_dsn):
        print(
            "vote-ledger: no reader DSN: not checked that the simulated channels' keys are registered", file=sys.stderr
        )
        return
    from services.cli.common import run

    async def check() -> int:
        missing = await demo_keys_missing(current, path)
        if missing is None:
            raise UserError(
                f"meeting of {path.name} not in the log: load it first: "
                f"vote-ledger meeting load {path} --simulated-channels"
            )
        if missing:
            raise UserError(
                f"no simulated channel key registered for {', '.join(missing[:3])}"
                f"{' and others' if len(missing) > 3 else ''}: load the meeting with "
                f"`vote-ledger meeting load {path} --simulated-channels`"
            )
        return 0

    run(check())


def _progress(p: Progress) -> None:
    if not p.done:
        print(f"  {p.elapsed:5.1f} s  {p.published:>9,} / {p.target:,}  {p.rate:,.0f}/s", file=sys.stderr)

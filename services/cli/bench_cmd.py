"""`vote-ledger bench`: ours against the limits of our parts and against the peers, in one run."""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from pathlib import Path

from deploy import meeting_file
from services.cli import UserError
from services.cli.common import add_quiet, kafka_bootstrap, pg_dsn, positive_number, run, whole_number
from services.cli.progress import progress_bar
from services.settings import settings

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
# Said for an installed wheel as well as for a checkout.
BENCH_EXTRAS = "pip install 'vote-ledger[bench]', or pip install -e '.[bench]' in a checkout"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` command."""
    b = sub.add_parser(
        "bench",
        help="benchmark ours against the limits and the peers",
        description="Generate the CBAK reference meeting with a large register and N submissions, then measure"
        " in one run: end-to-end ingest with the projector running (channel-signed submissions, then the"
        " same unsigned), what verifying a signature costs per submission, publish-to-tally latency at a"
        " fixed rate, replay from the log, raw aiokafka and raw COPY limits, the eventsourcing and"
        " naive peers, and a scale curve. Everything runs in scratch databases and topics, removed"
        " afterwards. Writes results.json and results.md. Needs Kafka and PostgreSQL"
        " (VOTE_LEDGER_KAFKA_BOOTSTRAP, VOTE_LEDGER_PG_DSN) and the bench extras"
        f" ({BENCH_EXTRAS}).",
    )
    b.add_argument(
        "--events", type=whole_number(1), default=1_000_000, help="submissions in the main run (default 1,000,000)"
    )
    b.add_argument(
        "--positions", type=whole_number(1), default=100_000, help="control numbers in the register (default 100,000)"
    )
    b.add_argument(
        "--scale",
        type=_sizes,
        default="10000,100000",
        help="other sizes for the scale curve, comma-separated (default 10000,100000; the main run is a point)",
    )
    b.add_argument(
        "--latency-rate", type=whole_number(1), default=5_000, help="offered submissions/s for latency (default 5,000)"
    )
    b.add_argument(
        "--latency-seconds", type=positive_number(), default=30.0, help="how long to offer them (default 30)"
    )
    b.add_argument(
        "--scale-only",
        action="store_true",
        help="run only the scale curve, at every --scale size (e.g. 10000,100000,1000000,10000000), the workload"
        " streamed; writes scale.json and merges its points into results.json/.md (and --readme) if there",
    )
    b.add_argument(
        "--meetings-events",
        type=whole_number(0),
        default=200_000,
        help="submissions for the many-meetings measurement: spread over 50 meetings vs all in one, each with"
        " 1 and 2 ledger processes, the append lock's waits sampled (default 200,000; 0 skips it)",
    )
    b.add_argument(
        "--meetings-only",
        action="store_true",
        help="run only the many-meetings measurement (--meetings-events submissions); writes meetings.json and"
        " merges it into results.json/.md (and --readme) if there",
    )
    b.add_argument("--no-peers", action="store_true", help="skip the eventsourcing and naive peers")
    b.add_argument(
        "--no-unsigned",
        action="store_true",
        help="skip ingesting the same submissions unsigned (the comparison that says what signatures cost)",
    )
    b.add_argument(
        "--peer-events",
        type=whole_number(1),
        default=50_000,
        help="submissions (the first N of the same workload) for the eventsourcing peer, which"
        " runs at hundreds per second (default 50,000)",
    )
    b.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for results.json/.md and logs")
    b.add_argument("--readme", type=Path, help=f"also replace the table between {README_START} and {README_END}")
    b.add_argument(
        "--meeting-file",
        type=Path,
        default=meeting_file("cbak-2023-agm"),  # bundled with vote-ledger: works outside a checkout too
        help="the meeting spec the workload is generated from (default: the bundled cbak-2023-agm)",
    )
    add_quiet(b)
    b.set_defaults(func=_bench)


def _sizes(text: str) -> list[int]:
    """An argparse type: comma-separated sizes, each a whole number of at least 1."""
    size = whole_number(1)
    return [size(part.strip()) for part in text.split(",") if part.strip()]


def _bench(args: argparse.Namespace) -> int:
    if args.scale_only and args.meetings_only:
        raise UserError("--scale-only and --meetings-only each run one part: give one of them")
    if args.meetings_only and not args.meetings_events:
        raise UserError("--meetings-only needs --meetings-events of at least 1")
    cfg = settings()
    pg_dsn(cfg)
    kafka_bootstrap(cfg)
    try:
        from services.devtools.bench import charts  # noqa: PLC0415 - needs the bench extras (matplotlib)
        from services.devtools.bench.report import markdown  # noqa: PLC0415 - needs the bench extras
        from services.devtools.bench.run import Plan, meetings_only, scale_only  # noqa: PLC0415
        from services.devtools.bench.run import run as run_bench
        from services.devtools.bench.scale import merge_scale  # noqa: PLC0415
    except ImportError as exc:
        raise UserError(f"{exc.name} is missing: install the bench extras ({BENCH_EXTRAS})") from None
    plan = Plan(
        events=args.events,
        positions=args.positions,
        scale=args.scale,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        peers=not args.no_peers,
        unsigned=not args.no_unsigned,
        peer_events=args.peer_events,
        meeting_file=args.meeting_file,
        log_dir=args.out / "logs",
        meetings_events=args.meetings_events,
    )
    args.out.mkdir(parents=True, exist_ok=True)

    async def go() -> int:
        from services.adapters.postgres.logins import service_logins

        # Given only a superuser DSN, the services under measurement get logins for this run.
        async with service_logins(cfg, f"vl_bench{uuid.uuid4().hex[:6]}_") as run_cfg:
            with progress_bar("bench", unit="sizes" if args.scale_only else "phases", quiet=args.quiet) as on_progress:
                measure = scale_only if args.scale_only else meetings_only if args.meetings_only else run_bench
                results = await measure(
                    run_cfg, plan, lambda line: print(f"[bench] {line}", file=sys.stderr, flush=True), on_progress
                )
        if args.scale_only:
            (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
            main_run = args.out / "results.json"
            if not main_run.exists():  # nothing to merge into: the curve alone (and its chart)
                charts.write(results, args.out)
                print(json.dumps(results["scale"], indent=2))
                return 0
            results = merge_scale(json.loads(main_run.read_text()), results)
        elif args.meetings_only:
            (args.out / "meetings.json").write_text(json.dumps(results, indent=2) + "\n")
            main_run = args.out / "results.json"
            if not main_run.exists():
                print(json.dumps(results["meetings"], indent=2))
                return 0
            results = {**json.loads(main_run.read_text()), "meetings": {**results["meetings"], "run": results["date"]}}
        elif (args.out / "scale.json").exists():  # e.g. the 10M point of `make bench-scale`: kept in the table
            results = merge_scale(results, json.loads((args.out / "scale.json").read_text()), replace=False)
        table = markdown(results)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "results.md").write_text(table)
        charts.write(results, args.out)  # throughput.svg, scale.svg, latency.svg next to results.json
        if args.readme:
            _update_readme(args.readme, table)
            charts.embed(args.readme, args.out)  # the README's chart block, if it has one
        print(table)
        return 0

    return run(go())


def _update_readme(path: Path, table: str) -> None:
    """Replace the README's benchmark table (between the markers) with this run's."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise UserError(f"{path} has no {README_START} ... {README_END} markers")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    path.write_text(pattern.sub(lambda _: f"{README_START}\n{table}{README_END}", text, count=1))

"""`vote-ledger status`: ingest lag, projector lag, decisions and parked messages."""

from __future__ import annotations

import argparse
import json

from projections.completeness import summary
from services.cli.common import add_format, kafka_bootstrap, run
from services.settings import settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `status` command."""
    s = sub.add_parser(
        "status",
        help="ingest and projection lag, rejects, parked messages",
        description="Show how far the ledger and the projector are, and what was rejected or parked.",
    )
    add_format(s)
    s.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="first wait up to SECONDS until Kafka and projector lag are zero (exit 1 if not)",
    )
    s.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import READER_ROLE, connect_as, role_dsn
    from services.read.status import status, wait_caught_up

    cfg = settings()
    role_dsn(cfg, READER_ROLE)
    kafka_bootstrap(cfg)

    async def go() -> int:
        conn = await connect_as(cfg, READER_ROLE)
        try:
            report = await (wait_caught_up(conn, cfg, args.wait) if args.wait else status(conn, cfg))
        finally:
            await conn.close()
        caught_up = not any(report["ingest_lag"].values()) and report["projector_lag"] == 0
        if args.format == "json":
            print(json.dumps(report, indent=2))
        else:
            print(f"log head           {report['log_head']:,}")
            print(f"projector at       {report['projector_checkpoint']:,} (lag {report['projector_lag']:,})")
            if report.get("database") == "standby":  # every figure here is as of what the standby replayed
                print(f"database           hot standby, replay lag {report['replay_lag_s']} s")
            print("ingest lag         " + ", ".join(f"{t}: {n:,}" for t, n in report["ingest_lag"].items()))
            print(f"accepted           {report['accepted']:,}")
            rejected = ", ".join(f"{r}: {n:,}" for r, n in report["rejected"].items()) or "none"
            print(f"rejected           {rejected}")
            reasons = ", ".join(f"{r}: {n:,}" for r, n in report["parked_reasons"].items())
            print(f"parked             {report['parked']:,}" + (f" ({reasons})" if reasons else ""))
            if report.get("commits_wait"):
                print(f"WAITING commits    {report['commits_wait']}")
            for p in report["stalled_partitions"]:
                print(
                    f"STALLED partition  {p['partition']}: committed {p['committed']:,} of {p['end']:,},"
                    f" not moved for {p['idle_s']:,} s (see the ledger's log)"
                )
            for p in report["beyond_end"]:
                print(
                    f"PAUSED partition   {p['partition']}: committed {p['committed']:,} is beyond its end"
                    f" {p['end']:,}: the topic was recreated or ledger_offsets changed by hand"
                )
            for p in report["behind_log_start"]:
                print(
                    f"LOST in Kafka      {p['partition']}: committed {p['committed']:,} but the log starts at"
                    f" {p['log_start']:,}: records were deleted or expired before the ledger logged them"
                )
            clock = report["submissions_clock"]
            if clock["warning"] is not None:
                print(f"WARNING clock      {clock['warning']}")
            else:
                print(f"submissions clock  {clock['timestamp_type']} (the broker's: appended_at on every row)")
            for failed in report["failed_meetings"]:
                print(
                    f"FAILED meeting     {failed['meeting_id']} not projected from log position"
                    f" {failed['position']:,}: {failed['error']}"
                )
            _print_registers(report["registers"])
        return 0 if caught_up or not args.wait else 1

    return run(go())


def _print_registers(registers: dict) -> None:
    """How many meetings' registers are complete, and each incomplete one with what it misses."""
    incomplete = {meeting_id: r for meeting_id, r in registers.items() if not r["complete"]}
    state = f"{len(incomplete):,} INCOMPLETE" if incomplete else "all complete"
    print(f"registers          {len(registers):,} meeting(s), {state}")
    for meeting_id, register in incomplete.items():
        print(f"INCOMPLETE register {meeting_id}: {summary(register).removeprefix('INCOMPLETE: ')}")

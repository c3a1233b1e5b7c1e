"""`vote-ledger projections rebuild`: replay a meeting from the start of the log, online."""

from __future__ import annotations

import argparse
import time

from services.cli import UserError
from services.cli.common import add_quiet, run, setup_logging
from services.cli.progress import progress_bar
from services.settings import settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `projections` command."""
    p = sub.add_parser(
        "projections", help="maintain projections", description="Maintain the projections folded from the log."
    )
    p_sub = p.add_subparsers(dest="projections_command", required=True, metavar="ACTION")
    r = p_sub.add_parser(
        "rebuild",
        help="replay a meeting from the start of the log",
        description="Rebuild a meeting's tally tables by replaying the log from the start"
        " up to the projector's checkpoint into shadow tables, checking them"
        " against the fold (every row of the log folded once, its sums against its voters' states),"
        " then swapping them in atomically."
        " Readers and a running projector carry on meanwhile.",
    )
    r.add_argument("--meeting", required=True, help="meeting id")
    add_quiet(r)
    r.set_defaults(func=_rebuild)


def _rebuild(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import PROJECTOR_ROLE, connect_as
    from services.read.errors import UnknownMeeting
    from services.runtime.rebuild import RebuildRefused, rebuild

    setup_logging()  # the phases' timings (replay, check, swap) go to stderr

    async def go() -> int:
        conn = await connect_as(settings(), PROJECTOR_ROLE)
        try:
            started = time.perf_counter()
            # One pass: the replay reads the log up to the checkpoint once (the check reads the shadow rows).
            with progress_bar(f"rebuilding {args.meeting}", unit="positions", quiet=args.quiet) as on_progress:
                rows = await rebuild(conn, args.meeting, on_progress)
        except UnknownMeeting:
            raise UserError(f"no projected meeting {args.meeting!r} (is the projector running?)") from None
        except RebuildRefused as exc:
            raise UserError(str(exc)) from None
        finally:
            await conn.close()
        elapsed = time.perf_counter() - started
        # Throughput log -> tally, end to end: replay, shadow writes, their check, swap.
        print(
            f"rebuilt {args.meeting}: {rows:,} log rows replayed, verified and swapped in {elapsed:.2f} s"
            f" ({rows / elapsed if elapsed > 0 else 0:,.0f} events/s)"
        )
        return 0

    return run(go())

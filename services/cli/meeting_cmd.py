"""`vote-ledger meeting load|show FILE`: publish or inspect a meeting file and its register."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from services.cli import UserError
from services.cli.common import add_format, add_quiet, kafka_bootstrap, positive_number
from services.cli.meeting_show import describe, meeting_lines, meeting_summary, text
from services.cli.progress import progress_bar
from services.settings import Settings, settings

if TYPE_CHECKING:
    from services.registers.build import LoadedRegister
    from services.registers.decisions import Sent

MEETINGS_DIR = Path("deploy/meetings")

_FILE_HELP = "meeting file (TOML), e.g. deploy/meetings/cbak-2023-agm.toml, or a bundled meeting's id (cbak-2023-agm)"
_REGISTER_HELP = (
    "the meeting's real record-date register: a directory of CSV files (registered.csv, dtc_positions.csv, "
    "beneficial.csv; docs/register.md). Without it, the synthetic register of the meeting's simulation file "
    "(deploy/simulations/<meeting file's name>)"
)
# Register problems printed before the count of the rest: enough to fix a file's column at a time.
MAX_PROBLEMS_SHOWN = 50
# How long `meeting load` waits for the ledger's decisions on what it published. The ledger logs a batch
# of admin events within a second on the local stack; a register of 10^6 positions (500 chunks) takes
# it longer, and the wait ends as soon as every event is decided.
DECISION_WAIT_S = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `meeting load` and `meeting show`."""
    parser = subparsers.add_parser(
        "meeting",
        help="publish or inspect a meeting file",
        description="A meeting file holds the meeting as data ([meeting]). Its register is a directory of CSV "
        "files (--register DIR, docs/register.md), or for a simulation the synthetic register its simulation file "
        "describes (deploy/simulations/, with the simulated campaign).",
    )
    actions = parser.add_subparsers(dest="meeting_action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load",
        help="publish meeting.scheduled and the register's positions.recorded chunks",
        description="Publish the meeting (meeting.scheduled, declaring its register's totals) and its "
        "record-date register (positions.recorded chunks) to meetings.admin. With --register DIR every file is "
        "checked and reconciled first: any problem is printed as FILE:LINE:COLUMN and nothing is published. No "
        "channel key is registered unless asked: real channels register their own (vote-ledger channel "
        "register). Event ids derive from the files' content: loading the same files again is a no-op (R18). Then "
        "waits for the ledger's decisions: all accepted, or already loaded (exit 0); any rejected, each named with "
        "its reason (exit 1).",
    )
    load.add_argument("file", metavar="FILE", help=_FILE_HELP)
    load.add_argument("--register", metavar="DIR", help=_REGISTER_HELP)
    load.add_argument(
        "--simulated-channels",
        action="store_true",
        help="also register the simulated channels' demo keys (for `simulate`). They are PUBLIC: derived from "
        "the meeting and channel ids, so anyone can sign votes with them. For simulations only, never for a "
        "real meeting (not with --register)",
    )
    wait = load.add_mutually_exclusive_group()
    wait.add_argument(
        "--wait",
        type=positive_number(3600),
        default=DECISION_WAIT_S,
        metavar="SECONDS",
        help="seconds to wait for the ledger's decisions on every published event, read as the reader role "
        f"(default {DECISION_WAIT_S:g}): exit 1 if it rejected any",
    )
    wait.add_argument("--no-wait", action="store_true", help="publish only: do not wait for the ledger's decisions")
    add_quiet(load)
    load.set_defaults(func=_load)
    show = actions.add_parser(
        "show",
        help="print the meeting, its register and campaign totals without publishing (or a logged meeting)",
        description="Parse the meeting file and read its register (--register DIR: checked and reconciled as "
        "`meeting load` would; else the synthetic one, with its simulated campaign planned); print a summary. "
        "Nothing is published. With --meeting ID instead of FILE: the meeting as the log holds it, as amended, "
        "with its register logged so far (the read of GET /v1/meetings/{id}; reader role).",
    )
    show.add_argument("file", metavar="FILE", nargs="?", help=_FILE_HELP)
    show.add_argument("--meeting", metavar="ID", help="read the logged meeting ID from the log instead of a file")
    show.add_argument("--register", metavar="DIR", help=_REGISTER_HELP)
    add_format(show)
    show.set_defaults(func=_show)
    from services.cli.meeting_amend_cmd import add_amend  # its own module: `meeting amend adjourn|cutoff|correct`

    add_amend(actions)
    from services.cli.meeting_list_cmd import add_list  # `meeting list`: the meetings in the log

    add_list(actions)


def resolve_meeting_file(file: str | None = None, meeting_id: str | None = None) -> Path:
    """The meeting file FILE, or a meeting id's: deploy/meetings/<ID>.toml under the cwd, else the bundled one."""
    if file is not None:
        path = Path(file)
        if path.exists() or (meeting_id is None and ("/" in file or file.endswith(".toml"))):
            return path
        meeting_id = file
    path = MEETINGS_DIR / f"{meeting_id}.toml"
    if path.exists():
        return path
    from deploy import meeting_file, meeting_ids

    bundled = meeting_file(str(meeting_id))  # shipped with vote-ledger, so an install outside a checkout has them
    if not bundled.exists():
        known = ", ".join(meeting_ids())
        raise UserError(f"no meeting spec {path} and no bundled meeting {meeting_id!r} (bundled: {known})")
    return bundled


def kafka_settings() -> Settings:
    """The settings, insisting that Kafka's address is known (else: how to get one)."""
    current = settings()
    kafka_bootstrap(current)
    return current


def run_kafka(current: Settings, coroutine):
    """Run a publishing coroutine, turning spec and broker problems into user errors."""
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(coroutine)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except (KafkaError, OSError) as exc:
        from services.adapters.kafka.topics import unreachable

        failed = f"Kafka at {current.kafka_bootstrap} failed: {str(exc) or type(exc).__name__}"
        raise UserError(unreachable(exc, current.kafka_bootstrap) or failed) from None


def real_register(path: Path, directory: str) -> LoadedRegister:
    """The meeting and its register files, checked; else each problem on stderr and a one-line UserError."""
    from services.registers.build import RegisterError, load_register

    try:
        return load_register(path, directory)
    except RegisterError as exc:
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(problem, file=sys.stderr)
        more = len(exc.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            print(f"... and {more:,} more", file=sys.stderr)
        raise UserError(f"register {directory}: {len(exc.problems):,} problem(s); nothing published") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _load_real(args: argparse.Namespace, path: Path) -> int:
    from services.registers.publish import publish_admin
    from services.registers.report import reconciliation_lines

    if args.simulated_channels:
        raise UserError(
            "--simulated-channels is for a simulated register: a real meeting's channels register their own"
        )
    loaded = real_register(path, args.register)
    meeting = loaded.meeting
    print("\n".join(reconciliation_lines(loaded.reconciliation, meeting)))
    current = kafka_settings()
    with progress_bar(f"publishing {meeting.meeting_id}", unit="events", quiet=args.quiet) as on_progress:
        sent = run_kafka(current, publish_admin(current, loaded.events, on_progress))
    totals = meeting.register
    assert totals is not None
    print(
        f"published meeting {meeting.meeting_id} (event {meeting.event_id}) and {totals.chunks} register chunks: "
        f"{totals.positions} positions, {totals.shares:,} shares"
    )
    if _ledger_rejected(current, meeting.meeting_id, sent, None if args.no_wait else args.wait):
        return 1
    print("no channel key registered: register each real channel's key with `vote-ledger channel register`")
    return 0


def _ledger_rejected(current: Settings, meeting_id: str, sent: list[Sent], wait: float | None) -> bool:
    """Await and print the ledger's decisions on the published events; whether it rejected any.

    An identical reload is "already loaded" (R18: the ledger applies an event once); a changed register is
    rejected (duplicate_meeting, duplicate_chunk), each rejected event named with its reason.
    """
    from services.registers.decisions import await_decisions

    if wait is None:
        print("the ledger's decisions not checked (--no-wait)")
        return False
    if not (current.pg_reader_dsn or current.pg_dsn):
        print("the ledger's decisions not checked (no reader DSN: VOTE_LEDGER_PG_READER_DSN)")
        return False
    try:
        decisions = asyncio.run(await_decisions(current, meeting_id, sent, wait))
    except OSError as exc:
        raise UserError(f"published, but the log could not be read: {exc}") from None
    if decisions.undecided:
        raise UserError(
            f"the ledger logged no decision on {len(decisions.undecided):,} of {len(sent):,} published events within "
            f"{wait:g} s (the first: {decisions.undecided[0].what}): is it running?"
        )
    print("\n".join(decisions.lines()))
    return bool(decisions.rejected)


def _load(args: argparse.Namespace) -> int:
    path = resolve_meeting_file(args.file)
    if args.register is not None:
        return _load_real(args, path)
    # The demo tooling is imported by the handlers that use it: building the parser (every
    # `vote-ledger` call, `services run` too) loads no developer tooling.
    from services.devtools.demo.spec import load_spec

    try:
        load_spec(path)  # report a bad file before touching Kafka
    except ValueError as exc:
        raise UserError(str(exc)) from None
    from services.devtools.demo.loader import load_meeting

    current = kafka_settings()
    with progress_bar(f"publishing {path.stem}", unit="events", quiet=args.quiet) as on_progress:
        summary = run_kafka(
            current, load_meeting(current, path, on_progress, simulated_channels=args.simulated_channels)
        )
    print(
        f"published meeting {summary.meeting_id} (event {summary.event_id}) and {summary.chunks} "
        f"register chunks: {summary.positions} positions, {summary.shares:,} shares"
    )
    if _ledger_rejected(current, summary.meeting_id, list(summary.sent), None if args.no_wait else args.wait):
        return 1
    if args.simulated_channels:
        print(
            f"registered {summary.keys} simulated channels' demo keys: PUBLIC keys (anyone can derive them and "
            "sign votes), for simulations only"
        )
    else:
        print(
            "no channel key registered: register each real channel's key with `vote-ledger channel register` "
            "(a simulation: load with --simulated-channels)"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.meeting is not None:
        if args.file is not None or args.register is not None:
            raise UserError("meeting show: give FILE [--register DIR] or --meeting ID, not both")
        from services.cli.meeting_logged import show_logged

        return show_logged(args)
    if args.file is None:
        raise UserError("meeting show: give FILE (a meeting file, or a bundled meeting's id) or --meeting ID")
    path = resolve_meeting_file(args.file)
    if args.register is not None:
        return _show_real(args, path)
    from services.devtools.demo.register import build_register
    from services.devtools.demo.spec import load_spec

    try:
        meeting, register_spec, sim = load_spec(path)
        positions, entitlements = build_register(meeting, register_spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = describe(meeting, positions, {e.nominee: e.shares for e in entitlements}, sim)
    print(
        msgspec.json.format(msgspec.json.encode(summary), indent=2).decode() if args.format == "json" else text(summary)
    )
    return 0


def _show_real(args: argparse.Namespace, path: Path) -> int:
    from services.registers.report import reconciliation_lines

    loaded = real_register(path, args.register)
    if args.format == "json":
        summary = {**meeting_summary(loaded.meeting), "register": loaded.reconciliation.as_dict()}
        print(msgspec.json.format(msgspec.json.encode(summary), indent=2).decode())
    else:
        summary = meeting_summary(loaded.meeting)
        lines = meeting_lines(summary)
        lines += reconciliation_lines(loaded.reconciliation, loaded.meeting)
        print("\n".join(lines))
    return 0

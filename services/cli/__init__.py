"""The `vote-ledger` command line: one parser, subcommands from an explicit registry."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Re-exported (the `as` form): `from services.cli import UserError` keeps working for commands and users.
from services.errors import UserError as UserError

# Each module exposes register(subparsers); registration order is --help order.
COMMAND_MODULES = [
    "services.cli.stack_cmd",
    "services.cli.db_cmd",
    "services.cli.meeting_cmd",
    "services.cli.simulate_cmd",
    "services.cli.channel_cmd",
    "services.cli.services_cmd",
    "services.cli.tally_cmd",
    "services.cli.report_cmd",
    "services.cli.proxies_cmd",
    "services.cli.audit_cmd",
    "services.cli.status_cmd",
    "services.cli.projections_cmd",
    "services.cli.export_cmd",
    "services.cli.api_cmd",
    "services.cli.bench_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="vote-ledger",
        description="Event-sourced ledger for shareholder votes (Kafka in, PostgreSQL log, tallies).",
    )
    from services.read.export_file import software_version  # the installed package's metadata, as exports record it

    parser.add_argument(
        "--version", action="version", version=f"vote-ledger {software_version()}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vote-ledger` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.getLogger("aiokafka").addFilter(_bootstrap_failure_said_once)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `vote-ledger ... | head`: the reader left; exit quietly like other Unix tools.
        sys.stderr.close()
        return 141
    except UserError as exc:
        say_fatal(args, str(exc))
        return 2
    except Exception as exc:
        line = unreachable(exc)
        if line is None:
            raise
        say_fatal(args, line)
        return 2


def say_fatal(args: argparse.Namespace, line: str) -> None:
    """Print the one-line error a command ends with: a JSON log line for `services run` logging JSON."""
    if args.command == "services" and getattr(args, "services_command", None) == "run" and _logs_json():
        # Its stderr goes to a log collector, as JSON lines: a plain line there would be the one it cannot parse.
        from services.observability import logs

        record = logging.LogRecord("vote_ledger.cli", logging.ERROR, __file__, 0, line, None, None)
        print(logs.formatter("json").format(record), file=sys.stderr)
        return
    print(f"vote-ledger: {line}", file=sys.stderr)


def _logs_json() -> bool:
    from services.settings import load  # the environment only: the format needs no stack found

    try:
        return load().log_format == "json"
    except Exception:  # noqa: BLE001 - the settings may be what failed: then the plain line says so
        return False


def _bootstrap_failure_said_once(record: logging.LogRecord) -> bool:
    # aiokafka logs each bootstrap address it cannot reach, then raises KafkaConnectionError, which
    # main reports in one line naming the address; the log line would only repeat it.
    return not str(record.msg).startswith('Unable connect to "')


def unreachable(exc: BaseException) -> str | None:
    """One line for PostgreSQL or Kafka not answering, wherever in a command it surfaced; None for other errors.

    The one place connection failures become user errors: the adapters only classify them, so the
    long-running services keep their own reconnect loops. A client library that was never imported
    (offline commands import neither) cannot have raised, so its adapter is not imported to look.
    """
    seen: list[BaseException] = []
    pending = [exc]
    while pending:  # the error itself, its causes and, from task groups, every sub-error
        error = pending.pop(0)
        if error in seen:
            continue
        seen.append(error)
        if "asyncpg" in sys.modules:
            from services.adapters.postgres.connect import unreachable as postgres

            if line := postgres(error):
                return line
        if "aiokafka" in sys.modules:
            from services.adapters.kafka.topics import unreachable as kafka
            from services.settings import settings

            if line := kafka(error, settings().kafka_bootstrap):
                return line
        pending += [e for e in (error.__cause__, error.__context__) if e is not None]
        pending += list(getattr(error, "exceptions", ()))
    return None

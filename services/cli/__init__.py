"""The `vote-ledger` command line: one parser, subcommands from an explicit registry."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module exposes register(subparsers); registration order is --help order.
COMMAND_MODULES = [
    "services.cli.stack_cmd",
    "services.cli.db_cmd",
    "services.cli.meeting_cmd",
    "services.cli.simulate_cmd",
    "services.cli.services_cmd",
    "services.cli.tally_cmd",
    "services.cli.report_cmd",
    "services.cli.proxies_cmd",
    "services.cli.audit_cmd",
    "services.cli.status_cmd",
    "services.cli.projections_cmd",
    "services.cli.export_cmd",
    "services.cli.bench_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="vote-ledger",
        description="Event-sourced ledger for shareholder votes (Kafka in, PostgreSQL log, tallies).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vote-ledger` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `vote-ledger ... | head`: the reader left; exit quietly like other Unix tools.
        sys.stderr.close()
        return 141
    except UserError as exc:
        print(f"vote-ledger: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""

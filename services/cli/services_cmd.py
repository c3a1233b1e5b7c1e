"""`vote-ledger services run`: the ledger, the projector and the HTTP API, together or separately."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from services.cli.common import kafka_bootstrap, run, setup_logging
from services.settings import settings

if TYPE_CHECKING:
    from services.runtime.projector import Projector


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `services` command."""
    svc = sub.add_parser(
        "services",
        help="run the ledger and/or projector",
        description="Run vote-ledger's long-running processes in the foreground.",
    )
    svc_sub = svc.add_subparsers(dest="services_command", required=True, metavar="ACTION")
    r = svc_sub.add_parser(
        "run",
        help="run services until interrupted",
        description="Run the ledger (Kafka -> log), the projector (log -> tallies) and the HTTP read API"
        " (VOTE_LEDGER_API_HOST:VOTE_LEDGER_API_PORT, reader login).",
    )
    r.add_argument(
        "which",
        nargs="?",
        choices=["all", "ledger", "projector", "api"],
        default="all",
        help="which service to run (default: all: the ledger, the projector and the HTTP API, one process each)",
    )
    r.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    r.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, role_dsn

    setup_logging(args.verbose)
    cfg = settings()
    if args.which in ("all", "ledger"):
        role_dsn(cfg, LEDGER_ROLE)
        kafka_bootstrap(cfg)
    if args.which in ("all", "projector"):
        role_dsn(cfg, PROJECTOR_ROLE)
    if args.which in ("all", "api"):
        role_dsn(cfg, READER_ROLE)
    if args.which == "all":  # checked above, so a missing login is one line here, not three from the children
        from services.cli import say_fatal
        from services.cli.supervise import SERVICES, supervise

        return supervise(SERVICES, args.verbose, lambda line: say_fatal(args, line))
    return run(serve(cfg, args.which))


async def serve(cfg, which: str) -> int:
    """Run the chosen services until SIGINT/SIGTERM."""
    from services.adapters.kafka.topics import ensure_topics
    from services.observability.health_app import ledger_health, projector_health, serve_health
    from services.runtime import failures
    from services.runtime.ledger_app import build_app
    from services.runtime.projector import Projector

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = []
    if which in ("all", "ledger"):
        try:
            await ensure_topics(cfg, "ledger")  # as the ledger: it needs no operator's login
        except Exception as exc:
            if (reason := failures.cannot_go_on(exc)) is not None:  # a refused login or ACL: say which
                raise failures.CannotGoOn(reason.replace("<ROLE>", "LEDGER")) from exc
            raise
        app, ledger = build_app(cfg)
        tasks.append(asyncio.create_task(_run_app(app, stop)))
        health, port = ledger_health(cfg, ledger), cfg.ledger_metrics_port
        tasks.append(asyncio.create_task(serve_health(health, cfg.metrics_host, port, stop, "ledger")))
    if which in ("all", "projector"):
        projector = Projector(cfg)
        try:
            await projector.start()
        except BaseException:
            stop.set()  # the ledger, if started, stops too: one error reported, no orphaned task
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        tasks.append(asyncio.create_task(_run_projector(projector, stop)))
        health, port = projector_health(cfg, projector), cfg.projector_metrics_port
        tasks.append(asyncio.create_task(serve_health(health, cfg.metrics_host, port, stop, "projector")))
    if which in ("all", "api"):
        from services.api.app import serve as serve_api

        tasks.append(asyncio.create_task(serve_api(cfg, stop)))
    # A part that cannot go on (a refused login or privilege, no schema) asks the process to exit with its line.
    tasks.append(asyncio.create_task(failures.given_up(stop), name="given-up"))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if (exc := task.exception()) is not None:
            if (reason := failures.cannot_go_on(exc)) is not None:  # e.g. the consumer group's ACL: one line
                raise failures.CannotGoOn(reason.replace("<ROLE>", "LEDGER")) from exc  # Kafka: the ledger's
            raise exc
    return 0


async def _run_app(app, stop: asyncio.Event) -> None:
    try:
        await app.start()
    except BaseException:
        # Close the clients it opened (e.g. the consumer refused its group by an ACL): else asyncio's "Unclosed
        # AIOKafkaConsumer" lines came after the exit's one line, at the interpreter's exit.
        with contextlib.suppress(Exception):
            await app.stop()
        raise
    try:
        await stop.wait()
    finally:
        await app.stop()


async def _run_projector(projector: Projector, stop: asyncio.Event) -> None:
    try:
        await projector.run(stop)
    finally:
        await projector.stop()

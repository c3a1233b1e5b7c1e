"""`vote-ledger stack up|down|status|promote|principal add`: the local Kafka + PostgreSQL on loopback."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from services.cli.common import add_format

EXIT_NOT_RUNNING = 3  # like `systemctl status`: lets scripts do `status || up`


def register(subparsers: Any) -> None:
    """Add the `stack` command and its `up`, `down`, `status` and `principal add` actions."""
    stack = subparsers.add_parser(
        "stack",
        help="run a local Kafka + PostgreSQL on 127.0.0.1 (no Docker needed)",
        description=(
            "Manage a single-node Kafka (KRaft, jars fetched once from Maven Central into the "
            "cache folder) and a private PostgreSQL cluster, both listening on 127.0.0.1 only."
        ),
    )
    actions = stack.add_subparsers(dest="stack_action", required=True, metavar="ACTION")

    # Shared flags; each overrides the matching VOTE_LEDGER_* environment variable.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        help="data dirs, logs and pid files (env VOTE_LEDGER_HOME, default ./.vote-ledger)",
    )
    common.add_argument("--cache", help="Maven repo and Kafka jars (env VOTE_LEDGER_CACHE, default ./.cache)")
    common.add_argument("--kafka-port", type=int, help="Kafka listener (env VOTE_LEDGER_KAFKA_PORT, default 19092)")
    common.add_argument(
        "--kafka-controller-port",
        type=int,
        help="KRaft controller listener (env VOTE_LEDGER_KAFKA_CONTROLLER_PORT, default 19093)",
    )
    common.add_argument("--pg-port", type=int, help="PostgreSQL port (env VOTE_LEDGER_PG_PORT, default 15432)")

    up = actions.add_parser(
        "up",
        parents=[common],
        help="start Kafka and PostgreSQL (no-op when running); print export lines",
        description=(
            "Start both services unless they already run, then print shell export lines on stdout: "
            "VOTE_LEDGER_KAFKA_BOOTSTRAP, VOTE_LEDGER_PG_DSN (the owner login, for `db migrate`), "
            "VOTE_LEDGER_PG_LEDGER_DSN, _PROJECTOR_DSN, _READER_DSN (each service's own login) and "
            "VOTE_LEDGER_PG_ADMIN_DSN (the superuser, for tests and administration only), and Kafka's "
            "VOTE_LEDGER_KAFKA_OPERATOR_LOGIN (the broker's super user), _LEDGER_LOGIN, _ADMIN_LOGIN and "
            "_CHANNEL_LOGIN (the demo's channel), each user:password. Every login has a random password "
            "kept in HOME/pg-passwords.json and HOME/kafka-passwords.json (mode 0600); PostgreSQL requires "
            "SCRAM passwords, and a stack made before logins existed is converted on this run; Kafka requires "
            "SASL/SCRAM-SHA-512 and ACLs, and Kafka storage formatted before that is moved aside "
            "(HOME/kafka-data.unauthenticated-*) and formatted anew, its topics empty. "
            'Progress goes to stderr, so `eval "$(vote-ledger stack up)"` sets up the current shell. '
            "The first run needs java 17+ and mvn to fetch Kafka; later runs work offline."
        ),
    )
    up.add_argument(
        "--replicated",
        action="store_true",
        help=(
            "three Kafka brokers (KRaft; node i on KAFKA_PORT+10*(i-1), topics RF 3, min ISR 2) and a PostgreSQL "
            "hot standby on PG_PORT+1; also prints VOTE_LEDGER_TOPIC_REPLICATION=3 and _MIN_INSYNC=2. A home is "
            "one mode or the other: the other is refused"
        ),
    )
    up.set_defaults(func=_up)

    down = actions.add_parser(
        "down",
        parents=[common],
        help="stop Kafka and PostgreSQL (data is kept)",
        description="Stop both services; data and logs stay in the home folder. Safe to repeat.",
    )
    down.set_defaults(func=_down)

    status = actions.add_parser(
        "status",
        parents=[common],
        help="show whether Kafka and PostgreSQL run, where, and their files",
        description=(
            "Print a table of both services (state, pid, address, data dir, log file). "
            f"Exits 0 when both run, {EXIT_NOT_RUNNING} otherwise."
        ),
    )
    add_format(status)
    status.set_defaults(func=_status)

    promote = actions.add_parser(
        "promote",
        parents=[common],
        help="fail over: promote a replicated stack's PostgreSQL standby; print exports pointing at it",
        description=(
            "Promote the hot standby of a stack started with --replicated to a primary (pg_ctl promote, waits "
            "until it leaves recovery) and print the export lines with every DSN on the standby's port. Stop "
            "the services first, eval the output, then start them again. Nothing committed is lost: replication "
            "is synchronous. On a home promoted before and stopped since, it starts the brokers and the promoted "
            "server and prints the same export lines."
        ),
    )
    promote.set_defaults(func=_promote)

    principal = actions.add_parser(
        "principal",
        help="manage the running stack's Kafka principals (SCRAM users and their ACLs)",
        description="Manage the Kafka principals of the running local stack.",
    )
    principal_actions = principal.add_subparsers(dest="principal_action", required=True, metavar="ACTION")
    add = principal_actions.add_parser(
        "add",
        parents=[common],
        help="create a SCRAM user with its role's ACLs; print its login once",
        description=(
            "Create (or give a new password to) a SCRAM-SHA-512 user on the running stack's Kafka and grant "
            "it its role's ACLs on the topics of VOTE_LEDGER_TOPIC_PREFIX: channel (write votes.submissions, "
            "read votes.decisions, consumer groups named NAME.<anything>), admin (write and read meetings.admin) "
            "or ledger (read both inputs, write ledger.parked, ledger.heads and votes.decisions, its consumer "
            "group VOTE_LEDGER_CONSUMER_GROUP). Prints the login once, as an export line of the role's "
            "variable; it is not stored: hand it to the principal's owner. A name that is a prefix of the "
            "ledger's consumer group or of another principal's name (or has one as a prefix) is refused."
        ),
    )
    add.add_argument("name", help="the principal's user name (letters, digits, '.', '_', '-'; e.g. channel-acme)")
    add.add_argument("--role", required=True, choices=("channel", "admin", "ledger"), help="what it may do")
    add.set_defaults(func=_principal_add)


def _config(args: argparse.Namespace, replicated: bool | None = None) -> Any:
    from services.devtools.stack import StackConfig

    return StackConfig.from_env(
        replicated=replicated,
        home=args.home,
        cache=args.cache,
        kafka_port=args.kafka_port,
        kafka_controller_port=args.kafka_controller_port,
        pg_port=args.pg_port,
    )


def _up(args: argparse.Namespace) -> int:
    from services.devtools.stack import stack_up

    cfg = _config(args, replicated=args.replicated)
    endpoints = stack_up(cfg, replicated=args.replicated)
    _print_exports(endpoints)
    if args.replicated:
        reader = _standby_reader(cfg)
        if reader:
            print(f"# readers on the standby: export VOTE_LEDGER_PG_READER_DSN={shlex.quote(reader)}")
    return 0


def _print_exports(endpoints: Any) -> None:
    for name, value in endpoints.exports().items():
        print(f"export {name}={shlex.quote(value)}")


def _standby_reader(cfg: Any) -> str | None:
    try:
        from services.devtools.stack import postgres_standby
    except ImportError:  # no standby in this version: nothing to point readers at
        return None
    reader: str | None = postgres_standby.standby_dsns(cfg).pg_reader_dsn
    return reader


def _promote(args: argparse.Namespace) -> int:
    from services.devtools.stack import promote

    _print_exports(promote(_config(args)))
    return 0


def _down(args: argparse.Namespace) -> int:
    from services.devtools.stack import stack_down

    stack_down(_config(args))
    return 0


def _principal_add(args: argparse.Namespace) -> int:
    from services.devtools.stack import add_principal
    from services.settings import variable

    password = add_principal(_config(args), args.name, args.role)
    print(f"export {variable(f'kafka_{args.role}_login')}={shlex.quote(f'{args.name}:{password}')}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from services.devtools.stack import stack_status

    info = stack_status(_config(args))
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        print(_table(info))
    both = info["kafka"]["running"] and info["postgres"]["running"]
    if "standby" in info and "old_primary" not in info:  # a promoted home is its promoted server alone
        both = both and info["standby"]["running"]
    return 0 if both else EXIT_NOT_RUNNING


def _table(info: dict[str, Any]) -> str:
    header = ("SERVICE", "STATE", "PID", "ADDRESS", "DATA DIR", "LOG FILE")
    rows = [header]
    services = [(f"kafka-{node['node']}", node) for node in info.get("kafka_nodes", [])] or [("kafka", info["kafka"])]
    services.append(("postgres", info["postgres"]))
    if "old_primary" in info:  # promoted: "postgres" is the promoted server, the old primary is listed apart
        services.append(("pg-old-primary", info["old_primary"]))
    elif "standby" in info:
        services.append(("pg-standby", info["standby"]))
    for name, svc in services:
        state = "running" if svc["running"] else "stopped"
        details = [svc["role"]] if svc.get("role") == "primary (promoted)" else []
        if svc.get("role") == "standby" and svc["running"]:
            details.append(f"{svc.get('state') or 'not connected'}, sync_state {svc.get('sync_state') or '-'}")
        if svc.get("lag_bytes") is not None:
            details.append(f"replay lag {svc['lag_bytes']} bytes")
        if details:
            state += f" ({'; '.join(details)})"
        rows.append(
            (
                name,
                state,
                str(svc.get("pid") or "-"),
                str(svc.get("address", "-")),
                str(svc.get("data_dir", "-")),
                str(svc.get("log_file", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    # Pad every column but the last, so long log paths do not drag trailing spaces.
    lines = ["  ".join([*map(str.ljust, row[:-1], widths), row[-1]]) for row in rows]
    libs = "ready" if info["kafka"]["libs_ready"] else "not fetched yet"
    lines += [
        "",
        f"kafka version  {info['kafka_version']} (jars {libs}: {info['kafka']['libs_dir']})",
        f"home           {info['home']}",
        f"cache          {info['cache']}",
        f"postgres dsn   {info['postgres']['dsn']} (and vl_ledger, vl_projector, vl_reader)",
        f"passwords      {info['postgres']['passwords']}",
        f"kafka logins   {info['kafka']['logins']}",
    ]
    return "\n".join(lines)

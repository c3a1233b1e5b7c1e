"""`vote-ledger db migrate|harden`: create or upgrade the schema; close what PUBLIC may run."""

from __future__ import annotations

import argparse

from services.cli import UserError
from services.cli.common import pg_dsn, run
from services.settings import settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `db` command."""
    db = sub.add_parser("db", help="database schema", description="Manage the PostgreSQL schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    m = db_sub.add_parser(
        "migrate",
        help="apply pending migrations (idempotent)",
        description="Apply the SQL migrations shipped with vote-ledger, once each. They also"
        " create the group roles vote_ledger_ledger, vote_ledger_projector and"
        " vote_ledger_reader and their grants; give a login one with e.g."
        " `GRANT vote_ledger_reader TO dashboard;`. Run it always as the same"
        " login, the schema's owner (VOTE_LEDGER_PG_DSN).",
    )
    m.set_defaults(func=_migrate)
    h = db_sub.add_parser(
        "harden",
        help="as a superuser: close large objects and advisory locks to readers",
        description="Revoke from PUBLIC the pg_catalog functions that create large objects or"
        " take advisory locks, and grant the locks back to the ledger, the"
        " projector and the database owner: a reader login could otherwise hold"
        " the ledger's append lock. Needs a superuser: VOTE_LEDGER_PG_ADMIN_DSN,"
        " else VOTE_LEDGER_PG_DSN. `stack up` does this for its database."
        " Idempotent.",
    )
    h.set_defaults(func=_harden)


def _migrate(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import connect
    from services.adapters.postgres.migrate import migrate

    async def go() -> int:
        conn = await connect(pg_dsn())
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print("applied: " + ", ".join(applied) if applied else "schema is up to date")
        return 0

    return run(go())


def _harden(args: argparse.Namespace) -> int:
    from services.adapters.postgres.connect import connect
    from services.adapters.postgres.logins import harden_database

    current = settings()
    variable = "VOTE_LEDGER_PG_ADMIN_DSN" if current.pg_admin_dsn else "VOTE_LEDGER_PG_DSN"
    dsn = current.pg_admin_dsn or pg_dsn(current)

    async def go() -> int:
        conn = await connect(dsn)
        try:
            if conn.get_settings().is_superuser != "on":
                raise UserError(
                    f"{variable} is not a superuser: only a superuser may change the grants of"
                    " pg_catalog functions; set VOTE_LEDGER_PG_ADMIN_DSN to one"
                )
            await harden_database(conn)
        finally:
            await conn.close()
        print("large objects and advisory locks closed to PUBLIC; locks granted to the ledger, projector, owner")
        return 0

    return run(go())

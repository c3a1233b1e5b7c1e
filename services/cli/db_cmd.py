"""`vote-ledger db migrate`: create or upgrade the log and projection schema."""

from __future__ import annotations

import argparse

from services.cli.common import pg_dsn, run
from services.postgres.connect import connect
from services.postgres.migrate import migrate


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `db` command."""
    db = sub.add_parser("db", help="database schema", description="Manage the PostgreSQL schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    m = db_sub.add_parser("migrate", help="apply pending migrations (idempotent)",
                          description="Apply the SQL migrations shipped with vote-ledger, once each. They also"
                                      " create the group roles vote_ledger_ledger, vote_ledger_projector and"
                                      " vote_ledger_reader and their grants; give a login one with e.g."
                                      " `GRANT vote_ledger_reader TO dashboard;`. Run it always as the same"
                                      " login, the schema's owner.")
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    async def go() -> int:
        conn = await connect(pg_dsn())
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print("applied: " + ", ".join(applied) if applied else "schema is up to date")
        return 0

    return run(go())

"""`vote-ledger api token issue|list|revoke` and `vote-ledger api openapi`: the HTTP API's tokens and contract.

Tokens are written with the owner's login (VOTE_LEDGER_PG_DSN, as `db migrate`): no service role may
write api_tokens (017_api_tokens.sql), so the API itself can never mint or revive one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from services.cli import UserError
from services.cli.common import add_format, pg_dsn, run, whole_number

ROLES = ("ops", "auditor")  # services.api.auth.ROLES; restated so parsing imports no web framework
MAX_EXPIRY_DAYS = 3650


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `api` command."""
    api = sub.add_parser(
        "api",
        help="the HTTP API's bearer tokens; its OpenAPI document",
        description="Issue, list and revoke the HTTP API's bearer tokens (as the database owner,"
        " VOTE_LEDGER_PG_DSN), or print the API's OpenAPI document. The API itself runs with"
        " `vote-ledger services run api`.",
    )
    actions = api.add_subparsers(dest="api_action", required=True, metavar="ACTION")
    token = actions.add_parser("token", help="issue, list or revoke bearer tokens", description="Bearer tokens.")
    tokens = token.add_subparsers(dest="token_action", required=True, metavar="ACTION")

    issue = tokens.add_parser(
        "issue",
        help="issue a token (printed once, on stdout)",
        description="Issue a bearer token: its text is printed once on stdout and never again (only its"
        " SHA-256 is stored); its id, for `list` and `revoke`, on stderr.",
    )
    issue.add_argument("--name", required=True, help="who or what holds it, e.g. ops-dashboard")
    issue.add_argument(
        "--role", required=True, choices=ROLES, help="ops: aggregates and status; auditor: also audit history/events"
    )
    issue.add_argument(
        "--expires-in",
        type=whole_number(1, MAX_EXPIRY_DAYS),
        metavar="DAYS",
        help="the token stops working after DAYS days (default: never)",
    )
    issue.set_defaults(func=_issue)

    lister = tokens.add_parser(
        "list", help="every token issued (never a secret)", description="Every token: id, name, role, dates."
    )
    add_format(lister)
    lister.set_defaults(func=_list)

    revoke = tokens.add_parser(
        "revoke",
        help="revoke a token (from the API's next request on)",
        description="Revoke a token: the API refuses it from its next request on, and closes its open event"
        " streams within 30 s. A revocation is final.",
    )
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="the token's id, as `api token list` shows it")
    revoke.set_defaults(func=_revoke)

    openapi = actions.add_parser(
        "openapi",
        help="print the API's OpenAPI document (JSON)",
        description="Print the OpenAPI document generated from the API's handlers; `make contract` writes it"
        " to docs/openapi.json.",
    )
    openapi.set_defaults(func=_openapi)


async def _owner(action):
    from services.adapters.postgres.connect import connect

    conn = await connect(pg_dsn())
    try:
        return await action(conn)
    finally:
        await conn.close()


def _issue(args: argparse.Namespace) -> int:
    from services.adapters.postgres import api_tokens
    from services.api.auth import new_token

    name = args.name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise UserError("api token issue: --name must be 1 to 200 printable characters")
    text, token_id, digest = new_token()
    expires = datetime.now(UTC) + timedelta(days=args.expires_in) if args.expires_in else None

    async def go(conn) -> int:
        row = await api_tokens.issue(conn, token_id, name, args.role, digest, expires)
        print(text)  # the only place the token ever appears
        until = f", expires {row['expires_at'].isoformat()}" if row["expires_at"] else ""
        print(f"vote-ledger: issued token {token_id} ({args.role}, {name}{until})", file=sys.stderr)
        return 0

    return run(_owner(go))


def _row(r: Any) -> dict[str, Any]:
    return {
        "token_id": r["token_id"],
        "name": r["name"],
        "role": r["role"],
        "issued_at": r["issued_at"].isoformat(),
        "expires_at": r["expires_at"].isoformat() if r["expires_at"] else None,
        "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
    }


def _list(args: argparse.Namespace) -> int:
    from services.adapters.postgres import api_tokens

    async def go(conn) -> int:
        rows = [_row(r) for r in await api_tokens.tokens(conn)]
        if args.format == "json":
            print(json.dumps({"tokens": rows}, indent=2))
            return 0
        from projections.printable import escaped

        print(f"{'Token id':<14}{'Role':<9}{'Issued at':<34}{'State':<44}Name")
        now = datetime.now(UTC)
        for r in rows:
            if r["revoked_at"]:
                state = f"revoked {r['revoked_at']}"
            elif r["expires_at"] and datetime.fromisoformat(r["expires_at"]) <= now:
                state = f"expired {r['expires_at']}"
            else:
                state = f"expires {r['expires_at']}" if r["expires_at"] else "in force"
            print(f"{r['token_id']:<14}{r['role']:<9}{r['issued_at']:<34}{state:<44}{escaped(r['name'])}")
        return 0

    return run(_owner(go))


_TOKEN_ID = re.compile(r"[0-9a-f]{12}")
_TOKEN_TEXT = re.compile(r"vl_([0-9a-f]{12})_.*", re.DOTALL)  # services.api.auth's token form, loosely


def _revoke(args: argparse.Namespace) -> int:
    from services.adapters.postgres import api_tokens

    # Never echo what is not an id: it may be a whole token, whose secret would land in a terminal's scrollback
    # or a shell's log. A whole token names its id, which is public.
    if not _TOKEN_ID.fullmatch(args.token_id):
        if (token := _TOKEN_TEXT.fullmatch(args.token_id)) is not None:
            raise UserError(
                "api token revoke: that looks like a token, not a token id; give the 12-hex-digit id"
                f" (this token's is {token[1]})"
            )
        raise UserError("api token revoke: a token id is 12 lower-case hex digits (see `vote-ledger api token list`)")

    async def go(conn) -> int:
        row = await api_tokens.revoke(conn, args.token_id)
        if row is None:
            raise UserError(f"api token revoke: no token {args.token_id!r} (see `vote-ledger api token list`)")
        print(f"revoked {row['token_id']} ({row['role']}, {row['name']}) at {row['revoked_at'].isoformat()}")
        return 0

    return run(_owner(go))


def _openapi(args: argparse.Namespace) -> int:
    from services.api.app import openapi_document

    sys.stdout.write(openapi_document())
    return 0

"""Bearer tokens against a real PostgreSQL: every route's 401 and 403, and `vote-ledger api token ...`.

The routes are enumerated from the app (tests/unit/test_api_auth.py), so a route added later is covered.
"""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from services.adapters.postgres import api_tokens
from services.adapters.postgres.connect import LEDGER_ROLE, connect
from services.api.auth import new_token, secret_digest
from tests.factories import register_event, small_meeting
from tests.integration.helpers import api_token, append, cli, log_row, running_api
from tests.unit.test_api_auth import OPEN, required_role, routes, url

pytestmark = pytest.mark.integration


async def _status(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> int:
    """The status a request gets (a stream is opened and closed at once: only its status counts)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.stream(method, path, headers=headers) as response:
        return response.status_code


async def test_every_route_refuses_unknown_wrong_revoked_and_expired_tokens_and_ops_on_the_audit_routes(settings):
    ledger = await connect(settings.pg_dsn, LEDGER_ROLE)
    await append(ledger, [log_row(small_meeting()), log_row(register_event())])
    await ledger.close()
    ops, _ = await api_token(settings, "ops")
    auditor, _ = await api_token(settings, "auditor")
    revoked, revoked_id = await api_token(settings, "auditor")
    owner = await asyncpg.connect(settings.pg_dsn)
    try:
        await owner.execute("UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE token_id = $1", revoked_id)
        expired, expired_id, digest = new_token()
        await owner.execute(
            "INSERT INTO api_tokens (token_id, name, role, secret_sha256, issued_at, expires_at)"
            " VALUES ($1, 'old', 'auditor', $2, now() - interval '2 days', now() - interval '1 day')",
            expired_id,
            digest,
        )
    finally:
        await owner.close()
    wrong_secret = auditor[: -len("x")] + ("x" if auditor[-1] != "x" else "y")  # a real id, another secret
    unknown = new_token()[0]
    assert secret_digest(wrong_secret.rsplit("_", 1)[1]) != secret_digest(auditor.rsplit("_", 1)[1])

    checked = []
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        for template, method, route in routes():
            path = url(template)
            if template in OPEN:
                assert await _status(client, method, path, None) == 200, template
                continue
            for token in (unknown, wrong_secret, revoked, expired):
                response = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401, (template, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["code"] == "unauthenticated"
            role = required_role(route)
            ops_status = await _status(client, method, path, ops)
            if role == "auditor":
                response = await client.request(method, path, headers={"Authorization": f"Bearer {ops}"})
                assert (response.status_code, response.json()["code"]) == (403, "forbidden"), template
            else:
                assert ops_status not in (401, 403) and ops_status < 500, (template, ops_status)
            auditor_status = await _status(client, method, path, auditor)
            assert auditor_status not in (401, 403) and auditor_status < 500, (template, auditor_status)
            checked.append(template)
    assert len(checked) >= 11  # the design's routes, at least


async def test_the_token_cli_prints_a_token_once_lists_no_secret_and_a_revocation_counts_at_the_next_request(
    settings,
):
    code, out, err = await cli(settings, "api", "token", "issue", "--name", "ops dashboard", "--role", "ops")
    assert code == 0, err
    token = out.strip()
    token_id = token.split("_")[1]
    assert token.startswith("vl_") and len(token) == 59 and token_id in err and token not in err
    code, out, _ = await cli(
        settings, "api", "token", "issue", "--name", "auditor", "--role", "auditor", "--expires-in", "7"
    )
    assert code == 0
    code, listed, err = await cli(settings, "api", "token", "list", "--json")
    assert code == 0, err
    tokens = json.loads(listed)["tokens"]
    assert [(t["name"], t["role"], t["revoked_at"]) for t in tokens] == [
        ("ops dashboard", "ops", None),
        ("auditor", "auditor", None),
    ]
    assert tokens[0]["expires_at"] is None and tokens[1]["expires_at"] is not None
    assert token.split("_", 2)[2] not in listed and "sha256" not in listed

    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        headers = {"Authorization": f"Bearer {token}"}
        first = await client.get("/v1/meetings", headers=headers)
        assert first.status_code == 200 and first.json()["meetings"] == []
        code, out, err = await cli(settings, "api", "token", "revoke", token_id)
        assert code == 0 and token_id in out, err
        after = await client.get("/v1/meetings", headers=headers)
        assert after.status_code == 401 and after.json()["code"] == "unauthenticated"

    code, listed, _ = await cli(settings, "api", "token", "list")
    assert code == 0 and "revoked" in listed and "in force" not in listed.split("\n")[1]
    code, _, err = await cli(settings, "api", "token", "revoke", "0123456789ab")
    assert code == 2 and err.startswith("vote-ledger: api token revoke: no token") and err.count("\n") == 1


async def test_a_revocation_is_final_and_a_token_may_not_be_changed_even_by_the_owner(settings):
    _, token_id = await api_token(settings, "ops")
    owner = await asyncpg.connect(settings.pg_dsn)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await owner.execute("UPDATE api_tokens SET role = 'auditor' WHERE token_id = $1", token_id)
        # An expired token may not be revived: neither its expiry nor its issue time (which bounds it) moves.
        _, expired_id, digest = new_token()
        await owner.execute(
            "INSERT INTO api_tokens (token_id, name, role, secret_sha256, issued_at, expires_at)"
            " VALUES ($1, 'old', 'ops', $2, now() - interval '2 days', now() - interval '1 day')",
            expired_id,
            digest,
        )
        for change in (
            "expires_at = NULL",
            "expires_at = now() + interval '1 day'",
            "issued_at = now() - interval '3 days'",
            "name = 'renamed'",
            "secret_sha256 = sha256('another')",
        ):
            with pytest.raises(asyncpg.IntegrityConstraintViolationError):
                await owner.execute(f"UPDATE api_tokens SET {change} WHERE token_id = $1", expired_id)
        assert not (await api_tokens.lookup(owner, expired_id))["live"]
        await owner.execute("UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE token_id = $1", token_id)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await owner.execute("UPDATE api_tokens SET revoked_at = NULL WHERE token_id = $1", token_id)
        insert = "INSERT INTO api_tokens (token_id, name, role, secret_sha256) VALUES ('0123456789ab', 'x', $1, $2)"
        with pytest.raises(asyncpg.CheckViolationError):
            await owner.execute(insert, "admin", b"\0" * 32)  # no such role
        with pytest.raises(asyncpg.CheckViolationError):
            await owner.execute(insert, "ops", b"plain secret")  # not a SHA-256
    finally:
        await owner.close()

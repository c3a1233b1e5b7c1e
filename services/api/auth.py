"""Bearer tokens: their text form, and the `ops` / `auditor` dependencies every data route declares.

A token is ``vl_<token_id>_<secret>``: token_id 12 lowercase hex characters (public: listed and
revoked by it), secret 43 characters of URL-safe base64 (32 random bytes). The database keeps the
SHA-256 of the secret (017_api_tokens.sql says why no slow hash), looked up on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.adapters.postgres import api_tokens
from services.api.errors import OUTAGES, ApiError

ROLES = ("ops", "auditor")
# What each role may do, as the set of roles that satisfy a route's requirement: auditors see
# everything ops sees, plus a control number's history and the events.
GRANTS = {"ops": {"ops", "auditor"}, "auditor": {"auditor"}}

_TOKEN = re.compile(r"vl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# auto_error=False: a missing header is our 401 (with the challenge and our JSON), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="`vl_<token_id>_<secret>` from `vote-ledger api token issue`")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's public id, its name and its role."""

    token_id: str
    name: str
    role: str


def new_token() -> tuple[str, str, bytes]:
    """A fresh token: (its full text, shown once; its public id; the SHA-256 of its secret, stored)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"vl_{token_id}_{secret}", token_id, secret_digest(secret)


def secret_digest(secret: str) -> bytes:
    """SHA-256 of a token's secret part, as api_tokens stores it."""
    return hashlib.sha256(secret.encode()).digest()


def parse_token(text: str) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token text, else None."""
    match = _TOKEN.fullmatch(text)
    return (match[1], match[2]) if match else None


def unauthenticated(message: str) -> ApiError:
    """A 401 with the Bearer challenge."""
    return ApiError(401, "unauthenticated", message, headers=_CHALLENGE)


async def authenticate(request: Request, text: str | None) -> Caller:
    """The caller a bearer token's text names, looked up now (no cache: a revocation counts at once); else 401."""
    if not text:
        raise unauthenticated("a bearer token is required (Authorization: Bearer vl_...)")
    parsed = parse_token(text)
    if parsed is None:
        raise unauthenticated("malformed bearer token")
    token_id, secret = parsed
    digest = secret_digest(secret)
    async with request.app.state.pool.acquire() as conn:
        row = await api_tokens.lookup(conn, token_id)
    # One answer for unknown, wrong secret, revoked and expired: a caller learns nothing about which ids exist.
    if row is None or not hmac.compare_digest(bytes(row["secret_sha256"]), digest) or not row["live"]:
        verified(request).forget(digest)
        raise unauthenticated("unknown, revoked or expired token")
    caller = Caller(token_id=row["token_id"], name=row["name"], role=row["role"])
    verified(request).remember(digest, caller)
    return caller


# How long a token verified by this process is still taken for /metrics while the database cannot be asked.
METRICS_OUTAGE_GRACE_S = 600.0


class RecentlyVerified:
    """SHA-256 digests of secrets this process verified, with when and whose (never a token itself), in memory.

    /metrics needs the database only for its token check; during a database outage, exactly when its metrics
    matter, it admits a token verified within METRICS_OUTAGE_GRACE_S instead of answering 503.
    """

    def __init__(self, grace_s: float = METRICS_OUTAGE_GRACE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.seen: dict[bytes, tuple[float, Caller]] = {}

    def remember(self, digest: bytes, caller: Caller) -> None:
        """A secret just verified against the database."""
        self.seen[digest] = (self.clock(), caller)
        if len(self.seen) > 1000:  # a bound: tokens are few; drop what has expired
            now = self.clock()
            self.seen = {d: (t, c) for d, (t, c) in self.seen.items() if now - t <= self.grace_s}

    def forget(self, digest: bytes) -> None:
        """A secret the database refused (unknown, revoked, expired): never admitted from memory again."""
        self.seen.pop(digest, None)

    def recent(self, digest: bytes) -> Caller | None:
        """The caller of a secret verified within the grace period, else None."""
        found = self.seen.get(digest)
        if found is None or self.clock() - found[0] > self.grace_s:
            return None
        return found[1]


def verified(request: Request) -> RecentlyVerified:
    """The app's RecentlyVerified (one per process's app)."""
    state = request.app.state
    if getattr(state, "recently_verified", None) is None:
        state.recently_verified = RecentlyVerified()
    return state.recently_verified


def _requiring(role: str):
    """A dependency admitting tokens whose role grants ``role``: 401 without a valid token, 403 with too little."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        caller = await authenticate(request, credentials.credentials if credentials else None)
        if caller.role not in GRANTS[role]:
            raise ApiError(
                403, "forbidden", f"this route needs the {role} role; token {caller.token_id} is {caller.role}"
            )
        request.state.caller = caller
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency


# Route dependencies: `caller: Annotated[Caller, Depends(ops)]`, or dependencies=[Depends(auditor)] on a router.
ops = _requiring("ops")
auditor = _requiring("auditor")


async def metrics_reader(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """/metrics' dependency: as ops, but while the database is unreachable a token this process verified
    within the last 10 minutes is admitted from memory (never one the database refused, nor an unseen one)."""
    text = credentials.credentials if credentials else None
    try:
        caller = await authenticate(request, text)
    except OUTAGES:
        parsed = parse_token(text or "")
        caller = verified(request).recent(secret_digest(parsed[1])) if parsed else None
        if caller is None or parsed is None or caller.token_id != parsed[0]:
            raise
    if caller.role not in GRANTS["ops"]:
        raise ApiError(403, "forbidden", f"this route needs the ops role; token {caller.token_id} is {caller.role}")
    request.state.caller = caller
    return caller

"""Every route of the API refuses a request without a well-formed bearer token (401), but health and the page.

Routes are enumerated from the app itself, so a route added later is covered (or fails here for having
no token requirement). What needs a database (unknown, revoked, expired tokens; 403 by role) is in
tests/integration/test_api_auth.py, against the same enumeration.
"""

from __future__ import annotations

import typing

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from projections.log_row import DECISIONS
from services.api import auth
from services.api.app import create_app
from services.api.conditional import etag
from services.api.routes import audit
from services.settings import Settings

# Routes anyone may call: liveness and readiness (say nothing of the votes), the dashboard's page and
# files (no data: the page asks for a token and calls the API), and the OpenAPI document (the same as
# the published docs/openapi.json).
OPEN = {"/healthz", "/readyz", "/", "/static/{name:path}", "/openapi.json"}
# Path parameters filled in for a request (a meeting and a control number that need not exist).
SAMPLE = {"meeting_id": "m1", "control_number": "R-1", "name": "app.js"}

APP = create_app(Settings())


def routes() -> list[tuple[str, str, typing.Any]]:
    """(path template, method, route) of every route the app serves, from the app itself."""
    found = []
    for context in iter_route_contexts(APP.routes):
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                found.append((context.path, method, context.original_route))
    return found


def url(template: str) -> str:
    """A concrete path for a route template."""
    path = template
    for name, value in SAMPLE.items():
        path = path.replace(f"{{{name}:path}}", value).replace(f"{{{name}}}", value)
    assert "{" not in path, f"no sample value for a parameter of {template}"
    return path


def required_role(route: typing.Any) -> str | None:
    """The role a route's dependencies require (auth.ops or auth.auditor, however deeply nested), or None."""
    pending = list(getattr(route, "dependant", None).dependencies) if hasattr(route, "dependant") else []
    roles = set()
    while pending:
        dependant = pending.pop()
        if dependant.call is auth.auditor:
            roles.add("auditor")
        elif dependant.call in (auth.ops, auth.metrics_reader):  # /metrics: ops, or a recent token in an outage
            roles.add("ops")
        pending += dependant.dependencies
    assert len(roles) <= 1, f"{route} requires both roles"
    return roles.pop() if roles else None


PROTECTED = [pytest.param(path, method, id=f"{method} {path}") for path, method, r in routes() if path not in OPEN]


def test_the_app_has_the_routes_of_the_design_and_each_protected_one_requires_a_role():
    paths = {path for path, _, _ in routes()}
    assert {
        "/v1/meetings",
        "/v1/meetings/{meeting_id}",
        "/v1/meetings/{meeting_id}/tally",
        "/v1/meetings/{meeting_id}/tally/diff",
        "/v1/status",
        "/v1/meetings/{meeting_id}/rejections",
        "/v1/meetings/{meeting_id}/overvotes",
        "/v1/meetings/{meeting_id}/proxies",
        "/v1/meetings/{meeting_id}/report",
        "/v1/meetings/{meeting_id}/audit/history/{control_number:path}",
        "/v1/meetings/{meeting_id}/audit/events",
    } <= paths
    unguarded = [path for path, _, route in routes() if path not in OPEN and required_role(route) is None]
    assert unguarded == [], "routes without a token requirement (add Depends(ops) or Depends(auditor))"
    audit_routes = {path for path, _, route in routes() if required_role(route) == "auditor"}
    assert audit_routes == {
        "/v1/meetings/{meeting_id}/audit/history/{control_number:path}",
        "/v1/meetings/{meeting_id}/audit/events",
    }


@pytest.mark.parametrize(("path", "method"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer vl_0123456789ab_short",
        "Bearer vl_0123456789AB_" + "a" * 43,  # upper-case hex: not an id
    ],
    ids=["none", "empty", "malformed", "basic", "short-secret", "upper-case-id"],
)
def test_every_protected_route_answers_401_with_the_bearer_challenge_without_a_well_formed_token(
    path, method, authorization
):
    headers = {"Authorization": authorization} if authorization else {}
    # No lifespan, so no pool: a request that got as far as looking its token up would fail with 500.
    response = TestClient(APP).request(method, url(path), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"
    assert "\n" not in response.json()["error"]


def test_the_openapi_document_gives_every_protected_route_its_401_and_403_and_bearer_scheme():
    document = APP.openapi()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method, _ in routes():
        if path in OPEN:
            continue
        operation = document["paths"][path.replace(":path", "")][method.lower()]
        assert {"401", "403"} <= set(operation["responses"]), path
        assert "422" not in operation["responses"], f"{path}: a bad query is our 400, not FastAPI's 422"


def test_a_new_token_has_the_designed_form_and_parses_back_to_its_id_and_secret():
    text, token_id, digest = auth.new_token()
    assert len(token_id) == 12 and all(c in "0123456789abcdef" for c in token_id)
    assert text.startswith(f"vl_{token_id}_") and len(text) == len("vl_") + 12 + 1 + 43
    parsed = auth.parse_token(text)
    assert parsed is not None and parsed[0] == token_id
    assert auth.secret_digest(parsed[1]) == digest and len(digest) == 32
    assert auth.new_token()[0] != text
    assert auth.parse_token(text + "x") is None and auth.parse_token(" " + text) is None


def test_the_audit_events_decision_filter_offers_exactly_the_logs_decisions():
    hints = typing.get_type_hints(audit.events, include_extras=True)
    literal = typing.get_args(typing.get_args(hints["decision"])[0])[0]
    assert typing.get_args(literal) == DECISIONS


class _Request:
    """What etag() reads of a request: method, path, query."""

    def __init__(self, path: str, query: list[tuple[str, str]]) -> None:
        from starlette.datastructures import URL, QueryParams

        self.method = "GET"
        self.url = URL(path)
        self.query_params = QueryParams(query)


def test_the_etag_is_the_position_and_a_digest_of_method_path_and_sorted_query():
    a = etag(_Request("/v1/meetings/m1/tally", [("format", "csv"), ("as_of", "3")]), 42)
    b = etag(_Request("/v1/meetings/m1/tally", [("as_of", "3"), ("format", "csv")]), 42)
    assert a == b and a.startswith('"42-') and len(a) == len('"42-') + 16 + 1
    assert etag(_Request("/v1/meetings/m2/tally", [("as_of", "3"), ("format", "csv")]), 42) != a
    assert etag(_Request("/v1/meetings/m1/tally", [("as_of", "3"), ("format", "csv")]), 43) != a
    assert etag(_Request("/v1/meetings/m1/tally", [("as_of", "3"), ("format", "csv")]), 42, (2,)) != a


def test_an_escaped_separator_in_a_query_value_does_not_share_the_tag_of_two_parameters():
    one = etag(_Request("/v1/meetings/m1/audit/events", [("reason", "unsigned&submitted_by=zz")]), 42)
    two = etag(_Request("/v1/meetings/m1/audit/events", [("reason", "unsigned"), ("submitted_by", "zz")]), 42)
    assert one != two
    assert etag(_Request("/v1/meetings/a?b=c", []), 42) != etag(_Request("/v1/meetings/a", [("b", "c")]), 42)


@pytest.mark.parametrize(
    "path",
    ["/v1/meetings/m1/audit/events?reason=%00", "/v1/meetings/m1/audit/history/%00", "/v1/meetings/m%001/tally"],
)
def test_a_nul_character_in_a_path_or_query_parameter_is_a_400_bad_query_before_any_query(path):
    # No lifespan, so no pool: without the check the request would reach the token lookup (or PostgreSQL).
    response = TestClient(APP).get(path, headers={"Authorization": "Bearer vl_0123456789ab_" + "a" * 43})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_query" and "NUL" in response.json()["error"]


def test_a_trailing_slash_is_a_404_not_a_redirect_echoing_the_host_header():
    response = TestClient(APP).get("/v1/meetings/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["code"] == "not_found"


def test_health_answers_head_as_probes_send_it():
    assert TestClient(APP).head("/healthz").status_code == 200
    head_routes = {c.path for c in iter_route_contexts(APP.routes) if "HEAD" in (c.methods or ())}
    assert {"/healthz", "/readyz"} <= head_routes

"""The HTTP metrics' method label takes a fixed set of values, whatever method a client invents."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.observability import metrics
from services.observability.http_metrics import METHODS, OTHER_METHOD, HttpMetrics, method_label


def _series(route: str) -> set[tuple[str, str]]:
    return {
        (sample.labels["method"], sample.labels["status"])
        for family in metrics.API.collect()
        for sample in family.samples
        if sample.name == "vote_ledger_http_requests_total" and sample.labels.get("route") == route
    }


def test_a_known_method_is_its_own_label_and_any_other_is_other():
    assert {method_label(m) for m in METHODS} == METHODS
    assert method_label("FROB") == OTHER_METHOD
    assert method_label("get") == OTHER_METHOD  # methods are case-sensitive (RFC 9110): "get" is not GET


def test_a_hundred_invented_methods_add_one_series_not_a_hundred():
    app = FastAPI()

    @app.get("/probe-methods")
    async def probe() -> dict:
        return {"status": "alive"}

    app.add_middleware(HttpMetrics)
    with TestClient(app) as client:
        for i in range(100):
            assert client.request(f"X{i}FROB", "/probe-methods").status_code == 405
        assert client.get("/probe-methods").status_code == 200
    assert _series("/probe-methods") == {(OTHER_METHOD, "405"), ("GET", "200")}

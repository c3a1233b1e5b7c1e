"""Recording functions, the HTTP metrics middleware and the health app, without I/O."""

from __future__ import annotations

import collections

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from projections.log_row import LogRow, ParkedMessage
from services.observability import metrics
from services.observability.health_app import health_app
from services.observability.http_metrics import UNMATCHED, HttpMetrics
from services.observability.readiness import Backlog, Ready


def _row(decision: str, reason: str | None, topic: str | None) -> LogRow:
    return LogRow("m", "e", "vote.cast", None, None, None, None, decision, reason, "{}", topic, 0, 1)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_each_logged_row_counts_once_under_its_topic_decision_and_reason_and_the_head_is_set():
    before = {
        key: _value(metrics.LEDGER, "vote_ledger_submissions_total", topic=t, decision=d, reason=r)
        for key, (t, d, r) in {
            "accepted": ("unit.votes", "accepted", ""),
            "rejected": ("unit.votes", "rejected", "not_entitled"),
            "ledger": ("", "rejected", "over_entitlement"),
        }.items()
    }
    parked_before = _value(metrics.LEDGER, "vote_ledger_parked_total", reason="malformed_json")
    rows = [
        _row("accepted", None, "unit.votes"),
        _row("accepted", None, "unit.votes"),
        _row("rejected", "not_entitled", "unit.votes"),
        _row("rejected", "over_entitlement", None),  # the ledger's own refusal row (R19): no Kafka source
    ]
    parked = [ParkedMessage("unit.votes", 0, 9, None, b"{", "malformed_json", "not JSON")]
    metrics.record_logged(rows, parked, 1234)
    labels = {"topic": "unit.votes", "decision": "accepted", "reason": ""}
    assert _value(metrics.LEDGER, "vote_ledger_submissions_total", **labels) == before["accepted"] + 2
    labels = {"topic": "unit.votes", "decision": "rejected", "reason": "not_entitled"}
    assert _value(metrics.LEDGER, "vote_ledger_submissions_total", **labels) == before["rejected"] + 1
    labels = {"topic": "", "decision": "rejected", "reason": "over_entitlement"}
    assert _value(metrics.LEDGER, "vote_ledger_submissions_total", **labels) == before["ledger"] + 1
    assert _value(metrics.LEDGER, "vote_ledger_parked_total", reason="malformed_json") == parked_before + 1
    assert _value(metrics.LEDGER, "vote_ledger_log_head") == 1234


def test_the_three_registries_expose_only_their_own_service_series():
    ledger, projector, api = (metrics.metric_names([r]) for r in (metrics.LEDGER, metrics.PROJECTOR, metrics.API))
    assert "vote_ledger_submissions_total" in ledger and "vote_ledger_submissions_total" not in projector | api
    assert "vote_ledger_projector_lag_seconds" in projector and "vote_ledger_projector_lag_seconds" not in ledger | api
    assert "vote_ledger_http_requests_total" in api and "vote_ledger_http_requests_total" not in ledger | projector
    assert {"process_cpu_seconds_total", "python_info"} <= ledger & projector & api


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/meetings/{meeting_id}/tally")
    async def tally(meeting_id: str) -> dict:
        return {"meeting_id": meeting_id}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")

    @app.get("/v1/meetings/{meeting_id}/tally/stream")
    async def stream(meeting_id: str) -> StreamingResponse:
        async def events():
            yield b"event: tally\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_middleware(HttpMetrics)
    return app


def test_http_requests_are_counted_by_route_template_never_by_raw_path():
    route = "/v1/meetings/{meeting_id}/tally"
    before = _value(metrics.API, "vote_ledger_http_requests_total", route=route, method="GET", status="200")
    unmatched = _value(metrics.API, "vote_ledger_http_requests_total", route=UNMATCHED, method="GET", status="404")
    with TestClient(_app(), raise_server_exceptions=False) as client:
        for meeting in ("a", "b", "c"):
            assert client.get(f"/v1/meetings/{meeting}/tally").status_code == 200
        assert client.get("/v1/meetings/a/nothing-here").status_code == 404
        assert client.get("/boom").status_code == 500
    assert _value(metrics.API, "vote_ledger_http_requests_total", route=route, method="GET", status="200") == before + 3
    assert _value(metrics.API, "vote_ledger_http_requests_total", route=UNMATCHED, method="GET", status="404") == (
        unmatched + 1
    )
    assert _value(metrics.API, "vote_ledger_http_requests_total", route="/boom", method="GET", status="500") >= 1
    assert _value(metrics.API, "vote_ledger_http_request_seconds_count", route=route) >= 3
    assert not any("/v1/meetings/a/" in str(s.labels) for f in metrics.API.collect() for s in f.samples)


def test_an_event_stream_is_counted_but_kept_out_of_the_latency_histogram_its_life_is_no_latency():
    route = "/v1/meetings/{meeting_id}/tally/stream"
    before = _value(metrics.API, "vote_ledger_http_requests_total", route=route, method="GET", status="200")
    timed = _value(metrics.API, "vote_ledger_http_request_seconds_count", route=route)  # other tests' 401s are timed
    with TestClient(_app()) as client:
        assert client.get("/v1/meetings/a/tally/stream").status_code == 200
    assert _value(metrics.API, "vote_ledger_http_requests_total", route=route, method="GET", status="200") == before + 1
    assert _value(metrics.API, "vote_ledger_http_request_seconds_count", route=route) == timed


def test_the_health_app_says_alive_ready_or_503_with_the_reason_and_serves_its_registry_only():
    registry = CollectorRegistry()
    Counter("unit_only_here", "a counter of this registry", registry=registry).inc()
    verdicts = [Ready(True, detail={"lag_records": 0}), Ready(False, "Kafka unreachable", {"partitions": 0})]

    async def ready() -> Ready:
        return verdicts.pop(0)

    with TestClient(health_app(registry, ready)) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        assert client.get("/readyz").json() == {"status": "ready", "lag_records": 0}
        refused = client.get("/readyz")
        assert refused.status_code == 503
        assert refused.json() == {"status": "not_ready", "reason": "Kafka unreachable", "partitions": 0}
        scraped = client.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    assert "unit_only_here_total 1.0" in scraped.text
    assert "vote_ledger_submissions_total" not in scraped.text


def test_a_ledger_keeping_up_with_steady_ingest_has_no_old_backlog_though_its_lag_is_never_zero():
    backlog, tp = Backlog(), ("votes", 0)
    # 1,000 records a second; each batch takes what was there 0.1 s earlier: 100 records behind at every sample.
    ages = [backlog.note({tp: (1000 * t // 10 - 100, 1000 * t // 10)}, now=t / 10) for t in range(1, 600)]
    assert max(ages) <= 0.1 + 1e-9


def test_a_ledger_falling_behind_reports_the_oldest_unconsumed_records_age_growing():
    backlog, tp = Backlog(), ("votes", 0)
    # 1,000 records a second published, 500 consumed: after 60 s the oldest waiting arrived 30 s ago.
    age = 0.0
    for t in range(1, 601):
        age = backlog.note({tp: (50 * t, 100 * t)}, now=t / 10)
    assert 29.5 <= age <= 30.5


def test_a_backlog_seen_at_start_counts_from_then_and_a_revoked_partition_is_forgotten():
    backlog = Backlog()
    assert backlog.note({("votes", 0): (0, 5_000)}, now=100.0) == 0.0  # the bound's grace after a start
    assert backlog.note({("votes", 0): (10, 5_000)}, now=140.0) == 40.0
    assert backlog.note({("votes", 1): (0, 0)}, now=141.0) == 0.0  # partition 0 went to another ledger
    assert backlog.samples == {("votes", 1): collections.deque()}

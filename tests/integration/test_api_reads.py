"""The HTTP API answers exactly what the CLI prints for the same database, with its position and ETag.

A meeting goes through the real pipeline (Kafka -> ledger -> log -> projector), then every read route
is compared with the `vote-ledger ... --json` (or CSV, Markdown) it shares its read function with.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from services.adapters.kafka.topics import producer, publish, publish_raw
from tests.factories import cast, small_meeting
from tests.integration.helpers import api_token, cli, run_cli, run_projector, running_api, running_ledger, wait_for
from tests.integration.test_reports import REJECTED, VOTES, register_with_entitlement

pytestmark = pytest.mark.integration

PUBLISHED = [small_meeting(), register_with_entitlement(5000), *VOTES, *REJECTED]
HEAD = len(PUBLISHED)


async def pipeline(settings, events, total: int) -> None:
    """Publish through Kafka, let the ledger log ``total`` rows and the projector fold them."""
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, events)
        if total == HEAD:
            await publish_raw(client, settings.submissions_topic, [(b"R-1", b"not json")])  # one parked
            # Parked (and its offset stored) before the ledger stops: else status shows it waiting, with
            # an idle time that differs between the CLI's read and the API's.
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 1)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", total)
    await run_projector(settings, total)


# (API path, the CLI's arguments, how the CLI's output is read): one pair per read the two share.
PAIRS = [
    ("/v1/meetings", ["meeting", "list", "--json"], json.loads),
    ("/v1/meetings/m1", ["meeting", "show", "--meeting", "m1", "--json"], json.loads),
    ("/v1/meetings/m1/tally", ["tally", "--meeting", "m1", "--json"], json.loads),
    ("/v1/meetings/m1/tally?as_of=3", ["tally", "--meeting", "m1", "--json", "--as-of", "3"], json.loads),
    ("/v1/meetings/m1/tally?format=csv", ["tally", "--meeting", "m1", "--format", "csv"], str),
    ("/v1/meetings/m1/tally/diff?from=2&to=5", ["tally", "diff", "--meeting", "m1", "--json", "2", "5"], json.loads),
    ("/v1/status", ["status", "--json"], json.loads),
    (
        "/v1/meetings/m1/rejections?examples=1",
        ["report", "rejections", "--meeting", "m1", "--json", "--examples", "1"],
        json.loads,
    ),
    ("/v1/meetings/m1/overvotes", ["report", "overvotes", "--meeting", "m1", "--json"], json.loads),
    ("/v1/meetings/m1/proxies", ["proxies", "--meeting", "m1", "--json"], json.loads),
    ("/v1/meetings/m1/report", ["report", "final", "--meeting", "m1", "--format", "json"], json.loads),
    ("/v1/meetings/m1/report?format=md", ["report", "final", "--meeting", "m1"], str),
    ("/v1/meetings/m1/report?format=csv", ["report", "final", "--meeting", "m1", "--format", "csv"], str),
    (
        "/v1/meetings/m1/audit/history/R-1",
        ["audit", "history", "--meeting", "m1", "--control-number", "R-1", "--json"],
        json.loads,
    ),
    (
        "/v1/meetings/m1/audit/events?decision=rejected&limit=5",
        ["audit", "events", "--meeting", "m1", "--decision", "rejected", "--limit", "5", "--json"],
        json.loads,
    ),
]


async def test_every_read_of_the_api_equals_the_clis_output_for_the_same_database(settings):
    await pipeline(settings, PUBLISHED, HEAD)
    token, _ = await api_token(settings, "auditor")
    now = datetime.now(UTC).isoformat()
    pairs = [
        *PAIRS,
        (
            f"/v1/meetings/m1/tally?as_of={now.replace('+', '%2B')}",
            ["tally", "--meeting", "m1", "--json", "--as-of", now],
            json.loads,
        ),
    ]
    outputs = await asyncio.gather(*(run_cli(settings, *args) for _, args, _ in pairs))
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        for (path, _, parse), printed in zip(pairs, outputs, strict=True):
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, (path, response.text)
            if parse is str:  # CSV and Markdown: the same text (print() adds the CLI's last newline)
                assert response.text.rstrip("\n") == printed.rstrip("\n"), path
            else:
                body = response.json()
                cli_json = parse(printed)
                if path == "/v1/status":  # Kafka's clock warning and lag are read afresh; the rest is the database's
                    body.pop("submissions_clock"), cli_json.pop("submissions_clock")
                assert body == cli_json, path
                assert body["as_of_position"] == int(response.headers["x-log-position"]), path
            if path == "/v1/status":  # read afresh each time: no tag, never a 304
                assert "etag" not in response.headers and response.headers["cache-control"] == "private, no-store"
            else:
                assert response.headers["etag"].startswith(f'"{response.headers["x-log-position"]}-'), path
    assert json.loads(outputs[2])["as_of_position"] == HEAD and json.loads(outputs[3])["as_of_position"] == 3


async def test_meeting_show_reads_a_logged_meeting_by_id_as_text_and_names_an_unknown_one_in_one_line(settings):
    await pipeline(settings, PUBLISHED[:2], 2)
    printed = await run_cli(settings, "meeting", "show", "--meeting", "m1")
    assert printed.splitlines()[0].startswith("m1: ") and "register logged: 1/1 chunks" in printed
    assert printed.rstrip().endswith("as of log position 2")
    code, _, err = await cli(settings, "meeting", "show", "--meeting", "nope")
    assert code == 2 and err == "vote-ledger: no meeting 'nope' in the log (was it loaded?)\n"
    code, _, err = await cli(settings, "meeting", "show", "m1", "--meeting", "m1")
    assert code == 2 and "not both" in err and err.count("\n") == 1


async def test_a_poller_gets_304_until_the_projector_moves_and_a_fixed_past_position_is_immutable(settings):
    await pipeline(settings, PUBLISHED, HEAD)
    token, _ = await api_token(settings, "ops")
    auth = {"Authorization": f"Bearer {token}"}
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base, headers=auth) as client:
        first = await client.get("/v1/meetings/m1/tally")
        assert first.status_code == 200 and first.headers["x-log-position"] == str(HEAD)
        assert first.headers["cache-control"] == "private, no-cache"
        tag = first.headers["etag"]
        again = await client.get("/v1/meetings/m1/tally", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert (again.headers["etag"], again.headers["x-log-position"]) == (tag, str(HEAD))
        # Another representation of the same tally has its own tag.
        assert (await client.get("/v1/meetings/m1/tally?format=csv", headers={"If-None-Match": tag})).status_code == 200
        rejections = await client.get("/v1/meetings/m1/rejections")
        log_tag = rejections.headers["etag"]
        assert (await client.get("/v1/meetings/m1/rejections", headers={"If-None-Match": log_tag})).status_code == 304

        past = await client.get("/v1/meetings/m1/tally?as_of=4")
        assert past.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert past.headers["x-log-position"] == "4" and past.json()["as_of_position"] == 4

        await pipeline(settings, [cast("R-9", {"2": "against"})], HEAD + 1)
        moved = await client.get("/v1/meetings/m1/tally", headers={"If-None-Match": tag})
        assert moved.status_code == 200 and moved.headers["x-log-position"] == str(HEAD + 1)
        assert moved.json()["as_of_position"] == HEAD + 1 and moved.headers["etag"] != tag
        log_moved = await client.get("/v1/meetings/m1/rejections", headers={"If-None-Match": log_tag})
        assert log_moved.status_code == 200 and log_moved.headers["x-log-position"] == str(HEAD + 1)
        still = await client.get("/v1/meetings/m1/tally?as_of=4", headers={"If-None-Match": past.headers["etag"]})
        assert still.status_code == 304


async def test_a_message_parked_under_a_fixed_head_changes_the_rejections_tag_and_status_is_never_304(settings):
    await pipeline(settings, PUBLISHED, HEAD)
    token, _ = await api_token(settings, "ops")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        auth = {"Authorization": f"Bearer {token}"}
        before = await client.get("/v1/meetings/m1/rejections", headers=auth)
        status = await client.get("/v1/status", headers=auth)
        assert before.json()["parked_overall"] == 1 and status.json()["parked"] == 1
        async with running_ledger(settings), producer(settings) as kafka:
            await publish_raw(kafka, settings.submissions_topic, [(b"R-2", b"still not json")])
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 2)
        after = await client.get(
            "/v1/meetings/m1/rejections", headers={**auth, "If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200 and after.headers["x-log-position"] == before.headers["x-log-position"]
        assert after.json()["parked_overall"] == 2 and after.headers["etag"] != before.headers["etag"]
        # Status carries no tag: whatever a client sends, it gets the current numbers.
        again = await client.get("/v1/status", headers={**auth, "If-None-Match": f'"{HEAD}-0000000000000000", *'})
        assert again.status_code == 200 and again.json()["parked"] == 2 and "etag" not in again.headers


async def test_if_none_match_any_does_not_hide_an_unknown_meeting_behind_a_304(settings):
    await pipeline(settings, PUBLISHED[:2], 2)
    token, _ = await api_token(settings, "auditor")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        headers = {"Authorization": f"Bearer {token}", "If-None-Match": "*"}
        for path in ("/v1/meetings/nope", "/v1/meetings/nope/tally", "/v1/meetings/nope/rejections"):
            response = await client.get(path, headers=headers)
            assert (response.status_code, response.json()["code"]) == (404, "unknown_meeting"), path
        # Only the exact tag of the answer makes a 304.
        assert (await client.get("/v1/meetings/m1", headers=headers)).status_code == 200


async def test_errors_are_one_json_line_with_a_code_and_no_trace(settings):
    await pipeline(settings, PUBLISHED[:2], 2)
    token, _ = await api_token(settings, "auditor")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        auth = {"Authorization": f"Bearer {token}"}
        cases = {
            "/v1/meetings/nope/tally": (404, "unknown_meeting"),
            "/v1/meetings/nope": (404, "unknown_meeting"),
            "/v1/meetings/nope/rejections": (404, "unknown_meeting"),
            "/v1/meetings/nope/audit/events": (404, "unknown_meeting"),
            "/v1/meetings/m1/tally?as_of=yesterday": (400, "bad_as_of"),
            "/v1/meetings/m1/tally?as_of=2023-12-14T20:00:00": (400, "bad_as_of"),  # no offset: ambiguous
            "/v1/meetings/m1/tally/diff?from=1&to=x": (400, "bad_to"),
            "/v1/meetings/m1/tally/diff?from=1": (400, "bad_query"),
            "/v1/meetings/m1/tally?format=xml": (400, "bad_query"),
            "/v1/meetings/m1/audit/events?limit=0": (400, "bad_query"),
            "/v1/meetings/m1/audit/events?received_from=soon": (400, "bad_received_from"),
            "/v1/meetings/m1/proxies?as_of=5": (400, "bad_as_of"),
            "/v1/meetings/m1/report?format=csv&preliminary=true": (400, "bad_format"),
            "/v1/nothing": (404, "not_found"),
        }
        for path, (status, code) in cases.items():
            response = await client.get(path, headers=auth)
            assert (response.status_code, response.json()["code"]) == (status, code), (path, response.text)
            message = response.json()["error"]
            assert "\n" not in message and "Traceback" not in message and "postgresql://" not in message, path
        assert (await client.get("/v1/meetings/m1/tally", headers=auth)).status_code == 200


async def test_a_database_that_went_away_is_a_503_that_names_no_dsn(settings):
    from services.adapters.postgres.connect import READER_ROLE, pool_as
    from services.api.app import create_app

    token, _ = await api_token(settings, "ops")
    pool = await pool_as(settings, READER_ROLE, size=1)
    await pool.close()  # as if PostgreSQL had gone: every acquire fails
    transport = httpx.ASGITransport(app=create_app(settings, pool=pool), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/v1/meetings/m1/tally", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["code"]) == (503, "database_unavailable")
    assert "://" not in response.json()["error"] and settings.pg_reader_dsn not in response.text


async def test_status_with_kafka_unreachable_or_no_kafka_login_is_a_503_in_one_line_not_a_500(settings):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    token, _ = await api_token(settings, "ops")
    auth = {"Authorization": f"Bearer {token}"}
    no_login = {f"kafka_{role}_login": None for role in ("operator", "ledger")}
    cases = [
        (settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed}"}), "kafka_unavailable"),
        (settings.model_copy(update=no_login), "misconfigured"),
    ]
    for changed, code in cases:
        async with running_api(changed) as base, httpx.AsyncClient(base_url=base, headers=auth) as client:
            response = await client.get("/v1/status")
            assert (response.status_code, response.json()["code"]) == (503, code), response.text
            message = response.json()["error"]
            assert "\n" not in message and "Traceback" not in message and "://" not in message
            for login in ("kafka_operator_login", "kafka_ledger_login", "kafka_channel_login"):
                secret = getattr(settings, login)
                assert secret is None or secret.get_secret_value().partition(":")[2] not in response.text
            # The database's reads still answer.
            assert (await client.get("/v1/meetings")).status_code == 200


async def test_the_final_report_of_an_incomplete_register_is_refused_as_report_final_refuses_it_unless_preliminary(
    settings,
):
    from tests.integration.test_register_completeness import DECLARED, REGISTERED, chunk

    events = [small_meeting(register=DECLARED), chunk(0, REGISTERED), cast("R-1", {"2": "for"}, event_id="v-r1")]
    await pipeline(settings, events, 3)
    token, _ = await api_token(settings, "ops")
    code, _, err = await cli(settings, "report", "final", "--meeting", "m1", "--format", "json")
    assert code == 2
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for form in ("json", "md", "csv"):
            refused = await client.get(f"/v1/meetings/m1/report?format={form}", headers=auth)
            assert (refused.status_code, refused.json()["code"]) == (409, "register_incomplete")
            # The same sentence as the CLI's, but for how to ask for a preliminary report.
            assert refused.json()["error"].split("; ")[0] == err.removeprefix("vote-ledger: ").split("; ")[0]
        preliminary = await client.get("/v1/meetings/m1/report?preliminary=true", headers=auth)
        assert preliminary.status_code == 200 and preliminary.json()["preliminary"] is True
        printed = await run_cli(settings, "report", "final", "--meeting", "m1", "--preliminary", "--json")
        assert preliminary.json() == json.loads(printed)


async def test_a_rebuild_at_the_same_checkpoint_changes_the_tag_so_a_poller_gets_the_rebuilt_tally(settings):
    await pipeline(settings, PUBLISHED, HEAD)
    token, _ = await api_token(settings, "ops")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        auth = {"Authorization": f"Bearer {token}"}
        before = await client.get("/v1/meetings/m1/tally", headers=auth)
        await run_cli(settings, "projections", "rebuild", "--meeting", "m1", "--quiet")
        after = await client.get("/v1/meetings/m1/tally", headers={**auth, "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["x-log-position"] == before.headers["x-log-position"]
    assert after.headers["etag"] != before.headers["etag"] and after.json() == before.json()

"""Every meeting id the loader accepts is reachable through the API, and a tally asked for before the meeting is
a 404 that says where the meeting starts.

Ids may hold '/' and '%', or be '..' (events/schema.py: any 1 to 200 characters). A client encodes the id as
one path segment (encodeURIComponent); the routes of `a/b` and of a meeting named `a/b/tally` do not mix.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from services.adapters.postgres.connect import connect
from tests.factories import register_event, small_meeting
from tests.integration.helpers import api_token, append, log_row, run_projector, running_api

pytestmark = pytest.mark.integration

IDS = ["a/b", "a/b/tally", "..", "50%", "x%2Fy", "m1"]


def segment(meeting_id: str) -> str:
    """The id as one path segment, dots too (a client library removes a literal '..' segment)."""
    return quote(meeting_id, safe="").replace(".", "%2E")


async def test_meetings_with_slashes_dots_and_percent_signs_in_their_ids_are_each_reachable(settings):
    rows = []
    for meeting_id in IDS:
        rows += [
            log_row(small_meeting(meeting_id=meeting_id, event_id=f"meeting-{meeting_id}")),
            log_row(register_event(meeting_id=meeting_id)),
        ]
    conn = await connect(settings.pg_dsn)
    try:
        await append(conn, rows)
    finally:
        await conn.close()
    await run_projector(settings, len(rows))
    token, _ = await api_token(settings, "ops")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for number, meeting_id in enumerate(IDS):
            summary = await client.get(f"/v1/meetings/{segment(meeting_id)}")
            assert summary.status_code == 200 and summary.json()["meeting_id"] == meeting_id, summary.text
            tally = await client.get(f"/v1/meetings/{segment(meeting_id)}/tally")
            assert tally.status_code == 200, (meeting_id, tally.text)
            assert tally.json()["meeting_id"] == meeting_id and "items" in tally.json()
            # Before the meeting was logged: a 404 naming the position asked for and where the meeting starts.
            early = await client.get(f"/v1/meetings/{segment(meeting_id)}/tally", params={"as_of": 2 * number})
            assert early.status_code == 404 and early.json()["code"] == "unknown_meeting"
            assert early.json()["error"] == (
                f"no meeting {meeting_id!r} in the log at position {2 * number}"
                f" (it was first logged at position {2 * number + 1})"
            )
        # The tally of `a/b` is not the summary of `a/b/tally`, nor the other way round.
        assert "items" in (await client.get("/v1/meetings/a%2Fb/tally")).json()
        assert (await client.get("/v1/meetings/a%2Fb%2Ftally")).json()["meeting_id"] == "a/b/tally"
        # An id never logged is a 404 like before.
        missing = await client.get("/v1/meetings/nope%2Fx/tally", params={"as_of": 1})
        assert missing.status_code == 404 and missing.json()["error"] == "no meeting 'nope/x' in the log"

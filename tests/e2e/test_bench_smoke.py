"""The benchmark at toy size, through its command: every measurement runs and the table renders.

The full run (a million submissions) is not part of `make test`; this keeps it from rotting.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from services.cli.bench_cmd import README_END, README_START

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


async def test_the_benchmark_measures_ours_the_limits_and_the_peers_and_writes_the_table(
    vote_ledger, settings, tmp_path
):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold table\n{README_END}\n\nafter\n")
    out = tmp_path / "bench"
    scratch_before = await _scratch_databases(settings.pg_dsn)

    done = vote_ledger.run(
        "bench",
        "--events",
        "3000",
        "--positions",
        "2000",
        "--scale",
        "1000",
        "--latency-rate",
        "400",
        "--latency-seconds",
        "3",
        "--meetings-events",
        "500",
        "--out",
        str(out),
        "--readme",
        str(readme),
        timeout=840,
    )

    r = json.loads((out / "results.json").read_text())
    assert r["workload"]["submissions"] == 3000 and r["workload"]["positions"] == 2000
    ingest = r["ingest"]
    assert ingest["log_rows"] == 3000 + r["workload"]["admin_events"]
    assert ingest["accepted"] + ingest["rejected"] == ingest["log_rows"] and ingest["submissions_per_s"] > 0
    assert ingest["cpu_seconds"]["ledger"] > 0 and ingest["cpu_seconds"]["postgresql"] > 0
    # Signed by their channels, then the same submissions unsigned in the same run: the same decisions.
    assert r["workload"]["signed"] is True
    unsigned = r["ingest_unsigned"]
    assert (unsigned["log_rows"], unsigned["accepted"], unsigned["rejected"]) == (
        ingest["log_rows"],
        ingest["accepted"],
        ingest["rejected"],
    )
    assert unsigned["submissions_per_s"] > 0
    # What a signature costs, part by part: one Ed25519 per batch makes a batch of 1,000 cheaper per
    # submission than a batch of one, and a signed payload is larger than the same unsigned.
    v = r["verification"]
    assert v["sample"] == 3000 and all(cost > 0 for cost in v["parts"].values())
    assert v["s2_per_submission_us"]["batch_of_1000"] < v["s2_per_submission_us"]["batch_of_1"]
    assert v["mean_payload_bytes"]["signed"] > v["mean_payload_bytes"]["unsigned"]
    # Every system judged the same submissions the same way (one Judge, three storage designs).
    submissions_rejected = ingest["rejected"]
    for peer in r["peers"].values():
        assert peer["submissions"] == 3000 and peer["submissions_per_s"] > 0
        assert peer["rejected"] == submissions_rejected and peer["accepted"] == 3000 - submissions_rejected
    assert r["peers"]["naive"]["live_votes"] == r["peers"]["eventsourcing"]["live_votes"]
    replay = r["replay"]
    assert replay["from_log"]["log_rows"] == replay["rebuild"]["log_rows"] == ingest["log_rows"]
    assert replay["from_log"]["present_shares"] == replay["pure_fold"]["present_shares"] > 0
    assert r["limits"]["kafka"]["consumed"] == 3000 and r["limits"]["copy"]["rows"] == ingest["log_rows"]
    latency = r["latency"]
    assert latency["observed"] == latency["submissions"] == 1200
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert [p["submissions"] for p in r["scale"]] == [1000, 3000]
    # The 1000 point was streamed (generated and published a chunk at a time) and says what each process spent.
    assert r["scale"][0]["cpu_us_per_submission"]["ledger"] > 0 and r["scale"][0]["bench_max_rss_mib"] > 0
    # 50 meetings interleaved vs one, with 1 and 2 ledgers: every submission logged, the ledgers' waits sampled.
    m = r["meetings"]
    assert [run["ledgers"] for run in m["runs"]] == [1, 2] and m["meetings"] == 50
    for run in m["runs"]:
        for part in (run["one_meeting"], run["many_meetings"]):
            assert part["submissions"] == 500 and part["accepted"] + part["rejected"] == part["log_rows"]
            assert part["watch"]["samples_with_a_ledger_transaction"] > 0
            # The verdict's CPU: our processes' over the steady window, a share of the machine's cores.
            assert part["processes_cpu_busy"] > 0
        assert run["many_meetings"]["log_rows"] - run["one_meeting"]["log_rows"] > 0  # 49 more meetings' admin
    assert "ledger2" in m["runs"][1]["many_meetings"]["cpu_us_per_submission"]
    assert m["lock_limits"]
    # The API: the dashboard's event stream got the last commit's tally, each event timed from its commit;
    # the tally route answered every request (200, then 304 to If-None-Match while nothing changed).
    api = r["api"]
    stream = api["stream"]
    assert api["submissions"] == 1200 and stream["last_position_delivered"] is True
    assert 0 < stream["matched"] <= stream["events"] and stream["matched"] <= stream["commits"]
    assert 0 <= stream["p50_ms"] <= stream["p99_ms"] <= stream["max_ms"]
    # Meanwhile the dashboard's panels were polled as the page polls them (200, or 304 to If-None-Match).
    polls = api["dashboard_polls"]
    assert {path.split("/")[-1].split("?")[0] for path in polls} == {"timeline", "status", "campaign", "call-list"}
    assert all(p["requests"] >= 1 and set(p["statuses"]) <= {"200", "304"} for p in polls.values())
    assert set(api["tally"]["statuses"]) == {"200"} and api["tally"]["requests_per_s"] > 0
    assert set(api["tally_not_modified"]["statuses"]) == {"304"} and api["tally_not_modified"]["requests_per_s"] > 0

    table = (out / "results.md").read_text()
    assert "| Ingest: Kafka → committed log rows" in table and "eventsourcing" in table and "p99" in table
    assert "| API event stream open during ingest" in table and "If-None-Match" in table
    assert "the same submissions unsigned" in table and "One Ed25519 verify" in table
    assert "Is the global append lock the limit?" in table
    assert readme.read_text() == f"# x\n\n{README_START}\n{table}{README_END}\n\nafter\n"
    assert table in done.stdout

    # Only the scale curve, its workload streamed: scale.json, its point merged into the main run's table.
    vote_ledger.run("bench", "--scale-only", "--scale", "500", "--positions", "2000", "--out", str(out), timeout=300)
    curve = json.loads((out / "scale.json").read_text())
    assert [p["submissions"] for p in curve["scale"]] == [500] and curve["scale"][0]["ingest_per_s"] > 0
    merged = json.loads((out / "results.json").read_text())
    assert [p["submissions"] for p in merged["scale"]] == [500, 1000, 3000] and merged["meetings"] == m
    assert "| 500 |" in (out / "results.md").read_text()
    # Scratch databases are dropped afterwards: the operator's server is left as it was.
    assert await _scratch_databases(settings.pg_dsn) <= scratch_before


async def _scratch_databases(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
        }
    finally:
        await conn.close()

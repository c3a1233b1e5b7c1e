"""The soak: `services run` (ledger, projector, API: three processes) under a steady rate, lag, memory and errors flat.

VOTE_LEDGER_SOAK_MINUTES (default 30) of `vote-ledger simulate` at VOTE_LEDGER_SOAK_RATE submissions a second
(default 200) for the bundled meeting, sampled every 10 s from outside the services: the ingest lag (records
waiting in Kafka past the offsets the ledger stored, and the age of the oldest of them), the projection lag
(log rows past the checkpoint and the age of the first), the RSS of each of the three processes, an API read's
latency and the ERROR/WARNING lines of their logs. Writes bench-results/soak.json (every sample and a summary)
and prints the summary. Run with `make soak` (marker soak only: never in make test).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.adapters.kafka.topics import TOPIC_ROLES, client_options, partition_offsets, started
from services.adapters.postgres import tally_store
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log import status as log_status
from services.adapters.postgres.tally_store import PROJECTION
from tests.conftest import settings_env
from tests.e2e.conftest import REPO, cli
from tests.integration.helpers import api_token

MINUTES = float(os.environ.get("VOTE_LEDGER_SOAK_MINUTES", "30"))
RATE = float(os.environ.get("VOTE_LEDGER_SOAK_RATE", "200"))
# The suite's 600 s timeout (pyproject) would end a 30-minute run: the soak's own, its length plus 15 minutes.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(MINUTES * 60) + 900)]
MEETING = "cbak-2023-agm"
SAMPLE_S = 10.0
RESULT = REPO / "bench-results" / "soak.json"
SERVICES = ("ledger", "projector", "api")
# Which process a log line is from, by its logger (the three share the supervisor's stderr); the health and
# outage loggers are in all three and counted under "shared" (an outage line names its process in its text).
LOGGERS = {
    "vote_ledger.ledger": "ledger",
    "vote_ledger.answers": "ledger",
    "vote_ledger.heads": "ledger",
    "vote_ledger.stall_watch": "ledger",
    "aiokafka": "ledger",
    "faststream": "ledger",
    "vote_ledger.projector": "projector",
    "vote_ledger.api": "api",
    "uvicorn": "api",
}
# Bounds the run is held to (README "Soak"): a steady rate must not build a backlog or leak.
MAX_LAG_S = 30.0  # the oldest record waiting for the ledger, or row waiting for the projector, at any sample
MAX_RSS_GROWTH_MB = 40.0  # per process, from the middle sample to the last: the second half must be flat
DRAIN_S = 120.0  # after the publisher stops, until nothing waits for either


def process_of(logger: str) -> str:
    """The service a logger's lines come from ("shared" for the health logger, "other" for anything else)."""
    for prefix, service in LOGGERS.items():
        if logger == prefix or logger.startswith(prefix + "."):
            return service
    return "shared" if logger.startswith(("vote_ledger.health", "vote_ledger.outage")) else "other"


def count_lines(path: Path) -> dict[str, dict[str, int]]:
    """ERROR (and CRITICAL) and WARNING lines of the services' JSON log, per process; a line that is not JSON
    (a traceback printed raw, a crash) counts as an ERROR of "other"."""
    counts = {level: dict.fromkeys((*SERVICES, "shared", "other"), 0) for level in ("error", "warning")}
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            level, logger = str(record.get("level", "")).lower(), str(record.get("logger", ""))
        except (ValueError, AttributeError):
            level, logger = "error", ""
        level = "error" if level in ("error", "critical", "exception") else level
        if level in counts:
            counts[level][process_of(logger)] += 1
    return counts


def children_of(supervisor: subprocess.Popen) -> dict[str, psutil.Process]:
    """The supervisor's three children by service (`... services run <service>`)."""
    found = {}
    for child in psutil.Process(supervisor.pid).children():
        argv = child.cmdline()
        if len(argv) >= 2 and argv[-2] == "run" and argv[-1] in SERVICES:
            found[argv[-1]] = child
    return found


async def oldest_waiting_age(settings, stored: dict[tuple[str, int], int], ends: dict) -> float:
    """Seconds since the broker appended the oldest record the ledger has not stored an offset past (0 if none)."""
    waiting = [TopicPartition(t, p) for (t, p), (_, end) in ends.items() if end > stored.get((t, p), 0)]
    if not waiting:
        return 0.0
    consumer = AIOKafkaConsumer(**client_options(settings, TOPIC_ROLES), isolation_level="read_committed")
    await started(consumer)
    try:
        consumer.assign(waiting)
        for tp in waiting:
            consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))
        got = await consumer.getmany(*waiting, timeout_ms=2000, max_records=len(waiting) * 50)
        stamps = [records[0].timestamp for records in got.values() if records]
    finally:
        await consumer.stop()
    return max(0.0, time.time() - min(stamps) / 1000) if stamps else 0.0


async def sample(settings, conn, api: httpx.AsyncClient, supervisor, log_path: Path, started_at: float) -> dict:
    """One sample of lag, memory, API latency and log lines (None where the probe itself got no answer in time)."""
    stored = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in await log_status.stored_offsets(conn, settings.consumer_group)
    }
    ends = waiting = age = None
    try:  # the probe's own Kafka clients: on a saturated machine the broker may not answer them in time
        ends = await partition_offsets(settings, [settings.submissions_topic, settings.admin_topic])
        waiting = sum(max(0, end - stored.get(tp, 0)) for tp, (_, end) in ends.items())
        age = round(await oldest_waiting_age(settings, stored, ends), 2)
    except (KafkaError, OSError, TimeoutError):
        pass
    behind, behind_s = await log_reads.lag(conn, await tally_store.checkpoint(conn, PROJECTION))
    clock = time.monotonic()
    try:
        answer = await api.get(f"/v1/meetings/{MEETING}/tally")
        api_ms = round((time.monotonic() - clock) * 1000, 1) if answer.status_code == 200 else None
    except httpx.HTTPError:
        api_ms = None
    rss = {name: round(proc.memory_info().rss / 2**20, 1) for name, proc in children_of(supervisor).items()}
    lines = count_lines(log_path)
    return {
        "t_s": round(time.monotonic() - started_at, 1),
        "load_1m": round(os.getloadavg()[0], 1),  # the machine's, for context: 2 cores shared with other work
        "kafka_end_offsets": None if ends is None else sum(end for _, end in ends.values()),
        "ingest_waiting": waiting,
        "ingest_oldest_s": age,
        "log_head": await log_reads.head(conn),
        "projection_lag_rows": behind,
        "projection_lag_s": round(behind_s, 2),
        "rss_mb": rss,
        "api_tally_ms": api_ms,
        "errors": sum(lines["error"].values()),
        "warnings": sum(lines["warning"].values()),
        "lines": lines,
    }


def peak(samples: list[dict], key: str) -> float | None:
    """The largest value of a field over the samples that have it (None: no sample measured it)."""
    values = [s[key] for s in samples if s[key] is not None]
    return max(values) if values else None


def summarise(samples: list[dict], drain_s: float | None, published: str) -> dict:
    """First, middle and last samples, maxima, and the second half's RSS growth per process."""
    steady = [s for s in samples if s["phase"] == "publishing"]
    first, middle, last = steady[0], steady[len(steady) // 2], steady[-1]
    answered = [s["api_tally_ms"] for s in steady if s["api_tally_ms"] is not None]
    return {
        "samples": len(samples),
        "publisher": published,
        "max_ingest_waiting": peak(steady, "ingest_waiting"),
        "max_ingest_oldest_s": peak(steady, "ingest_oldest_s"),
        "max_projection_lag_rows": peak(steady, "projection_lag_rows"),
        "max_projection_lag_s": peak(steady, "projection_lag_s"),
        "kafka_probe_unanswered": sum(1 for s in samples if s["ingest_waiting"] is None),
        "api_unanswered": sum(1 for s in samples if s["api_tally_ms"] is None),
        "median_api_tally_ms": statistics.median(answered) if answered else None,
        "max_api_tally_ms": max(answered) if answered else None,
        "load_1m": {"min": min(s["load_1m"] for s in samples), "max": max(s["load_1m"] for s in samples)},
        "rss_mb": {"first": first["rss_mb"], "middle": middle["rss_mb"], "last": last["rss_mb"]},
        "rss_growth_second_half_mb": {
            name: round(last["rss_mb"][name] - middle["rss_mb"][name], 1) for name in SERVICES
        },
        "errors": samples[-1]["errors"],
        "warnings": samples[-1]["warnings"],
        "lines": samples[-1]["lines"],
        "drain_s": None if drain_s is None else round(drain_s, 1),  # None: not drained within DRAIN_S
        "log_rows": samples[-1]["log_head"],
    }


async def test_a_steady_rate_keeps_lag_memory_and_error_lines_flat_through_services_run(settings, tmp_path):
    env = {**os.environ, **settings_env(settings), "VOTE_LEDGER_LOG_FORMAT": "json"}
    token, _ = await api_token(settings)
    await topics_known(settings)
    log_path = tmp_path / "services.log"
    with open(log_path, "ab") as out:
        supervisor = subprocess.Popen([*cli(), "services", "run", "all"], env=env, cwd=REPO, stdout=out, stderr=out)
    publisher = None
    conn = await asyncpg.connect(settings.pg_dsn)
    samples: list[dict] = []
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.api_port}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    try:
        await wait_ready(settings)
        load = [*cli(), "meeting", "load", MEETING, "--simulated-channels"]  # waits for the ledger to log it
        loaded = subprocess.run(load, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
        assert loaded.returncode == 0, loaded.stderr
        seconds = round(MINUTES * 60)
        simulate = ["simulate", "--meeting", MEETING, "--rate", str(RATE), "--duration", str(seconds), "--quiet"]
        publisher = subprocess.Popen(
            [*cli(), *simulate], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started_at = time.monotonic()
        next_at = started_at + SAMPLE_S
        while publisher.poll() is None:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += SAMPLE_S
            if publisher.poll() is None:
                samples.append(
                    {"phase": "publishing", **await sample(settings, conn, api, supervisor, log_path, started_at)}
                )
                print(one_line(samples[-1]), flush=True)
            assert supervisor.poll() is None, f"services run exited: {log_path.read_text()[-3000:]}"
        published = publisher.stdout.read().strip()
        assert publisher.returncode == 0, published
        drained_at = time.monotonic()
        while True:  # the publisher stopped: everything it published is logged and projected
            last = {"phase": "drain", **await sample(settings, conn, api, supervisor, log_path, started_at)}
            drained = last["ingest_waiting"] is not None and last["ingest_oldest_s"] == 0
            drained = drained and last["projection_lag_rows"] == 0
            if drained or time.monotonic() - drained_at > DRAIN_S:
                break
            await asyncio.sleep(1)
        drain_s = time.monotonic() - drained_at
        samples.append(last)
    finally:
        await api.aclose()
        await conn.close()
        for proc in (publisher, supervisor):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    summary = summarise(samples, drain_s if drained else None, published)
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(
        json.dumps(
            {
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "minutes": MINUTES,
                "rate_per_s": RATE,
                "sample_every_s": SAMPLE_S,
                "bounds": {"max_lag_s": MAX_LAG_S, "max_rss_growth_mb": MAX_RSS_GROWTH_MB, "errors": 0},
                "summary": summary,
                "samples": samples,
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"\nSOAK minutes={MINUTES:g} rate={RATE:g}/s {json.dumps({k: v for k, v in summary.items() if k != 'lines'})}"
    )
    assert drained, f"not drained {DRAIN_S} s after the publisher stopped: {samples[-1]}"
    assert summary["errors"] == 0, f"ERROR lines: {summary['lines']['error']}; see {log_path}"
    assert (summary["max_ingest_oldest_s"] or 0) <= MAX_LAG_S, summary
    assert summary["max_projection_lag_s"] <= MAX_LAG_S, summary
    assert all(g <= MAX_RSS_GROWTH_MB for g in summary["rss_growth_second_half_mb"].values()), summary


def one_line(s: dict) -> str:
    """A sample as one progress line."""
    rss = " ".join(f"{k}={v:g}MB" for k, v in s["rss_mb"].items())
    return (
        f"  {s['t_s']:7.1f} s  load {s['load_1m']:g}  offsets {s['kafka_end_offsets']}  waiting {s['ingest_waiting']}"
        f" ({s['ingest_oldest_s']} s)  projection lag {s['projection_lag_rows']} ({s['projection_lag_s']} s)"
        f"  {rss}  api {s['api_tally_ms']} ms  errors {s['errors']} warnings {s['warnings']}"
    )


async def topics_known(settings, timeout: float = 180.0) -> None:
    """Wait until the broker's metadata lists this run's topics: on a broker holding thousands of other tests'
    topics it lagged their creation by tens of seconds, and a ledger started before gave up (aiokafka's topic wait)."""
    topics = [settings.submissions_topic, settings.admin_topic, settings.decisions_topic]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if {t for t, _ in await partition_offsets(settings, topics)} == set(topics):
                return
        except (KafkaError, OSError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"the broker's metadata lacks {topics} after {timeout} s"
        await asyncio.sleep(1)


async def wait_ready(settings, timeout: float = 180.0) -> None:
    """Wait until the ledger, the projector and the API all answer /readyz with 200."""
    ports = (settings.ledger_metrics_port, settings.projector_metrics_port, settings.api_port)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=3) as client:
        while True:
            codes = []
            for port in ports:
                try:
                    codes.append((await client.get(f"http://127.0.0.1:{port}/readyz")).status_code)
                except httpx.HTTPError:
                    codes.append(None)
            if codes == [200, 200, 200]:
                return
            assert time.monotonic() < deadline, f"not ready after {timeout} s: {codes}"
            await asyncio.sleep(0.5)

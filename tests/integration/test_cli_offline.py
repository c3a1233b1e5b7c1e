"""An auditor's machine needs the codec and the rules only: the offline commands load no Kafka or PostgreSQL client."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

CLIENTS = ("aiokafka", "faststream", "asyncpg")

# Runs every offline command in one process, then names the client modules that process ever imported.
PROBE = """
import contextlib, io, json, sys
from services.cli import main

path = sys.argv[1]
codes, outputs = [], []
for argv in (
    ["audit", "verify", "--file", path],
    ["audit", "verify", "--file", path, "--format", "json"],
    ["tally", "--file", path],
    ["tally", "--file", path, "--format", "csv"],
    ["report", "final", "--file", path],
    ["report", "final", "--file", path, "--json"],
):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        codes.append(main(argv))
    outputs.append(out.getvalue())
print(json.dumps({"codes": codes, "outputs": outputs, "loaded": [m for m in CLIENTS if m in sys.modules]}))
"""


def run_offline(path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_")}  # no services configured
    probe = f"CLIENTS = {CLIENTS!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_the_offline_commands_import_neither_kafka_nor_postgresql_clients(exported):
    path, _manifest, online_tally, _report = exported
    result = run_offline(path)
    assert result["codes"] == [0] * 6
    assert result["loaded"] == []
    verified, verified_json, table, csv, markdown, report_json = result["outputs"]
    assert "\nVERIFIED" in verified and json.loads(verified_json)["ok"] is True
    assert table.startswith("Meeting m1  (log position") and csv.splitlines()[0].startswith("item,")
    assert len(csv.splitlines()) == 1 + len(online_tally["items"])
    assert markdown.startswith("# Item 5.07") and json.loads(report_json)["meeting_id"] == "m1"

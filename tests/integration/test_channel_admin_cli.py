"""Meeting administration's channel commands through the broker and the ledger (issue 11, after the testers).

`meeting load` registers no publicly derivable demo key unless asked (`--simulated-channels`), and
`simulate` stops when they are missing; `channel register|revoke` give every publication its own
event id and report what the ledger decided, so a second (emergency) revocation takes effect and a
second registration of a key is reported `rejected duplicate_key`; `channel list` marks demo keys.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.adapters.kafka.topics import producer, publish
from services.devtools.demo.channels import demo_channels
from services.devtools.demo.spec import load_spec
from tests.factories import T0, register_event, small_meeting
from tests.integration.helpers import cli, running_ledger, wait_for

pytestmark = pytest.mark.integration

CBAK = Path(__file__).resolve().parents[2] / "deploy" / "meetings" / "cbak-2023-agm.toml"
KEY_ROWS = "SELECT count(*) FROM ledger_log WHERE type = 'channel.key_registered' AND decision = 'accepted'"


def small_spec(tmp_path: Path) -> Path:
    """The bundled CBAK meeting with a register of 300 positions (quick to load and log)."""
    text = (CBAK.parents[1] / "simulations" / CBAK.name).read_text()
    assert "positions = 20000" in text
    path = tmp_path / "meetings" / "cbak-small.toml"
    simulation = tmp_path / "simulations" / "cbak-small.toml"  # the meeting file's simulation, beside its folder
    path.parent.mkdir()
    simulation.parent.mkdir()
    path.write_text(CBAK.read_text())
    simulation.write_text(text.replace("positions = 20000", "positions = 300", 1))
    return path


async def test_meeting_load_registers_the_public_demo_keys_only_when_asked_and_simulate_needs_them(settings, tmp_path):
    spec = small_spec(tmp_path)
    meeting, register_spec, sim = load_spec(spec)
    simulated = demo_channels(meeting, register_spec, sim)
    async with running_ledger(settings):
        code, out, err = await cli(settings, "meeting", "load", str(spec), "--quiet")
        assert code == 0, err
        assert "no channel key registered: register each real channel's key with `vote-ledger channel register`" in out
        await wait_for(
            settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE type = 'meeting.scheduled'", 1, timeout=60
        )

        code, out, err = await cli(settings, "simulate", "--meeting-file", str(spec), "--rate", "5", "--duration", "1")
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "no simulated channel key registered" in err
        assert f"vote-ledger meeting load {spec} --simulated-channels" in err
        await wait_for(settings.pg_dsn, KEY_ROWS, 0)

        code, out, err = await cli(settings, "meeting", "load", str(spec), "--quiet", "--simulated-channels")
        assert code == 0, err
        assert f"registered {len(simulated)} simulated channels' demo keys: PUBLIC keys" in out
        assert "for simulations only" in out
        await wait_for(settings.pg_dsn, KEY_ROWS, len(simulated))

        key_file = tmp_path / "real.key.json"
        code, _, err = await cli(settings, "channel", "keygen", "--channel-id", "real-web", "--out", str(key_file))
        assert code == 0, err
        code, out, err = await cli(
            settings,
            *("channel", "register", "--meeting", meeting.meeting_id, "--key-file", str(key_file)),
            *("--kinds", "internet"),
        )
        assert code == 0 and "accepted at position" in out, out + err
        code, listed, err = await cli(settings, "channel", "list", "--meeting", meeting.meeting_id, "--json")
        assert code == 0, err
        code, text, err = await cli(settings, "channel", "list", "--meeting", meeting.meeting_id)
    marks = {k["channel_id"]: k["public_demo_key"] for k in json.loads(listed)["keys"]}
    assert marks == {**{c.channel_id: True for c in simulated}, "real-web": False}
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.startswith("  ")}
    assert all("public demo key" in lines[f"{c.channel_id}/demo-1"] for c in simulated)
    assert "public demo key" not in next(line for key, line in lines.items() if key.startswith("real-web/"))


async def test_register_and_revoke_report_the_ledgers_decision_and_a_second_revocation_takes_effect(settings, tmp_path):
    key_file, other = tmp_path / "broker.key.json", tmp_path / "other.key.json"
    for path, channel in ((key_file, "acme-broker"), (other, "acme-other")):
        code, _, err = await cli(settings, "channel", "keygen", "--channel-id", channel, "--out", str(path))
        assert code == 0, err
    register = ("channel", "register", "--meeting", "m1", "--effective-at", (T0 - timedelta(days=1)).isoformat())
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, [small_meeting(signatures_required=True), register_event()])

        # A broker key with no nominees may vote every position: said, and registered as documented (S4).
        code, out, err = await cli(settings, *register, "--key-file", str(key_file), "--kinds", "broker")
        assert code == 0 and "channel.key_registered acme-broker/" in out and "accepted at position" in out, err
        assert "warning: acme-broker/" in err and "may vote every position as broker, registered holders' too" in err

        # The same key again: the ledger's duplicate_key, reported, exit 1.
        code, out, err = await cli(settings, *register, "--key-file", str(key_file), "--kinds", "broker")
        assert code == 1 and out.rstrip().endswith("rejected duplicate_key"), out + err

        # A nominee the register does not hold is worth a warning (a typo scopes the key to nothing).
        code, out, err = await cli(
            settings, *register, "--key-file", str(other), "--kinds", "broker", "--nominees", "Broker X", "Broker Y"
        )
        assert code == 0, err
        assert "nominee 'Broker Y' has no position in the register of m1" in err and "'Broker X'" not in err

        key_id = json.loads(key_file.read_text())["key_id"]
        revoke = ("channel", "revoke", "--meeting", "m1", "--channel-id", "acme-broker", "--key-id", key_id)
        planned, emergency = T0 + timedelta(days=20), T0 + timedelta(hours=1)
        code, out, err = await cli(settings, *revoke, "--effective-at", planned.isoformat(), "--reason", "rotation")
        assert code == 0 and "accepted at position" in out, out + err
        code, out, err = await cli(settings, *revoke, "--effective-at", emergency.isoformat(), "--reason", "stolen")
        assert code == 0 and "accepted at position" in out, out + err
        code, out, err = await cli(settings, *revoke, "--no-wait")
        assert code == 0 and out.rstrip().endswith("not checked (--no-wait)"), out + err

        code, listed, err = await cli(settings, "channel", "list", "--meeting", "m1", "--json")
    assert code == 0, err
    (key,) = [k for k in json.loads(listed)["keys"] if k["channel_id"] == "acme-broker"]
    assert key["revoked"]["reason"] == "stolen" and key["status"].startswith("revoked since")
    assert key["revoked"]["effective_at"] == emergency.isoformat()

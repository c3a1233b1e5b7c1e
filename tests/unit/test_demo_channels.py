"""The demo's simulated channels: every simulated submission is signed by a channel whose key covers it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from events import ProxySubstituted, VoteCast, decode
from projections import validation as v
from projections.judge import Judge
from projections.meeting import Meeting
from projections.signing import verify
from projections.validation_channels import implausible_time
from services.devtools.demo.channels import DEMO_KEY_ID, Signer, channel_id_of, demo_channels, demo_key, key_events
from services.devtools.demo.register import build_register, register_events
from services.devtools.demo.spec import load_spec
from services.devtools.demo.traffic import generate

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
# The reasons of channel authentication: none of them may reject a simulated submission.
AUTH_REASONS = {
    v.SIGNATURE_REQUIRED,
    v.UNKNOWN_CHANNEL,
    v.KEY_NOT_YET_VALID,
    v.KEY_REVOKED,
    v.BAD_SIGNATURE,
    v.FOREIGN_EVENT_ID,
    v.OUT_OF_SCOPE,
    v.IMPLAUSIBLE_TIME,
}


@pytest.fixture(scope="module")
def cbak():
    spec, register_spec, sim = load_spec(MEETINGS / "cbak-2023-agm.toml")
    positions, entitlements = build_register(spec, register_spec)
    return spec, register_spec, sim, positions, entitlements


def test_the_bundled_meetings_require_signatures_with_the_broker_clock_off_and_a_new_spec_gets_both(tmp_path):
    for name in ("cbak-2023-agm", "contested-2024-agm"):
        spec = load_spec(MEETINGS / f"{name}.toml")[0]
        assert (spec.signatures_required, spec.broker_grace_s) == (True, None)
    text = (MEETINGS / "cbak-2023-agm.toml").read_text()
    new = tmp_path / "new.toml"
    new.write_text(text.replace("signatures_required = true\n", "").replace('broker_grace_s = "off"\n', ""))
    spec = load_spec(new)[0]
    assert (spec.signatures_required, spec.broker_grace_s) == (True, 300)
    new.write_text(text.replace('broker_grace_s = "off"', "broker_grace_s = 60"))
    assert load_spec(new)[0].broker_grace_s == 60


def test_one_channel_per_submitter_the_ballot_desk_in_person_only_and_each_broker_platform_for_its_nominee(cbak):
    spec, register_spec, sim = cbak[:3]
    channels = {c.channel_id: c for c in demo_channels(spec, register_spec, sim)}
    assert channels["proxyvote-web"].kinds == ("internet",) and channels["proxyvote-web"].nominees is None
    assert channels["ballot-desk"].kinds == ("in_person",)
    assert channels["corporate-secretary"].proxy_holders == tuple(spec.named_proxies)
    brokers = [c for c in channels.values() if c.kinds == ("broker",)]
    assert sorted(c.nominees for c in brokers) == sorted((n.name,) for n in register_spec.nominees)
    assert channel_id_of("Broker A (DTC 0015)") == "broker-a-dtc-0015"


def test_the_demo_keys_are_derived_from_the_meeting_and_channel_and_registered_deterministically(cbak):
    spec, register_spec, sim = cbak[:3]
    assert demo_key("m1", "proxyvote-web") == demo_key("m1", "proxyvote-web")
    assert demo_key("m1", "proxyvote-web").public_key != demo_key("m2", "proxyvote-web").public_key
    events = key_events(spec, register_spec, sim)
    assert events == key_events(spec, register_spec, sim)  # a re-load publishes the same ids and bytes (R18)
    assert {e.key_id for e in events} == {DEMO_KEY_ID} and len({e.event_id for e in events}) == len(events)
    assert all(e.effective_at.date() == spec.record_date for e in events)


def test_every_simulated_submission_is_signed_by_a_channel_whose_key_covers_it(cbak):
    spec, register_spec, sim, positions, entitlements = cbak
    judge = Judge()
    for admin in [spec, *register_events(spec, positions, entitlements), *key_events(spec, register_spec, sim)]:
        assert judge.judge(admin) is None
    signer = Signer(spec, register_spec, sim)
    generated = list(generate(spec, positions, sim, count=6_000))
    reasons: Counter = Counter()
    sizes: Counter = Counter()
    for event, received in signer.received(generated):
        reasons[judge.judge(event, received)] += 1
        sizes[event.auth.channel_id] = max(sizes[event.auth.channel_id], event.auth.batch_size)
        assert event.event_id.startswith(f"{event.auth.channel_id}:")
    assert not AUTH_REASONS & set(reasons), reasons
    assert reasons[None] > 0.98 * len(generated)
    # Batches: each channel's share of a window of 512 (the busiest channels sign dozens at once).
    assert max(sizes.values()) > 50 and all(size <= 512 for size in sizes.values())


def test_the_substitution_is_signed_by_the_corporate_secretary_and_verifies_with_its_key(cbak):
    spec, register_spec, sim, positions, _ = cbak
    signer = Signer(spec, register_spec, sim)
    substitution = next(e for e in generate(spec, positions, sim) if isinstance(e, ProxySubstituted))
    (signed,) = signer.signed([substitution])
    event = decode(signed.payload)
    assert event.auth.channel_id == "corporate-secretary"
    assert verify(signed.payload, event.auth, demo_key(spec.meeting_id, "corporate-secretary").public_key)
    vote = next(e for e in generate(spec, positions, sim) if isinstance(e, VoteCast) and e.channel == "broker")
    assert signer.key_of(vote).channel_id == channel_id_of(vote.submitted_by)


@pytest.mark.parametrize("name", ["cbak-2023-agm", "contested-2024-agm"])
def test_s7_no_simulated_submission_is_implausible_even_with_the_broker_clock_on(name):
    """S7 applies to the demo's meetings (they require signatures): no campaign of theirs may trip it.

    With the broker's clock on (a new spec's 300 s), the broker appends a record when it is received
    at the earliest: received_at <= appended_at + grace holds for any real append time at or after it.
    """
    spec, register_spec, sim = load_spec(MEETINGS / f"{name}.toml")
    assert spec.signatures_required
    positions, _ = build_register(spec, register_spec)
    clocked = Meeting.scheduled(msgspec.structs.replace(spec, broker_grace_s=300))
    generated = list(generate(spec, positions, sim, count=6_000))
    assert len(generated) == 6_000
    for event in generated:
        assert implausible_time(Meeting.scheduled(spec), event, None) is None, event
        assert implausible_time(clocked, event, event.received_at) is None, event
        assert implausible_time(clocked, event, event.received_at - timedelta(seconds=300)) is None, event

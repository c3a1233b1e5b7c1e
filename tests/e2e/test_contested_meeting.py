"""End to end, the contested meeting: universal proxy cards through the CLI, Kafka, the log and the tally."""

import json
from collections import Counter

import pytest

from events import VoteCast, decode
from services.devtools.demo.channels import Signer
from services.devtools.demo.loader import prepare
from services.devtools.demo.register import entitlements_for
from services.devtools.demo.traffic import generate
from tests import reference_count
from tests.e2e.conftest import REPO, log_rows

pytestmark = pytest.mark.e2e

MEETING_FILE = REPO / "deploy" / "meetings" / "contested-2024-agm.toml"


def tally_of(vote_ledger) -> dict:
    """The contested meeting's tally JSON, once the ledger and projector have caught up."""
    vote_ledger.run("status", "--wait", "120")
    return json.loads(vote_ledger.run("tally", "--meeting", "contested-2024-agm", "--json").stdout)


async def logged(settings, published: list, signer: Signer, republished: frozenset[str] = frozenset()) -> list:
    """The accepted submissions in the log, after checking each published one was judged exactly once.

    ``published``: as generated; simulate signs each as its channel, under an id in its namespace (S6).
    ``republished``: ids an earlier run published in other signed batches, so with other bytes: an
    accepted one comes back as a duplicate_event_id rejection that applies nothing (R18); a rejected
    one held no id, so it is judged again, and rejected again.
    """
    rows = await log_rows(
        settings.pg_dsn,
        "SELECT event_id, decision, reason, payload FROM ledger_log"
        " WHERE type IN ('vote.cast', 'vote.revoked', 'proxy.substituted') ORDER BY position",
    )
    judged = [r for r in rows if r["reason"] != "duplicate_event_id"]
    assert {r["event_id"] for r in judged} == {s.event_id for s in signer.signed(published)}
    accepted = [r for r in judged if r["decision"] == "accepted"]
    assert len({r["event_id"] for r in accepted}) == len(accepted)  # each applied once
    twice = Counter(r["event_id"] for r in judged) - Counter({r["event_id"]: 1 for r in judged})
    assert set(twice) <= republished and set(twice.values()) <= {1}
    assert all(r["decision"] == "rejected" for r in judged if r["event_id"] in twice)
    assert {r["event_id"] for r in rows if r["reason"] == "duplicate_event_id"} <= republished
    return [decode(r["payload"]) for r in accepted]


def assert_counts_match(tally: dict, spec, positions, entitlements, accepted) -> None:
    """The tally JSON equals the independent count of the accepted submissions, item by item."""
    expected = reference_count.count(spec, {p.control_number: p for p in positions}, accepted, entitlements)
    assert tally["quorum"]["present"] == expected["present"]
    for item in spec.items:
        got = {k: v for k, v in tally["items"][item.id].items() if k not in ("outcome", "margin", "not_voted") and v}
        assert got == expected["items"][item.id], item.id


async def test_a_contested_meeting_on_universal_proxy_cards_tallies_as_an_independent_count(vote_ledger, settings):
    vote_ledger.run("db", "migrate")
    vote_ledger.start("services", "run", name="services")
    vote_ledger.run("meeting", "load", str(MEETING_FILE), "--simulated-channels")
    spec, register, sim, positions = prepare(MEETING_FILE)
    entitlements = {e.nominee: e.shares for e in entitlements_for(positions, register)}
    group = [item.id for item in spec.items if item.universal_proxy]

    # The campaign's first 3,000 submissions: universal proxy cards, over-marked ones included, but
    # owners of only about 39 % of the shares so far, short of the majority quorum.
    vote_ledger.run("simulate", "--meeting-file", str(MEETING_FILE), "--rate", "3000", "--duration", "1")
    tally = tally_of(vote_ledger)
    first = list(generate(spec, positions, sim, count=3000, seed=sim.seed))
    signer = Signer(spec, register, sim)
    accepted = await logged(settings, first, signer)
    assert len(accepted) > 0.98 * len(first)
    over = [e for e in accepted if isinstance(e, VoteCast) and sum(e.choices.get(i) == "for" for i in group) > 3]
    assert over, "no over-marked card reached the log: the voiding rule went untested"
    assert tally["meeting_id"] == "contested-2024-agm" and tally["outstanding"] == 57_384_926
    assert tally["quorum"]["required"] == 28_692_463  # a majority: ceil(57,384,926 / 2)
    assert tally["quorum"]["met"] is False
    assert {c["outcome"] for c in tally["items"].values()} == {"no_quorum"}
    assert_counts_match(tally, spec, positions, entitlements, accepted)

    # The whole campaign and some re-votes: the first 3,000 are republished and applied once (R18).
    vote_ledger.run("simulate", "--meeting-file", str(MEETING_FILE), "--rate", "3000", "--duration", "3")
    tally = tally_of(vote_ledger)
    # The first run's 3,000 come back in other signed batches (the re-votes merged in shift every window).
    first_ids = frozenset(s.event_id for s in signer.signed(first))
    accepted = await logged(
        settings, list(generate(spec, positions, sim, count=9000, seed=sim.seed)), signer, first_ids
    )
    assert tally["quorum"]["met"] is True
    assert_counts_match(tally, spec, positions, entitlements, accepted)
    results = [tally["items"][i]["outcome"] for i in group]
    assert results.count("elected") == 3 or "tie" in results

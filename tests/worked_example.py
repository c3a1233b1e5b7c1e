"""Load the hand-computed worked example (tests/data/worked_example.json) for the unit and pipeline tests.

The JSON holds a meeting's events in log order (wire format), the ledger's expected decision for each,
and the tally computed by hand under both over-vote policies (R17). This module only reads it: the
numbers are never computed here.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from events import AnyEvent, decode
from projections.fold import Tally

PATH = Path(__file__).parent / "data" / "worked_example.json"
POLICIES = ("prorate", "reject")


@cache
def _load() -> dict[str, Any]:
    return json.loads(PATH.read_text())


def example() -> dict[str, Any]:
    """The whole document (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_load())


def without_why(value: Any) -> Any:
    """Drop every explanatory `why` field, recursively."""
    if isinstance(value, dict):
        return {k: without_why(v) for k, v in value.items() if k != "why"}
    if isinstance(value, list):
        return [without_why(v) for v in value]
    return value


def _renamer(policy: str, renamed: bool):
    """Map meeting ids and event ids of the policy's variant (the pipeline's reject copy)."""
    variant = _load()["variants"].get(policy) if renamed else None
    if variant is None:
        return (lambda meeting_id: meeting_id), (lambda event_id: event_id)
    return (lambda _meeting_id: variant["meeting_id"]), (lambda event_id: event_id + variant["event_id_suffix"])


def entries(policy: str = "prorate", renamed: bool = False) -> list[dict[str, Any]]:
    """The events in log order as {label, expect, why, event}; the meeting carries the policy.

    ``renamed``: the `reject` copy gets its own meeting id and event ids (variants.reject), so it
    can share a log with the `prorate` one.
    """
    meeting_id_of, event_id_of = _renamer(policy, renamed)
    out = []
    for entry in example()["events"]:
        event = entry["event"]
        if event["type"] == "meeting.scheduled":
            event["overvote_policy"] = policy
        event["meeting_id"] = meeting_id_of(event["meeting_id"])
        event["event_id"] = event_id_of(event["event_id"])
        out.append(entry)
    return out


def events(policy: str = "prorate", renamed: bool = False) -> list[AnyEvent]:
    """The events decoded by the one codec, exactly as the ledger decodes them off Kafka."""
    return [decode(json.dumps(entry["event"])) for entry in entries(policy, renamed)]


def meeting_id(policy: str = "prorate", renamed: bool = False) -> str:
    return entries(policy, renamed)[0]["event"]["meeting_id"]


def expected(policy: str, renamed: bool = False) -> dict[str, Any]:
    """The hand-computed block of a policy, without the `why` fields (event ids renamed if asked)."""
    block = without_why(example()["expected"][policy])
    _, event_id_of = _renamer(policy, renamed)
    for over in block["overvotes"]:
        over["rejected"] = [event_id_of(e) for e in over["rejected"]]
    block["refused_by_fold"] = [event_id_of(e) for e in block["refused_by_fold"]]
    return block


def expected_tally(policy: str, renamed: bool = False) -> dict[str, Any]:
    """The part of the block that the tally JSON (read_tally / tally_report) reports."""
    block = expected(policy, renamed)
    return {
        "meeting_id": meeting_id(policy, renamed),
        "outstanding": block["outstanding"],
        "quorum": block["quorum"],
        "items": block["items"],
    }


def refused_by_fold(tally: Tally) -> dict[tuple[str, str], list[str]]:
    """(nominee, item) -> event ids the fold refused under `reject`, as the projector stores them."""
    refused: dict[tuple[str, str], list[str]] = {}
    for control_number, state in tally.voters.items():
        nominee = tally.meeting.positions[control_number].nominee or ""
        for event_id, item_id in state.overvote_rejected:
            refused.setdefault((nominee, item_id), []).append(event_id)
    return {key: sorted(ids) for key, ids in refused.items()}

"""Replay benchmark: the pure fold over a generated meeting log, in memory and from payloads."""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path
from typing import Any

from events import decode, encode
from projections.judge import Judge
from projections.replay import Projection
from services.demo.loader import prepare
from services.demo.register import build_register, register_events
from services.demo.traffic import generate


def replay_benchmark(meeting_file: Path, events: int, seed: int = 3) -> dict[str, Any]:
    """Generate ``events`` submissions, judge them, then time the fold two ways (one run)."""
    spec, register_spec, sim, positions = prepare(meeting_file)
    register, entitlements = build_register(spec, register_spec)
    judge = Judge()
    log = [e for e in [spec, *register_events(spec, register, entitlements),
                       *generate(spec, positions, sim, count=events, seed=seed)] if judge.judge(e) is None]
    payloads = [encode(e) for e in log]
    result: dict[str, Any] = {"meeting_id": spec.meeting_id, "events": len(log), "positions": len(register)}

    gc.collect()
    started = time.perf_counter()
    Projection().apply_many(log)
    result["pure_fold_events_per_s"] = round(len(log) / (time.perf_counter() - started))

    gc.collect()
    started = time.perf_counter()
    projection = _fold_payloads(payloads)
    result["decode_and_fold_events_per_s"] = round(len(log) / (time.perf_counter() - started))

    tracemalloc.start()  # a separate, untimed pass: tracing allocations slows Python tenfold
    _fold_payloads(payloads)
    result["decode_and_fold_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    tally = projection.tallies[spec.meeting_id]
    result["present"], result["control_numbers_voting"] = tally.present, len(tally.voters)
    return result


def _fold_payloads(payloads: list[bytes]) -> Projection:
    """Decode and fold log payloads in the projector's batch size."""
    projection = Projection()
    for start in range(0, len(payloads), 20_000):
        projection.apply_many([decode(p) for p in payloads[start:start + 20_000]])
    return projection

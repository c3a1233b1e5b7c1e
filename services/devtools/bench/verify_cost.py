"""What checking channel signatures (S2) costs the ledger per submission, part by part, in this process.

The end-to-end figure (ingest with and without signatures, services.devtools.bench.run) says what it
costs all in all; this says where: decoding the larger payload, the canonical bytes, the leaf hash,
the path's hashes, and Ed25519 once per batch, for batches of 1,000 and of 1. Each figure is this
process's CPU time (not wall time: on a machine shared with other busy processes, a wall clock counts
the time we wait for a core) for the best of a few passes over the same sample, the collector paused.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from events import ChannelAuth, Submission, decode
from projections import merkle, signing
from projections.judge import Judge, Received
from services.channel.client import sign
from services.devtools.bench.workload import Workload

SAMPLE = 20_000  # submissions timed per figure: well past the per-call noise, a second or so per pass
PASSES = 3
BATCHES = (1_000, 1)


def measure(workload: Workload, sample: int = SAMPLE) -> dict[str, Any]:
    """Per-submission microseconds of each part of S2 and of the whole judge, signed and unsigned."""
    sampled = workload.prefix(sample)
    signed = [payload for _, payload in sampled.submission_payloads]
    unsigned = [payload for _, payload in sampled.unsigned().submission_payloads]
    events = [decode(p) for p in signed]
    auths: list[ChannelAuth] = [e.auth for e in events if e.auth is not None]
    canonical = [signing.canonical_bytes(p) for p in signed]
    leaves = [merkle.leaf_hash(c) for c in canonical]
    judge = _primed(workload)
    some = auths[0]
    key = judge.meetings[workload.meeting_id].keys.get(some.channel_id, some.key_id)
    assert key is not None
    verify_key = key.verify_key
    one = min(len(auths), 2_000)  # Ed25519 verifications timed (~50 us each)
    parts = {
        "decode_unsigned_us": _per_item(unsigned, decode),
        "decode_signed_us": _per_item(signed, decode),
        "canonical_bytes_us": _per_item(signed, signing.canonical_bytes),
        "leaf_hash_us": _per_item(canonical, merkle.leaf_hash),
        "path_hashes_us": _per_item(list(zip(leaves, auths, strict=True)), _root_holds),
        # As the judge hashes paths (merkle.ProvenTree): only up to the first node a batch-mate proved.
        "proven_path_us": _proven_paths(leaves, auths),
        "ed25519_verify_us": _per_item(auths[:one], lambda auth: signing.signature_holds(verify_key, auth)),
    }
    sizes = Counter(a.batch_size for a in auths)
    return {
        "sample": len(signed),
        "passes": PASSES,
        "mean_path_hashes": round(sum(len(a.path) for a in auths) / len(auths), 2),
        "mean_batch_size": round(sum(n * c for n, c in sizes.items()) / len(auths)),
        "mean_payload_bytes": {"signed": _mean_len(signed), "unsigned": _mean_len(unsigned)},
        "parts": parts,
        # S2 as the judge does it (Judge.signed: path, root, one Ed25519 per batch through its cache).
        "s2_per_submission_us": {
            "workload_batches": _s2(workload, signed),
            **{f"batch_of_{n}": _s2(workload, _batches_of(workload, n, sample)) for n in BATCHES},
        },
        # The whole judge (S5, S1, S3, S2, S6 and the vote's own rules) on the same submissions.
        "judge_us": {
            "unsigned": _judge_all(sampled.unsigned(), unsigned),
            "signed": _judge_all(workload, signed),
        },
    }


def _root_holds(pair: tuple[bytes, ChannelAuth]) -> bool:
    """The per-submission part of S2 after the leaf: the path's hashes up to the claimed root."""
    leaf, auth = pair
    path = [bytes.fromhex(h) for h in auth.path]
    return merkle.root_from_path(leaf, auth.leaf_index, auth.batch_size, path) == bytes.fromhex(auth.root)


def _proven_paths(leaves: list[bytes], auths: list[ChannelAuth]) -> float:
    """Per submission, each path checked against its batch's tree of proven nodes, fresh trees every pass."""
    passes = iter([{} for _ in range(PASSES)])

    def run() -> None:
        trees: dict[tuple[str, int], merkle.ProvenTree] = next(passes)
        for leaf, auth in zip(leaves, auths, strict=True):
            tree = trees.get((auth.root, auth.batch_size))
            if tree is None:
                tree = trees[auth.root, auth.batch_size] = merkle.ProvenTree(auth.batch_size, bytes.fromhex(auth.root))
            assert tree.verify(leaf, auth.leaf_index, auth.path)

    return _best(run, len(leaves))


def _batches_of(workload: Workload, size: int, sample: int) -> list[bytes]:
    """The busiest channel's submissions of the workload signed again in batches of ``size``."""
    assert workload.signer is not None
    signer = workload.signer
    by_channel: dict[str, list[Submission]] = {}
    for event in workload.submissions:
        by_channel.setdefault(signer.key_of(event).channel_id, []).append(event)  # type: ignore[arg-type]
    busiest = max(by_channel.values(), key=len)
    # Batches of one cost ~50 us of Ed25519 each to sign too: a tenth of the sample is plenty.
    count = min(len(busiest), sample if size > 1 else max(1, sample // 10))
    chosen = busiest[:count]
    return [s.payload for s in sign(chosen, signer.key_of(chosen[0]), size)]


def _s2(workload: Workload, payloads: list[bytes]) -> float:
    """Judge.signed per submission, a fresh judge per pass (each batch's Ed25519 and tree counted once)."""
    judges = [_primed(workload) for _ in range(PASSES)]  # primed before the clock
    keys = judges[0].meetings[workload.meeting_id].keys
    items = []
    for payload in payloads:
        auth = decode(payload).auth
        assert auth is not None
        key = keys.get(auth.channel_id, auth.key_id)
        assert key is not None
        items.append((payload, auth, key))
    fresh = iter(judges)

    def run() -> None:
        judge = next(fresh)
        for payload, auth, key in items:
            assert judge.signed(payload, auth, key)

    return _best(run, len(items))


def _judge_all(workload: Workload, payloads: list[bytes]) -> float:
    """The judge per submission as the ledger calls it (with what it received), primed with the admin events."""
    decoded = [(decode(p), Received(p)) for p in payloads]
    judges = iter([_primed(workload) for _ in range(PASSES)])  # primed before the clock: a fresh one per pass

    def run() -> None:
        judge = next(judges)
        for event, received in decoded:
            judge.judge(event, received)

    return _best(run, len(decoded))


def _primed(workload: Workload) -> Judge:
    judge = Judge()
    for event in workload.admin:
        assert judge.judge(event) is None
    return judge


def _per_item(items: Sequence[Any], work: Callable[[Any], Any]) -> float:
    def run() -> None:
        for item in items:
            work(item)

    return _best(run, len(items))


def _best(run: Callable[[], None], count: int) -> float:
    """CPU microseconds per item of the fastest of PASSES passes, the collector paused."""
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(PASSES):
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
    finally:
        if enabled:
            gc.enable()
    return round(best / max(1, count) * 1e6, 2)


def _mean_len(payloads: Sequence[bytes]) -> int:
    return round(sum(map(len, payloads)) / max(1, len(payloads)))

"""The register's digest (issue 12): a complete register is the declared one, not one with the same totals."""

import hashlib

import msgspec
import pytest
import rfc8785

from events import Entitlement, Position, PositionsRecorded, RegisterTotals, encode
from projections.completeness import register_digest, state_of
from projections.judge import Judge
from services.read.register import state_of_payloads
from tests.factories import small_meeting

BROKER = "Harbor Securities LLC (DTC 0015)"
# Version A of a register, and version B: one share moved from C-3 to C-4 (chunk 1 of both), same totals.
A = [
    Position(control_number="C-1", kind="registered", shares=3_000, holders=['Zoë "Z" Ångström', "Li\\Wei"]),
    Position(control_number="C-2", kind="beneficial", shares=2_500, holders=[], nominee=BROKER),
    Position(control_number="C-3", kind="beneficial", shares=2_500, holders=["Ann"], nominee=BROKER),
    Position(control_number="C-4", kind="registered", shares=2_000, holders=["𝔅ob"]),
]
B = [*A[:2], Position(control_number="C-3", kind="beneficial", shares=2_499, holders=["Ann"], nominee=BROKER)]
B += [Position(control_number="C-4", kind="registered", shares=2_001, holders=["𝔅ob"])]
ENTITLEMENTS = {BROKER: 5_000, "Other Bank (DTC 0226)": 0}


def chunks(positions: list[Position], digest: str, sizes=(2, 2)) -> list[PositionsRecorded]:
    out, start = [], 0
    for number, size in enumerate(sizes):
        out.append(
            PositionsRecorded(
                event_id=f"chunk-{number}-{digest[:8]}",
                meeting_id="m1",
                chunk=number,
                chunks=len(sizes),
                positions=positions[start : start + size],
                entitlements=[Entitlement(nominee=n, shares=s) for n, s in ENTITLEMENTS.items()] if number == 0 else [],
            )
        )
        start += size
    return out


DIGEST_A = register_digest(A, ENTITLEMENTS)
DIGEST_B = register_digest(B, ENTITLEMENTS)
DECLARED_A = RegisterTotals(chunks=2, positions=4, shares=10_000, digest=DIGEST_A)


def test_the_digest_is_the_sha256_of_one_rfc8785_line_per_position_by_control_number_then_per_entitlement():
    lines = [rfc8785.dumps(p) for p in sorted((msgspec.to_builtins(p) for p in A), key=lambda p: p["control_number"])]
    lines += [rfc8785.dumps({"nominee": n, "shares": ENTITLEMENTS[n]}) for n in sorted(ENTITLEMENTS)]
    assert DIGEST_A == hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()
    assert b'"nominee":null' in lines[0]  # a registered holding's nominee is written, as null


def test_neither_chunking_nor_the_order_of_the_files_changes_the_digest_but_one_moved_share_does():
    assert register_digest(list(reversed(A)), dict(reversed(ENTITLEMENTS.items()))) == DIGEST_A
    assert DIGEST_B != DIGEST_A and sum(p.shares for p in B) == sum(p.shares for p in A)
    assert register_digest(A, {**ENTITLEMENTS, BROKER: 5_001}) != DIGEST_A
    assert len(DIGEST_A) == 64 and int(DIGEST_A, 16) >= 0


def test_chunks_of_two_versions_with_the_declared_totals_do_not_make_a_complete_register():
    judge = Judge()
    assert judge.judge(small_meeting(outstanding=10_000, register=DECLARED_A)) is None
    mixed = [chunks(A, DIGEST_A)[0], chunks(B, DIGEST_B)[1]]  # an interrupted load of A, then B reloaded
    assert [judge.judge(chunk) for chunk in mixed] == [None, None]
    state = judge.meetings["m1"].register_state
    assert state.counts_match and not state.complete and state.digest == DIGEST_B
    assert state.shortfalls() == [
        f"the recorded register differs from the declared one (digest {DIGEST_B[:16]}…, declared {DIGEST_A[:16]}…)"
    ]
    assert state.summary().startswith("INCOMPLETE: the recorded register differs from the declared one")
    assert state.as_dict()["digest"] == DIGEST_B and state.as_dict()["declared"]["digest"] == DIGEST_A
    # The read side (tally, status, report final) says the same from the chunks' payloads.
    assert state_of_payloads(DECLARED_A, [encode(c) for c in mixed]) == state


@pytest.mark.parametrize("sizes", [(2, 2), (1, 3)])
def test_the_declared_register_however_chunked_is_complete_on_the_judge_and_the_read_side(sizes):
    judge = Judge()
    declared = RegisterTotals(chunks=len(sizes), positions=4, shares=10_000, digest=DIGEST_A)
    assert judge.judge(small_meeting(outstanding=10_000, register=declared)) is None
    recorded = chunks(A, DIGEST_A, sizes)
    assert [judge.judge(chunk) for chunk in reversed(recorded)] == [None, None]
    state = judge.meetings["m1"].register_state
    assert state.complete and state.digest == DIGEST_A and state.shortfalls() == []
    assert state_of_payloads(declared, [encode(c) for c in reversed(recorded)]) == state


def test_the_digest_is_computed_only_once_every_count_matches():
    def never() -> str:
        raise AssertionError("digest computed for a register whose counts already say it is incomplete")

    partial = state_of(DECLARED_A, {0}, 2, 2, 5_500, digest=never)
    assert not partial.complete and partial.digest is None
    assert partial.shortfalls()[0] == "1 of 2 chunks recorded (missing 1)"
    short = state_of(DECLARED_A, {0, 1}, 2, 4, 9_999, digest=never)
    assert short.shortfalls() == ["9,999 of 10,000 declared shares"]
    undeclared = state_of(RegisterTotals(chunks=2, positions=4, shares=10_000), {0, 1}, 2, 4, 10_000, digest=never)
    assert undeclared.complete and undeclared.digest is None
    # The read side decodes one chunk of two by its shares alone.
    assert state_of_payloads(DECLARED_A, [encode(chunks(A, DIGEST_A)[0])]).shortfalls()[0].startswith("1 of 2")

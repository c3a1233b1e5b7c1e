"""Holder receipts and consistency proofs over a meeting's Merkle tree (RFC 9162), pure: built, checked, tampered."""

from dataclasses import replace
from datetime import UTC, datetime

import msgspec
import pytest

from events import encode
from projections.chain import ChainCheck
from projections.heads import Head, HeadCheck, decode_head, encode_head
from projections.log_row import chained_records, log_row_of
from projections.receipt_check import check_consistency, check_receipt, describe
from projections.receipts import BadBundle, Tree, build_receipt, decode_consistency, decode_receipt, encode_bundle
from tests.chain_helpers import as_chain_row, rechain
from tests.factories import POSITIONS, cast, register_event, revoke, small_meeting

RECORDED = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
APPENDED = datetime(2026, 5, 1, 9, 29, 59, 123456, tzinfo=UTC)

FIRST = cast("R-1", {"2": "for"}, executed=1, event_id="internet:R-1:a")
OTHER = cast("R-2", {"2": "against"}, executed=2, channel="phone", event_id="phone:R-2:a", submitted_by="Dana")
LATER = cast("R-1", {"2": "against"}, executed=3, event_id="internet:R-1:b")
EVENTS = [small_meeting(), register_event(), FIRST, OTHER, cast("B-1", {"3": "for"}, channel="broker"), LATER]
EVENTS += [cast(f"R-{n % 2 + 1}", {"3": "abstain"}, executed=0.5, event_id=f"old-{n}") for n in range(7)]


def log_of(events) -> list:
    """The meeting's log as ChainRows (chain v3, with broker append times), as the ledger appends them."""
    rows = [
        log_row_of(e, encode(e).decode(), "accepted", None, ("votes.submissions", 0, i), APPENDED)
        for i, e in enumerate(events)
    ]
    return [as_chain_row(r) for r in chained_records(rows, 0, {}, RECORDED)]


LOG = log_of(EVENTS)


def receipt_for(log, event_id: str, size: int | None = None):
    """A receipt for an event as `audit prove` builds it: the control number's rows and the meeting's rows."""
    size = size or len(log)
    tree = Tree([r.hash for r in log[:size]])
    (index,) = [i for i, r in enumerate(log) if r.event_id == event_id]
    control_number = EVENTS[index].control_number
    others = [(i, r) for i, r in enumerate(log[:size]) if getattr(EVENTS[i], "control_number", None) == control_number]
    rules = [(i, r) for i, r in enumerate(log[:size]) if r.type in ("meeting.scheduled", "polls.closed")]
    register = next(p for p in POSITIONS if p.control_number == control_number)
    return build_receipt(
        tree, (index, log[index]), control_number, [o for o in others if o[0] != index], rules, register
    )


def head_of(log, size: int | None = None) -> tuple[int, str]:
    head = Tree([r.hash for r in log[: size or len(log)]]).head()
    return head.tree_size, head.merkle_root


def test_a_receipt_round_trips_through_its_file_and_checks_valid_naming_the_decision_and_what_counts():
    receipt = receipt_for(LOG, LATER.event_id)
    again = decode_receipt(encode_bundle(receipt))
    assert again == receipt and again.submission.appended_at == APPENDED
    check = check_receipt(again, pinned=head_of(LOG))
    assert check.valid, check.problems
    assert (check.status.status, check.counts.event_id) == ("counts", LATER.event_id)
    assert describe(check).startswith("COUNTS: the instruction the tally counts for control number R-1")
    assert check.as_dict()["row_hash"] == LOG[5].hash.hex() and check.as_dict()["decision"] == "accepted"


def test_the_bundle_holds_the_control_numbers_rows_and_hashes_of_other_rows_never_their_contents():
    receipt = receipt_for(LOG, FIRST.event_id)
    text = encode_bundle(receipt).decode()
    assert OTHER.event_id not in text and "Dana" not in text  # R-2's vote is only a hash on a path
    assert {r.event_id for r in receipt.others} == {LATER.event_id, "old-0", "old-2", "old-4", "old-6"}
    assert len(receipt.submission.path) == 4  # ceil(log2(13)) hashes prove one of 13 rows


def test_a_superseded_submission_says_which_later_row_superseded_it_and_by_which_rule():
    check = check_receipt(receipt_for(LOG, FIRST.event_id))
    assert check.valid, check.problems
    assert (check.status.status, check.status.rule, check.status.by.event_id) == ("superseded", "R5", LATER.event_id)
    assert describe(check) == f"DOES NOT COUNT: superseded under R5 by #6 {LATER.event_id}"


def test_a_revoked_submission_names_the_revocation():
    log = log_of([*EVENTS, revoke("R-2", executed=5, event_id="mail:R-2:revoke")])
    receipt = build_receipt(
        Tree([r.hash for r in log]),
        (3, log[3]),
        "R-2",
        [(i, log[i]) for i in (7, 9, 11, 13)],
        [(0, log[0])],
        POSITIONS[1],
    )
    check = check_receipt(receipt)
    assert check.valid and (check.status.rule, check.status.by.event_id) == ("R7", "mail:R-2:revoke")


def test_the_holder_sees_a_changed_submission_in_the_bundle_as_invalid():
    receipt = receipt_for(LOG, LATER.event_id)
    forged = msgspec.structs.replace(
        receipt.submission, payload=receipt.submission.payload.replace('"against"', '"for"')
    )
    check = check_receipt(msgspec.structs.replace(receipt, submission=forged))
    assert not check.valid and "does not lead to the head's root" in check.problems[0]


def test_a_proof_fails_after_a_row_is_altered_and_re_hashed_because_the_root_no_longer_matches_the_head():
    published = head_of(LOG)  # the head the ledger published before the edit
    altered = [replace(r, payload=r.payload.replace('"against"', '"for"')) if i == 5 else r for i, r in enumerate(LOG)]
    forged_log = rechain(altered)
    walk = ChainCheck()
    walk.feed(forged_log)
    assert walk.first_break is None  # the chain alone no longer shows the edit
    receipt = receipt_for(forged_log, LATER.event_id)
    assert check_receipt(receipt).valid  # consistent in itself...
    check = check_receipt(receipt, pinned=published)  # ...but not the tree the published head describes
    assert not check.valid and "is not the pinned root" in check.problems[0]
    claimed = msgspec.structs.replace(receipt, head=msgspec.structs.replace(receipt.head, merkle_root=published[1]))
    problems = check_receipt(claimed).problems
    assert problems and all("does not lead to the head's root" in p for p in problems)
    # Any row before the edit proves against the forged tree only: its path carries the new hashes.
    early = check_receipt(receipt_for(forged_log, FIRST.event_id), pinned=published)
    assert not early.valid


def test_a_proof_against_a_head_of_another_size_fails():
    receipt = receipt_for(LOG, FIRST.event_id, size=8)
    assert check_receipt(receipt, pinned=head_of(LOG, 8)).valid
    check = check_receipt(receipt, pinned=head_of(LOG, 9))
    assert not check.valid and "not the pinned head of 9" in check.problems[0]
    resized = msgspec.structs.replace(receipt, head=msgspec.structs.replace(receipt.head, tree_size=9))
    assert not check_receipt(resized).valid  # the path does not fit a tree of 9


def test_a_receipt_at_a_head_before_a_later_row_says_it_counts_there():
    check = check_receipt(receipt_for(LOG, FIRST.event_id, size=5))
    assert check.valid and check.status.status == "counts" and not check.polls_closed
    assert "a later submission may change it" in describe(check)


def test_rows_of_another_control_number_slipped_into_the_bundle_are_refused():
    receipt = receipt_for(LOG, FIRST.event_id)
    tree = Tree([r.hash for r in LOG])
    stranger = msgspec.structs.replace(receipt, others=[*receipt.others, tree.prove(LOG[3], 3)])
    check = check_receipt(stranger)
    assert not check.valid and "not of control number R-1" in check.problems[0]


def test_a_receipt_of_a_rejected_submission_proves_that_row_alone_never_the_holders_other_rows_or_shares():
    # Anyone able to publish can get an unsigned vote naming R-1's control number rejected; its
    # receipt, built as for an accepted row, would hand over R-1's votes and register position.
    probe = cast("R-1", {"2": "against"}, executed=4, event_id="prober-1", submitted_by="nobody")
    rows = [
        log_row_of(e, encode(e).decode(), *decision, ("votes.submissions", 0, i), APPENDED)
        for i, (e, decision) in enumerate(
            [(e, ("accepted", None)) for e in EVENTS[:4]] + [(probe, ("rejected", "signature_required"))]
        )
    ]
    log = [as_chain_row(r) for r in chained_records(rows, 0, {}, RECORDED)]
    receipt = build_receipt(Tree([r.hash for r in log]), (4, log[4]), "R-1", [(2, log[2])], [(0, log[0])], POSITIONS[0])
    assert (receipt.others, receipt.meeting, receipt.register, receipt.state) == ([], [], None, None)
    text = encode_bundle(receipt).decode()
    assert FIRST.event_id not in text and OTHER.event_id not in text  # no vote of R-1's, nor anyone else's
    check = check_receipt(decode_receipt(encode_bundle(receipt)), pinned=head_of(log))
    assert check.valid, check.problems
    assert describe(check) == "DOES NOT COUNT: rejected by the ledger (signature_required)"


def test_a_bundle_that_names_no_control_number_for_a_vote_is_invalid_rather_than_silent_on_what_superseded_it():
    receipt = receipt_for(LOG, FIRST.event_id)  # superseded by LATER (R5)
    check = check_receipt(msgspec.structs.replace(receipt, control_number=None))
    assert not check.valid and "names control number None, the submission R-1" in check.problems[0]


def test_a_hash_on_an_audit_path_that_is_not_32_bytes_is_refused():
    receipt = receipt_for(LOG, FIRST.event_id)
    path = [receipt.submission.path[0] + "00", *receipt.submission.path[1:]]
    check = check_receipt(
        msgspec.structs.replace(receipt, submission=msgspec.structs.replace(receipt.submission, path=path))
    )
    assert not check.valid and "not 32 bytes" in check.problems[0]


def test_a_file_that_is_not_a_bundle_is_refused_in_one_line():
    with pytest.raises(BadBundle, match="not a vote-ledger.receipt bundle"):
        decode_receipt(b'{"type": "chain.head"}')
    with pytest.raises(BadBundle):
        decode_consistency(encode_bundle(receipt_for(LOG, FIRST.event_id)))


def test_a_consistency_proof_shows_a_later_head_extends_an_earlier_one():
    tree = Tree([r.hash for r in LOG])
    old = head_of(LOG, 5)
    for size in range(1, len(LOG) + 1):
        bundle = decode_consistency(encode_bundle(tree.consistency("m1", size, head_of(LOG, size)[1])))
        assert check_consistency(bundle, old=head_of(LOG, size), new=head_of(LOG)) == []
    assert check_consistency(tree.consistency("m1", 5, old[1]), new=head_of(LOG, 12))  # not the new head held


def test_a_consistency_proof_fails_when_an_earlier_row_was_rewritten():
    old = head_of(LOG, 8)
    forged_log = rechain([replace(r, reason="edited") if i == 3 else r for i, r in enumerate(LOG)])
    bundle = Tree([r.hash for r in forged_log]).consistency("m1", *old)
    problems = check_consistency(bundle, old=old)
    assert problems and "rows before it were rewritten or removed" in problems[-1]
    # Rewriting a row after the old head keeps it consistent with that head, not with the new head published.
    later = rechain([replace(r, reason="edited") if i == 10 else r for i, r in enumerate(LOG)])
    bundle = Tree([r.hash for r in later]).consistency("m1", *old)
    assert check_consistency(bundle, old=old) == []
    assert check_consistency(bundle, old=old, new=head_of(LOG))


def test_heads_published_before_merkle_roots_still_parse_and_new_heads_carry_the_tree():
    old = b'{"type":"chain.head","v":1,"chain":"meeting","meeting_id":"m1","position":3,"hash":"00","rows":3,'
    old += b'"recorded_at":"2026-01-01T00:00:00+00:00","published_at":"2026-01-01T00:00:01+00:00"}'
    head = decode_head(old)
    assert (head.tree_size, head.merkle_root) == (None, None)
    size, root = head_of(LOG)
    new = Head(chain="meeting", meeting_id="m1", position=13, hash="ab", rows=13, recorded_at="x", published_at="y")
    new.tree_size, new.merkle_root = size, root
    assert decode_head(encode_head(new)) == new


def _head(log, size: int, root: str | None = None) -> Head:
    return Head(
        chain="meeting",
        meeting_id="m1",
        position=log[size - 1].position,
        hash=log[size - 1].hash.hex(),
        rows=size,
        recorded_at="x",
        published_at="y",
        tree_size=size,
        merkle_root=root or head_of(log, size)[1],
    )


def test_audit_verify_checks_every_heads_merkle_root_against_the_tree_of_the_log():
    check = HeadCheck([_head(LOG, 4), _head(LOG, 13)])
    check.feed([(r.position, r.hash) for r in LOG])
    check.finish()
    assert check.failures == []
    wrong = HeadCheck([_head(LOG, 4, root="00" * 32)])
    wrong.feed([(r.position, r.hash) for r in LOG])
    assert "is not the tree of the chain's 4 rows" in wrong.failures[0].detail


def test_the_paths_of_several_rows_hashed_at_once_are_each_rows_own_path():
    from projections import merkle

    leaves = [merkle.leaf_hash(bytes([n])) for n in range(37)]
    indices = [0, 5, 31, 32, 36]
    assert merkle.inclusion_paths_of(leaves, indices) == [merkle.inclusion_path(leaves, i) for i in indices]
    with pytest.raises(ValueError, match="leaf 37 is not in a tree of 37"):
        merkle.inclusion_paths_of(leaves, [37])


def test_the_row_hash_from_the_ledgers_answer_pins_the_submissions_row():
    receipt = receipt_for(LOG, LATER.event_id)
    assert check_receipt(receipt, row_hash=LOG[5].hash.hex().upper()).valid
    check = check_receipt(receipt, row_hash=LOG[4].hash.hex())
    assert not check.valid and f"hashes to {LOG[5].hash.hex()}, not {LOG[4].hash.hex()}" in check.problems[0]


def test_audit_receipt_checks_a_bundle_file_offline_and_exits_1_when_it_does_not_hold(tmp_path, capsys):
    from services.cli import main

    path = tmp_path / "receipt.json"
    path.write_bytes(encode_bundle(receipt_for(LOG, FIRST.event_id)))
    size, root = head_of(LOG)
    assert main(["audit", "receipt", str(path), "--head-size", str(size), "--root", root]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"VALID receipt: event {FIRST.event_id} of meeting m1, log position 3")
    assert "ok   that is the head you pinned" in out and f"superseded under R5 by #6 {LATER.event_id}" in out
    assert main(["audit", "receipt", str(path), "--head-size", "12", "--root", head_of(LOG, 12)[1]]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID receipt") and "FAIL the proof is against a head of 13 rows" in out


@pytest.mark.parametrize(
    "args, error",
    [
        (["--head-size", "3"], "pin the head with both its size and its root, or neither"),
        (["--root", "ab"], "argument --root: not a hash of 64 hex digits: 'ab'"),
    ],
)
def test_audit_receipt_refuses_half_a_pinned_head_in_one_line(tmp_path, capsys, args, error):
    from services.cli import main

    path = tmp_path / "receipt.json"
    path.write_bytes(encode_bundle(receipt_for(LOG, FIRST.event_id)))
    try:
        code = main(["audit", "receipt", str(path), *args])
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and error in err and "Traceback" not in err


@pytest.mark.parametrize("content", [None, b"{}", b"not json", b'{"type": "vote-ledger.consistency", "v": 1}'])
def test_a_missing_file_or_one_that_is_no_receipt_is_one_line(tmp_path, capsys, content):
    from services.cli import main

    path = tmp_path / "bundle.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["audit", "receipt", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"vote-ledger: {path}: ")
    assert main(["audit", "receipt", str(tmp_path)]) == 2 and "not a regular file" in capsys.readouterr().err


def test_audit_consistency_check_holds_offline_and_fails_on_a_rewritten_log(tmp_path, capsys):
    from services.cli import main

    old = head_of(LOG, 8)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(encode_bundle(Tree([r.hash for r in LOG]).consistency("m1", *old)))
    forged_log = rechain([replace(r, reason="edited") if i == 3 else r for i, r in enumerate(LOG)])
    bad.write_bytes(encode_bundle(Tree([r.hash for r in forged_log]).consistency("m1", *old)))
    pins = ["--old-size", "8", "--old-root", old[1], "--new-size", "13", "--new-root", head_of(LOG)[1]]
    assert main(["audit", "consistency", "--check", str(good), *pins]) == 0
    assert capsys.readouterr().out.rstrip().endswith("\nCONSISTENT")
    assert main(["audit", "consistency", "--check", str(bad), *pins[:4]]) == 1
    out = capsys.readouterr().out
    assert "rows before it were rewritten or removed" in out and out.rstrip().endswith("NOT CONSISTENT")
    assert main(["audit", "consistency", "--check", str(good), "--meeting", "m1"]) == 2
    assert "give exactly one of --meeting, --file and --check" in capsys.readouterr().err


def test_a_receipt_applies_a_cut_off_moved_earlier_after_the_vote_was_logged_as_the_tally_does():
    """R12 as amended: the tally drops an internet vote received after a cut-off that took effect before it."""
    from events import CutoffChanged, Cutoffs, ItemCorrected, MeetingAdjourned, MeetingCorrected
    from projections.receipts import MEETING_RULES_TYPES
    from projections.replay import replay
    from tests.factories import at

    spec = small_meeting(cutoffs=Cutoffs(internet=at(8), phone=at(8)))
    vote = cast("R-1", {"2": "against"}, executed=6, event_id="internet/R-1/six")
    change = CutoffChanged(event_id="cut", meeting_id="m1", channel="internet", cutoff=at(5), effective_at=at(4))
    fix = MeetingCorrected(
        event_id="fix", meeting_id="m1", effective_at=at(1), items=[ItemCorrected(id="3", recommendation="against")]
    )
    moved = MeetingAdjourned(event_id="later", meeting_id="m1", meeting_at=at(24 * 31), effective_at=at(2))
    events = [spec, register_event(), vote, change, fix, moved]
    assert replay(events).tallies["m1"].item_totals()["2"] == {}  # the tally counts nothing of it
    log = log_of(events)
    rules = [(i, r) for i, r in enumerate(log) if r.type in MEETING_RULES_TYPES]
    assert [r.type for _, r in rules] == [
        "meeting.scheduled",
        "meeting.cutoff_changed",
        "meeting.corrected",
        "meeting.adjourned",
    ]
    receipt = build_receipt(Tree([r.hash for r in log]), (2, log[2]), "R-1", [], rules, POSITIONS[0])
    check = check_receipt(decode_receipt(encode_bundle(receipt)))
    assert check.valid, check.problems
    assert (check.status.status, check.status.rule, check.counts) == ("superseded", "R12", None)
    assert describe(check) == "DOES NOT COUNT: superseded under R12"
    # An older bundle (no amendment rows) still checks, by the rules it carries.
    older = build_receipt(Tree([r.hash for r in log]), (2, log[2]), "R-1", [], rules[:1], POSITIONS[0])
    assert check_receipt(older).valid and check_receipt(older).status.status == "counts"


def test_the_log_adapter_reads_exactly_the_meeting_rows_a_receipt_carries():
    from projections.receipts import MEETING_RULES_TYPES
    from services.adapters.postgres.log.proofs import RULES_TYPES_SQL

    assert RULES_TYPES_SQL == "(" + ", ".join(f"'{t}'" for t in MEETING_RULES_TYPES) + ")"

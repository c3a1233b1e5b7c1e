"""Which row `audit prove` proves among those logged under one event id (services.read.proof_trees.choose_row)."""

import pytest

from projections.chain import ChainRow
from services.read.proof_trees import ProofError, choose_row


def row(position: int, decision: str = "rejected", reason: str | None = "signature_required", meeting: str = "m1"):
    return ChainRow(
        position=position,
        prev_position=None,
        meeting_id=meeting,
        event_id="acme-web:0042",
        type="vote.cast",
        decision=decision,
        reason=None if decision == "accepted" else reason,
        payload="{}",
        hash=position.to_bytes(32, "big"),
    )


ATTACKER, VICTIM, LATER_COPY = row(3), row(7, "accepted"), row(9, reason="duplicate_event_id")


def test_the_accepted_row_is_proven_though_an_attackers_rejected_row_was_logged_first_under_the_id():
    assert choose_row([ATTACKER, VICTIM, LATER_COPY], "acme-web:0042") is VICTIM


def test_the_row_hash_of_the_ledgers_answer_selects_the_rejected_row():
    assert choose_row([ATTACKER, VICTIM], "acme-web:0042", row_hash=ATTACKER.hash.hex()) is ATTACKER


def test_a_position_selects_exactly_that_row():
    assert choose_row([ATTACKER, VICTIM, LATER_COPY], "acme-web:0042", position=9) is LATER_COPY


def test_a_selector_no_row_under_the_id_matches_is_refused_listing_the_rows():
    with pytest.raises(
        ProofError, match=r"no row under event id 'acme-web:0042' is at position 5 \(its rows: position 3"
    ):
        choose_row([ATTACKER, VICTIM], "acme-web:0042", position=5)
    with pytest.raises(ProofError, match="with row hash " + "ab" * 32):
        choose_row([ATTACKER, VICTIM], "acme-web:0042", row_hash="ab" * 32)


def test_a_single_rejected_row_is_proven_without_a_selector():
    assert choose_row([ATTACKER], "acme-web:0042") is ATTACKER


def test_several_rejected_rows_and_none_accepted_ask_for_a_selector_listing_their_positions():
    with pytest.raises(ProofError) as exc:
        choose_row([ATTACKER, row(5, reason="bad_signature")], "acme-web:0042")
    message = str(exc.value)
    assert "has 2 rows, none accepted, at position 3 (rejected: signature_required)" in message
    assert "position 5 (rejected: bad_signature)" in message and "--position N or --row-hash HASH" in message
    assert "\n" not in message


def test_accepted_rows_in_several_meetings_ask_for_the_meeting():
    with pytest.raises(ProofError, match="is accepted in meetings m1, m2: pass --meeting"):
        choose_row([VICTIM, row(8, "accepted", meeting="m2")], "acme-web:0042")


def test_an_accepted_row_in_one_meeting_is_proven_whatever_rejected_rows_other_meetings_hold():
    assert choose_row([row(2, meeting="m0"), VICTIM], "acme-web:0042") is VICTIM

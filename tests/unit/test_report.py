"""The final report (Form 8-K Item 5.07) and the log digest, from hand-built inputs: no I/O."""

import hashlib
import json

import msgspec
import pytest

from projections.digest import LogDigest, canonical_row, log_digest
from projections.overvotes import OverVote
from projections.report import final_report, percent, render_csv, render_json, render_markdown
from tests.factories import small_meeting

DIGEST = "sha256:" + "ab" * 32
# Present 9,333 of 10,000: R-1 3,000, R-2 333 of 1,000 (R2), Broker X's B-1 and B-2 6,000.
TOTALS = {
    "1.1": {"for": 5000, "against": 3333},
    "1.2": {"for": 3333, "broker_non_vote": 6000},
    "2": {"for": 8333, "against": 1000},
    "3": {"for": 7167, "against": 1166, "abstain": 0, "broker_non_vote": 1000},
    "5": {"1y": 2000, "3y": 3333, "broker_non_vote": 4000},
}
OVERVOTE = OverVote("Broker X", "1.1", 5000, {"for": 2000, "against": 4000}, {"for": 1667, "against": 3333}, "prorate")


def report(present=9333, totals=TOTALS, overvotes=(), **spec):
    return final_report(small_meeting(**spec), present, totals, list(overvotes), 42, DIGEST)


def test_the_report_gives_each_item_its_8k_columns_title_and_outcome():
    items = report()["items"]
    assert items["1.1"] == {
        "title": "Director A",
        "kind": "director",
        "for": 5000,
        "against": 3333,
        "abstain": 0,
        "broker_non_votes": 0,
        "outcome": "elected",
    }
    assert items["1.2"]["broker_non_votes"] == 6000 and items["1.2"]["outcome"] == "elected"
    assert items["3"] == {
        "title": "Plan",
        "kind": "proposal",
        "for": 7167,
        "against": 1166,
        "abstain": 0,
        "broker_non_votes": 1000,
        "outcome": "passed",
    }
    assert items["5"] == {
        "title": "Frequency",
        "kind": "frequency",
        "1y": 2000,
        "2y": 0,
        "3y": 3333,
        "abstain": 0,
        "broker_non_votes": 4000,
        "outcome": "3y",
    }


def test_the_report_gives_shares_present_outstanding_the_quorum_and_the_log_point():
    r = report()
    assert r["outstanding"] == 10_000
    assert r["quorum"] == {
        "fraction": "1/3",
        "required": 3334,
        "present": 9333,
        "met": True,
        "present_percent": "93.33",
    }
    assert r["log"] == {"position": 42, "digest": DIGEST}


def test_without_quorum_every_outcome_is_no_quorum_and_the_quorum_is_not_met():
    r = report(present=3333, totals={"2": {"for": 3333}})
    assert r["quorum"]["met"] is False and r["quorum"]["present_percent"] == "33.33"
    assert {item["outcome"] for item in r["items"].values()} == {"no_quorum"}
    assert "3,334 required (1/3): **not met**" in render_markdown(r)


@pytest.mark.parametrize(
    "part, whole, expected",
    [
        (1, 3, "33.33"),
        (2, 3, "66.67"),
        (1, 8, "12.50"),
        (10_000, 10_000, "100.00"),
        (0, 7, "0.00"),
        (1, 800, "0.13"),  # exactly 0.125 %: half up (a float round() gives 0.12)
        (1, 1600, "0.06"),
        (5, 1_000_000, "0.00"),
        (81_010_879, 89_467_190, "90.55"),
        (2**70 + 1, 2**71, "50.00"),  # beyond a float's 53 bits
    ],
)
def test_the_quorum_percentage_has_two_decimals_rounded_half_up_from_integers(part, whole, expected):
    assert percent(part, whole) == expected


def test_the_json_report_has_stable_keys_in_a_fixed_order():
    r = report(overvotes=[OVERVOTE])
    parsed = json.loads(render_json(r))
    assert list(parsed) == [
        "report_title",
        "preliminary",
        "meeting_id",
        "company",
        "title",
        "meeting_at",
        "timezone",
        "record_date",
        "outstanding",
        "quorum",
        "items",
        "over_votes",
        "register",
        "log",
        "as_of_position",  # the same as log.position: every JSON read and API answer names it so (issue 13)
    ]
    assert list(parsed["items"]) == ["1.1", "1.2", "2", "3", "5"]
    assert list(parsed["items"]["5"]) == ["title", "kind", "1y", "2y", "3y", "abstain", "broker_non_votes", "outcome"]
    assert parsed["over_votes"] == [
        {
            "nominee": "Broker X",
            "item_id": "1.1",
            "entitlement": 5000,
            "voted": {"for": 2000, "against": 4000},
            "counted": {"for": 1667, "against": 3333},
            "policy": "prorate",
            "rejected": [],
        }
    ]
    assert render_json(r) == render_json(report(overvotes=[OVERVOTE]))


def test_the_csv_report_is_a_header_and_one_row_per_item_without_position_or_digest():
    assert render_csv(report()) == (
        "item,title,for,against,abstain,1y,2y,3y,broker_non_votes,outcome\n"
        "1.1,Director A,5000,3333,0,,,,0,elected\n"
        "1.2,Director B,3333,0,0,,,,6000,elected\n"
        "2,Auditor,8333,1000,0,,,,0,passed\n"
        "3,Plan,7167,1166,0,,,,1000,passed\n"
        "5,Frequency,,,0,2000,0,3333,4000,3y\n"
    )


def test_the_markdown_report_has_a_heading_meeting_and_quorum_lines_a_table_per_kind_and_a_footer():
    lines = render_markdown(report(overvotes=[OVERVOTE])).splitlines()
    assert lines[0] == "# Item 5.07 Submission of Matters to a Vote of Security Holders"
    assert lines[2] == (
        "Test Co, Annual meeting (`m1`), held 2023-12-01 09:00+08:00 (Asia/Shanghai); record date 2023-11-01."
    )
    assert lines[4] == (
        "Quorum: 9,333 of 10,000 shares outstanding present in person or by proxy (93.33 %);"
        " 3,334 required (1/3): **met**."
    )
    assert [line for line in lines if line.startswith("## ")] == [
        "## Election of directors",
        "## Proposals",
        "## Frequency of advisory votes",
    ]
    assert "| Item | Nominee | For | Against | Abstain | Broker non-votes | Outcome |" in lines
    assert "| 1.2 | Director B | 3,333 | 0 | 0 | 6,000 | elected |" in lines
    assert "| 3 | Plan | 7,167 | 1,166 | 0 | 1,000 | passed |" in lines
    assert "| Item | Proposal | 1 year | 2 years | 3 years | Abstain | Broker non-votes | Outcome |" in lines
    assert "| 5 | Frequency | 2,000 | 0 | 3,333 | 0 | 4,000 | 3 years |" in lines
    assert any(line.startswith("Over-votes (R17, policy prorate): 1 nominee/item pair(s)") for line in lines)
    assert lines[-1] == f"_Computed at log position 42, digest {DIGEST}._"


def test_a_title_with_a_pipe_does_not_break_the_markdown_table():
    spec = small_meeting()
    items = [msgspec.structs.replace(item, title="Plan | amended") if item.id == "3" else item for item in spec.items]
    markdown = render_markdown(report(items=items))
    assert "| 3 | Plan \\| amended | 7,167 |" in markdown


ROWS = [
    {
        "position": 1,
        "event_id": "meeting-1",
        "decision": "accepted",
        "reason": None,
        "payload": '{"type":"meeting.scheduled","meeting_id":"m1"}',
    },
    {
        "position": 3,
        "event_id": "e1",
        "decision": "accepted",
        "reason": None,
        "payload": '{"type":"vote.cast","choices":{"2":"for"},"holder":"Zoë"}',
    },
    {
        "position": 4,
        "event_id": "e2",
        "decision": "rejected",
        "reason": "not_entitled",
        "payload": '{"type": "vote.cast", "control_number": "X-1"}',
    },
]


def test_the_digest_is_sha256_of_the_canonical_rows_in_position_order():
    expected = hashlib.sha256(
        b'1\tmeeting-1\taccepted\t\t{"type":"meeting.scheduled","meeting_id":"m1"}\n'
        + '3\te1\taccepted\t\t{"type":"vote.cast","choices":{"2":"for"},"holder":"Zoë"}\n'.encode()
        + b'4\te2\trejected\tnot_entitled\t{"type": "vote.cast", "control_number": "X-1"}\n'
    ).hexdigest()
    assert log_digest(ROWS, up_to=4) == "sha256:" + expected
    assert (
        canonical_row(**ROWS[2]) == b'4\te2\trejected\tnot_entitled\t{"type": "vote.cast", "control_number": "X-1"}\n'
    )
    assert log_digest([], up_to=4) == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_the_digest_is_stable_across_calls_chunkings_and_payload_types():
    whole = log_digest(ROWS, up_to=4)
    chunked = LogDigest(up_to=4)
    for row in ROWS:
        chunked.update([row])
    as_bytes = [{**row, "payload": row["payload"].encode()} for row in ROWS]
    assert whole == log_digest(ROWS, up_to=4) == chunked.hexdigest() == log_digest(as_bytes, up_to=4)
    assert chunked.rows == 3 and chunked.last_position == 4


def _tampered(text: str, offset: int) -> bytes:
    """The UTF-8 form of ``text`` with the byte at ``offset`` changed."""
    raw = bytearray(text.encode())
    raw[offset] = ord("#") if raw[offset] != ord("#") else ord("$")
    return bytes(raw)


def test_the_digest_changes_when_any_byte_of_any_row_changes():
    original = log_digest(ROWS, up_to=10)
    for index, row in enumerate(ROWS):
        for name in ("event_id", "decision", "reason", "payload"):
            for offset in range(len((row[name] or "").encode())):
                changed = [dict(r) for r in ROWS]
                tampered = _tampered(row[name], offset)
                # The payload is hashed as stored bytes; the other fields are text columns.
                changed[index][name] = tampered if name == "payload" else tampered.decode()
                assert log_digest(changed, up_to=10) != original, (index, name, offset)
        changed = [dict(r) for r in ROWS]
        changed[index]["reason"] = "x" if row["reason"] is None else None  # a reason added or removed
        assert log_digest(changed, up_to=10) != original
    renumbered = [ROWS[0], ROWS[1], {**ROWS[2], "position": 5}]
    assert log_digest(renumbered, up_to=10) != original
    assert log_digest(ROWS[:1] + ROWS[2:], up_to=10) != original  # a row dropped


def test_the_digest_covers_rows_up_to_the_position_only_and_refuses_rows_out_of_order():
    assert log_digest(ROWS, up_to=3) == log_digest(ROWS[:2], up_to=10)
    assert log_digest(ROWS, up_to=3) != log_digest(ROWS, up_to=4)
    with pytest.raises(ValueError, match="out of position order"):
        log_digest([ROWS[1], ROWS[0]], up_to=10)
    with pytest.raises(ValueError, match="out of position order"):
        log_digest([ROWS[0], ROWS[0]], up_to=10)

"""A real register read from CSV files: every problem named FILE:LINE:COLUMN, totals reconciled (no I/O but files)."""

from __future__ import annotations

import codecs
import shutil
from pathlib import Path

import msgspec
import pytest

from events import decode, encode
from projections.judge import Judge
from services.registers.build import RegisterError, load_register
from services.registers.meeting_file import load_meeting_file

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
REGISTER = MEETINGS / "alder-2025-agm-register"


@pytest.fixture
def register(tmp_path) -> Path:
    """A copy of the example register, to break."""
    return Path(shutil.copytree(REGISTER, tmp_path / "register"))


def edit(register: Path, name: str, old: str, new: str) -> None:
    """Replace exactly one occurrence of ``old`` in a register file."""
    path = register / name
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def problems(register: Path, meeting: Path = MEETING) -> list[str]:
    """The problems a load reports, each as FILE:LINE:COLUMN: what, the register directory left out."""
    with pytest.raises(RegisterError) as refused:
        load_register(meeting, register)
    return [str(p).removeprefix(f"{register}/") for p in refused.value.problems]


def test_the_example_register_loads_reconciles_and_declares_its_totals():
    loaded = load_register(MEETING, REGISTER)
    (chunk,) = loaded.chunks
    registered = [p for p in chunk.positions if p.kind == "registered"]
    beneficial = [p for p in chunk.positions if p.kind == "beneficial"]
    assert (len(registered), len(beneficial)) == (13, 26)
    assert not any("Cede" in h for p in chunk.positions for h in p.holders)  # it votes through its participants
    assert ["David Reyes", "Elena Reyes"] in [p.holders for p in registered]  # joint holders, split on ";"
    assert any(p.holders == [] for p in beneficial)  # an objecting owner, not named to the issuer
    assert {e.nominee: e.shares for e in chunk.entitlements} == {
        "Harbor Securities LLC (DTC 0015)": 3_812_400,
        "Northgate Brokerage, Inc. (DTC 0164)": 2_705_150,
        "Fairmont Clearing Corp. (DTC 0226)": 2_118_000,
        "Lakeside Trust Bank, N.A. (DTC 0902)": 1_361_450,
    }
    totals = loaded.meeting.register
    assert totals is not None and (totals.chunks, totals.positions) == (1, 39)
    assert totals.shares == sum(p.shares for p in chunk.positions) == 12_480_000 + 2_500 - 6_000
    books = {p.number: (p.entitlement, p.shares, p.difference) for p in loaded.reconciliation.participants}
    assert books["0164"] == (2_705_150, 2_707_650, 2_500)  # over: its owners can over-vote (R17)
    assert books["0226"] == (2_118_000, 2_112_000, -6_000)
    assert books["0015"][2] == books["0902"][2] == 0


def test_the_ledger_accepts_every_event_of_the_load_and_the_register_is_complete():
    loaded = load_register(MEETING, REGISTER)
    judge = Judge()
    for event in loaded.events:
        assert judge.judge(decode(encode(event))) is None
    meeting = judge.meetings["alder-2025-agm"]
    assert meeting.register_complete
    assert meeting.registered_shares == loaded.meeting.register.shares


def test_loading_the_same_files_again_gives_the_same_event_ids_and_a_changed_register_new_ones(register):
    first = load_register(MEETING, REGISTER)
    assert [e.event_id for e in load_register(MEETING, register).events] == [e.event_id for e in first.events]
    edit(register, "beneficial.csv", "0015,Brian Murphy,420240", "0015,Brian Murphy,420200")
    edit(register, "beneficial.csv", "0015,Paula Novak,714320", "0015,Paula Novak,714360")
    # Same totals, another register: its digest makes another meeting.scheduled (duplicate_meeting) and chunk.
    moved = load_register(MEETING, register)
    assert msgspec.structs.replace(moved.meeting.register, digest=None) == msgspec.structs.replace(
        first.meeting.register, digest=None
    )
    assert moved.meeting.register.digest != first.meeting.register.digest
    assert moved.meeting.event_id != first.meeting.event_id and moved.chunks[0].event_id != first.chunks[0].event_id
    edit(register, "beneficial.csv", "0015,Brian Murphy,420200", "0015,Brian Murphy,420100")
    shrunk = load_register(MEETING, register)  # other totals: another meeting.scheduled (duplicate_meeting)
    assert shrunk.meeting.register.shares == first.meeting.register.shares - 100
    assert not {e.event_id for e in shrunk.events} & {e.event_id for e in first.events}


def test_a_real_meeting_file_needs_no_simulation_and_may_not_hold_one(tmp_path):
    assert load_meeting_file(MEETING).register is None  # declared once its register is read
    with_simulation = tmp_path / "m.toml"
    with_simulation.write_text(MEETING.read_text() + "\n[simulation]\nseed = 1\n")
    with pytest.raises(ValueError, match=r"m\.toml: \[simulation\]: simulation settings belong in a simulation file"):
        load_meeting_file(with_simulation)


@pytest.mark.parametrize(
    "name, old, new, expected",
    [
        (
            "registered.csv",
            "control_number,holders,shares",
            "control_number,holders,amount",
            [
                "registered.csv:1:3: unknown column 'amount' (columns: control_number, holders, shares)",
                "registered.csv:1:4: missing column(s) shares in the header",
            ],
        ),
        (
            "dtc_positions.csv",
            "participant,name,shares",
            "participant,name,name,shares",
            ["dtc_positions.csv:1:3: column name appears twice"],
        ),
        (
            "registered.csv",
            "Harold J. Benning,12000",
            'Harold J. Benning,"12,000"',
            ["registered.csv:5:3: shares: '12,000' is not a whole number of shares (digits only, no separators)"],
        ),
        (
            "registered.csv",
            "Kenji Watanabe,780",
            "Kenji Watanabe,780.5",
            ["registered.csv:11:3: shares: '780.5' is not a whole number of shares (digits only, no separators)"],
        ),
        (
            "beneficial.csv",
            "0902,Derek Olsen,219200",
            "0902,Derek Olsen,0",
            ["beneficial.csv:27:4: shares: 0 is not positive: leave out a row without shares"],
        ),
        (
            "beneficial.csv",
            "0902,Derek Olsen,219200",
            "0902,Derek Olsen,-219200",
            ["beneficial.csv:27:4: shares: -219200 is not positive"],
        ),
        (
            "beneficial.csv",
            "1610-9726-7033-0555,0902",
            "3470-6148-3263-0909,0902",
            ["beneficial.csv:27:1: control_number: 3470-6148-3263-0909 appears twice (first at registered.csv:2)"],
        ),
        (
            "registered.csv",
            "1537-2345-6894-7095,Okonkwo",
            "3470-6148-3263-0909,Okonkwo",
            ["registered.csv:3:1: control_number: 3470-6148-3263-0909 appears twice (first at registered.csv:2)"],
        ),
        (
            "beneficial.csv",
            "1610-9726-7033-0555,0902",
            "1610-9726-7033-0555,0903",
            ["beneficial.csv:27:2: participant: participant 0903 is not in dtc_positions.csv"],
        ),
        (
            "beneficial.csv",
            "1610-9726-7033-0555,0902",
            "1610-9726-7033-0555,DTC 902",
            ["beneficial.csv:27:2: participant: 'DTC 902' is not a DTC participant number (up to 5 digits)"],
        ),
        (
            "dtc_positions.csv",
            'N.A.",1361450\n',
            'N.A.",1361450\n15,Harbor Securities,1\n',
            ["dtc_positions.csv:6:1: participant: participant 0015 listed twice (first at line 2)"],
        ),
        (
            "registered.csv",
            "Susan Park; Daniel Park,3150",
            "Susan Park;; Daniel Park,3150",
            ["registered.csv:6:2: holders: an empty name: joint holders' names are separated by ';'"],
        ),
        (
            "registered.csv",
            "Chen Wei; Li Na,5000",
            ",5000",
            ["registered.csv:14:2: holders: empty: at least one holder's name"],
        ),
        (
            "registered.csv",
            "Robert O'Neil,1470",
            "Robert O'Neil,1470,extra",
            ["registered.csv:13:4: 4 fields, the header has 3"],
        ),
        (
            "dtc_positions.csv",
            "0226,Fairmont Clearing Corp.,2118000",
            "0226,Fairmont Clearing Corp.",
            ["dtc_positions.csv:4:3: missing field(s) shares"],
        ),
        (
            "registered.csv",
            "Cede & Co.,9997000",
            "Cede & Co.; Someone Else,9997000",
            ["registered.csv:15:2: holders: Cede & Co. holds alone, never jointly"],
        ),
        (
            "registered.csv",
            "Chen Wei; Li Na,5000",
            "CEDE AND CO,5000",
            ["registered.csv:15:2: holders: a second Cede & Co. row (the first at line 14)"],
        ),
        (
            "registered.csv",
            "0000-0000-0000-0001,Cede & Co.,9997000\n",
            "",
            ["registered.csv:1:2: holders: no Cede & Co. row: the depository's registered position is needed"],
        ),
        (
            "registered.csv",
            "Harold J. Benning,12000",
            '"Harold J.\nBenning",12000',
            [
                "registered.csv:5:2: holders: a line break, control or format character in a name"
                " (U+000A a control character)"
            ],
        ),
        (
            "registered.csv",
            "Harold J. Benning,12000",
            '"Harold" J. Benning,12000',
            ["registered.csv:5:1: not readable as CSV: ',' expected after '\"'"],
        ),
        (
            "dtc_positions.csv",
            "0015,Harbor Securities LLC,",
            "0015," + "H" * 190 + ",",
            ["dtc_positions.csv:2:2: name: longer than 189 characters: its nominee, NAME (DTC NNNN), may have 200"],
        ),
        (
            "registered.csv",
            "Kenji Watanabe,780",
            "Kenji Watanabe," + "9" * 5000,  # past Python's 4,300-digit int() limit
            ["registered.csv:11:3: shares: a 5,000-digit number, above the ledger's bound of 1,000,000,000,000,000"],
        ),
        (
            "registered.csv",
            "Kenji Watanabe,780",
            "Kenji Watanabe,10000000000000000",
            ["registered.csv:11:3: shares: a 17-digit number, above the ledger's bound of 1,000,000,000,000,000"],
        ),
    ],
    ids=[
        "unknown and missing column",
        "repeated column",
        "thousands separator",
        "decimal shares",
        "zero shares",
        "negative shares",
        "control number across files",
        "control number in one file",
        "unknown participant",
        "participant not a number",
        "participant listed twice",
        "empty joint holder name",
        "no holder",
        "extra field",
        "missing field",
        "cede jointly",
        "cede twice",
        "no cede",
        "line break in a name",
        "bad quoting",
        "participant name too long for its nominee",
        "shares of 5,000 digits",
        "shares of 17 digits",
    ],
)
def test_each_kind_of_row_problem_is_named_by_file_line_and_column(register, name, old, new, expected):
    edit(register, name, old, new)
    assert problems(register) == expected


def test_totals_that_do_not_reconcile_are_refused_where_they_are_declared(register):
    edit(register, "registered.csv", "Kenji Watanabe,780", "Kenji Watanabe,790")
    assert problems(register) == [
        "registered.csv:15:3: shares: registered holders 2,483,010 + Cede & Co. 9,997,000 = 12,480,010, not the "
        "meeting's 12,480,000 outstanding (difference +10)"
    ]
    edit(register, "registered.csv", "Kenji Watanabe,790", "Kenji Watanabe,780")
    edit(register, "dtc_positions.csv", "1361450", "1361400")
    assert problems(register) == [
        "dtc_positions.csv:5:3: shares: the participants' positions total 9,996,950, not Cede & Co.'s 9,997,000 "
        "(registered.csv:15; difference -50)"
    ]


def test_beneficial_positions_beyond_cede_and_co_are_refused_as_the_ledger_would(register):
    # 3,500 shares of slack (Fairmont's 6,000 under, Northgate's 2,500 over): 3,510 more is too many.
    edit(register, "beneficial.csv", "0902,Derek Olsen,219200", "0902,Derek Olsen,222710")
    assert problems(register) == [
        "beneficial.csv:27:4: shares: the beneficial positions reach 9,997,010 here, more than Cede & Co.'s "
        "9,997,000: the register would hold more shares than are outstanding"
    ]


def test_a_participant_over_or_under_its_entitlement_is_reported_not_refused(register):
    edit(register, "beneficial.csv", "0015,Brian Murphy,420240", "0015,Brian Murphy,420000")
    books = {p.number: p.difference for p in load_register(MEETING, register).reconciliation.participants}
    assert books == {"0015": -240, "0164": 2_500, "0226": -6_000, "0902": 0}


def test_empty_and_header_only_files_are_refused(register):
    (register / "dtc_positions.csv").write_text("")
    (register / "beneficial.csv").write_text("control_number,participant,holders,shares\n")
    assert problems(register) == [
        "dtc_positions.csv:1:1: empty file: expected a header line participant,name,shares",
        "beneficial.csv:2:1: no rows after the header",
    ]


def test_a_missing_file_or_directory_is_named(register, tmp_path):
    (register / "beneficial.csv").unlink()
    assert problems(register) == ["beneficial.csv:1:1: cannot read the register file: No such file or directory"]
    assert [str(p) for p in pytest.raises(RegisterError, load_register, MEETING, tmp_path / "nope").value.problems] == [
        f"{tmp_path / 'nope'}:1:1: not a directory: a register is a directory of CSV files"
    ]


def test_utf8_with_a_byte_order_mark_reads_and_other_encodings_are_refused(register):
    path = register / "registered.csv"
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())  # Excel's "CSV UTF-8"
    load_register(MEETING, register)
    path.write_bytes(path.read_bytes().replace(b"Kenji Watanabe", "Kenji Watanab\u00e9".encode("latin-1")))
    assert problems(register) == ["registered.csv:11:34: byte 0xE9 is not UTF-8: save the file as CSV UTF-8"]
    text = (register / "dtc_positions.csv").read_text()
    (register / "dtc_positions.csv").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert "dtc_positions.csv:1:1: UTF-16 text: save the file as CSV UTF-8" in problems(register)


def test_every_problem_is_reported_in_file_order_not_only_the_first(register):
    edit(register, "beneficial.csv", "0902,Derek Olsen,219200", "0902,Derek Olsen,x")
    edit(register, "registered.csv", "Kenji Watanabe,780", "Kenji Watanabe,")
    edit(register, "dtc_positions.csv", "0226,", "2x6,")
    assert [p.split(": ")[0] for p in problems(register)] == [
        "registered.csv:11:3",
        "dtc_positions.csv:4:1",
        "beneficial.csv:17:2",  # its participant is no longer listed
        "beneficial.csv:18:2",
        "beneficial.csv:19:2",
        "beneficial.csv:20:2",
        "beneficial.csv:21:2",
        "beneficial.csv:22:2",
        "beneficial.csv:27:4",
    ]


def test_participant_numbers_are_compared_as_numbers(register):
    edit(register, "beneficial.csv", "1610-9726-7033-0555,0902", "1610-9726-7033-0555,902")
    nominees = {p.nominee for p in load_register(MEETING, register).chunks[0].positions if p.nominee}
    assert "Lakeside Trust Bank, N.A. (DTC 0902)" in nominees and len(nominees) == 4


def test_a_participant_name_as_long_as_its_nominee_allows_loads_and_the_ledger_accepts_its_chunk(register):
    edit(register, "dtc_positions.csv", "0015,Harbor Securities LLC,", "0015," + "H" * 189 + ",")
    (chunk,) = load_register(MEETING, register).chunks
    assert max(len(e.nominee) for e in chunk.entitlements) == 200
    assert decode(encode(chunk)) == chunk


def test_shares_with_leading_zeros_are_their_number_and_a_huge_one_is_one_problem_among_the_others(register):
    edit(register, "registered.csv", "Kenji Watanabe,780", "Kenji Watanabe,00000000000000000000780")
    assert load_register(MEETING, register).reconciliation.registered_shares == 2_483_000
    edit(register, "registered.csv", "Kenji Watanabe,00000000000000000000780", "Kenji Watanabe," + "7" * 4301)
    edit(register, "beneficial.csv", "1610-9726-7033-0555,0902", "1610-9726-7033-0555,0903")
    assert problems(register) == [
        "registered.csv:11:3: shares: a 4,301-digit number, above the ledger's bound of 1,000,000,000,000,000",
        "beneficial.csv:27:2: participant: participant 0903 is not in dtc_positions.csv",
    ]


def test_a_meeting_file_is_read_bounded_and_checked_as_the_ledger_will_decode_it(tmp_path):
    far = tmp_path / "far.toml"
    far.write_text(MEETING.read_text().replace("meeting_at = 2025-06-10T", "meeting_at = 9500-06-10T"))
    with pytest.raises(ValueError, match=r"far\.toml: meeting: the ledger would refuse it: `meeting_at` 9500-06-10"):
        load_meeting_file(far)
    with pytest.raises(ValueError, match=r"^/dev/zero: not a regular file: a meeting file is one$"):
        load_meeting_file("/dev/zero")
    huge = tmp_path / "huge.toml"
    huge.write_text(MEETING.read_text() + "#" * (1024 * 1024))
    with pytest.raises(ValueError, match=r"huge\.toml: over 1,048,576 bytes: too large for a meeting file"):
        load_meeting_file(huge)


@pytest.mark.parametrize(
    "lookalike", ["alder-2025-agm\u200b", "alder\u20102025-agm", "\u0430lder-2025-agm", "alder 2025"]
)
def test_a_meeting_id_that_could_print_like_another_is_refused(tmp_path, lookalike):
    file = tmp_path / "m.toml"
    file.write_text(MEETING.read_text().replace('meeting_id = "alder-2025-agm"', f'meeting_id = "{lookalike}"'))
    with pytest.raises(ValueError, match=r"m\.toml: meeting\.meeting_id: .*a meeting id is ASCII letters"):
        load_meeting_file(file)

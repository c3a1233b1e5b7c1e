"""Any register either loads into events Kafka and the ledger accept or is refused with FILE:LINE:COLUMN problems."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from events import decode, encode
from services.registers.build import RegisterError, load_register
from services.registers.reading import FILES
from services.registers.wire import MAX_EVENT_BYTES

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
MEETING = MEETINGS / "alder-2025-agm.toml"
REGISTER = MEETINGS / "alder-2025-agm-register"

# Cells a spreadsheet export can hold, near and past every bound the reader checks.
cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "-5", "0015", "15", "99999", "100000", "Cede & Co.", "cede and co", "a;;b", "1e5"]),
    st.integers(min_value=-10, max_value=10**17).map(str),
    st.builds(lambda c, n: c * n, st.sampled_from(["9", "N", "\u00e9", "\U0001f600", ";", '"']), st.integers(1, 5000)),
)


@st.composite
def registers(draw: st.DrawFn) -> dict[str, bytes]:
    """The example register with some cells replaced, rows added or dropped, and a few bytes changed."""
    files = {}
    for name in FILES:
        rows = list(csv.reader(io.StringIO((REGISTER / name).read_text())))
        for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
            row, column = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 3))
            if column < len(rows[row]):
                rows[row][column] = draw(cells)
        if draw(st.integers(0, 3)) == 0:
            rows.insert(draw(st.integers(0, len(rows))), draw(st.lists(cells, max_size=5)))
        if draw(st.integers(0, 3)) == 0 and len(rows) > 1:
            rows.pop(draw(st.integers(0, len(rows) - 1)))
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        data = bytearray(text.getvalue().encode())
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.sampled_from([b"\xff", b"\x00", b'"', b"\r", b"\xef\xbb\xbf", b"\n\n", b","]))
        files[name] = bytes(data)
    return files


@settings(max_examples=150, deadline=None)
@given(registers())
def test_a_register_loads_into_events_the_ledger_accepts_or_is_refused_with_problems_where_they_are(files):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "register"
        shutil.copytree(REGISTER, directory)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        try:
            loaded = load_register(MEETING, directory)
        except RegisterError as refused:  # nothing else may escape: it would be a traceback, not a problem list
            assert refused.problems
            for problem in refused.problems:
                assert Path(problem.file).parent == directory and problem.line >= 1 and problem.column >= 1
                assert "\n" not in str(problem)
            return
        assert loaded.meeting.register is not None and loaded.meeting.register.chunks == len(loaded.chunks)
        for event in loaded.events:
            data = encode(event)
            assert len(data) <= MAX_EVENT_BYTES and decode(data) == event

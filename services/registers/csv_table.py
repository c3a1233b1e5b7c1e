"""Reading one CSV file of a register: encoding, header, rows, each problem as ``FILE:LINE:COLUMN: what``."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from services.files import read_regular

# A register of a large issuer lists a few hundred thousand holders at about 60 bytes a row: 64 MiB
# leaves a factor of ten, and stops a wrong path (a disk image, /dev/zero) from filling memory.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Excel's "CSV UTF-8" writes a UTF-8 byte order mark: accepted (and skipped). Its "Unicode text" is
# UTF-16, tab-separated: refused with what to do, as is any text that is not UTF-8.
_FOREIGN_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a register file, where it is: file, line, column (1-based)."""

    file: str
    line: int
    column: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.what}"


@dataclass(frozen=True)
class Row:
    """One data row: its line, and its fields by column name."""

    file: str
    line: int
    fields: dict[str, str]
    columns: dict[str, int]  # column name -> 1-based column number

    def at(self, column: str, what: str) -> Problem:
        """A problem of this row's field ``column``."""
        return Problem(self.file, self.line, self.columns[column], f"{column}: {what}")


@dataclass
class Table:
    """A CSV file's rows, or the problems that stopped it being read."""

    file: str
    rows: list[Row] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def read_table(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Table:
    """Read a CSV file with a header naming ``required`` (and maybe ``optional``) columns, in any order."""
    name = str(path)
    table = Table(name)
    expected = ",".join(required)
    try:
        data = read_regular(path, MAX_FILE_BYTES, "register file")
    except ValueError as exc:
        table.problems.append(Problem(name, 1, 1, str(exc).removeprefix(f"{path}: ")))
        return table
    text = _text(table, data)
    if text is None:
        return table
    if not text.strip():
        table.problems.append(Problem(name, 1, 1, f"empty file: expected a header line {expected}"))
        return table
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in record):
                continue  # a blank line, or a row of empty fields (spreadsheets add them)
            if not table.columns:
                _header(table, record, line, required, optional)
                if table.problems:
                    return table
                continue
            _row(table, record, line)
    except csv.Error as exc:
        table.problems.append(Problem(name, reader.line_num, 1, f"not readable as CSV: {exc}"))
        return table
    if not table.rows and not table.problems:
        table.problems.append(Problem(name, start, 1, "no rows after the header"))
    return table


def _text(table: Table, data: bytes) -> str | None:
    """The file's text (UTF-8, BOM skipped), or None with the problem recorded."""
    for bom, encoding in _FOREIGN_BOMS.items():
        if data.startswith(bom):
            table.problems.append(Problem(table.file, 1, 1, f"{encoding} text: save the file as CSV UTF-8"))
            return None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        byte = data[exc.start]
        table.problems.append(
            Problem(table.file, line, column, f"byte 0x{byte:02X} is not UTF-8: save the file as CSV UTF-8")
        )
        return None


def _header(table: Table, record: list[str], line: int, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """Map the header's column names to numbers; record missing, unknown and repeated columns."""
    known = set(required) | set(optional)
    for number, raw in enumerate(record, 1):
        name = raw.strip().lower()
        if name in table.columns:
            table.problems.append(Problem(table.file, line, number, f"column {name} appears twice"))
        elif not name:
            table.problems.append(Problem(table.file, line, number, "a column without a name"))
        elif name not in known:
            allowed = ", ".join((*required, *optional))
            table.problems.append(
                Problem(table.file, line, number, f"unknown column {raw.strip()!r} (columns: {allowed})")
            )
        else:
            table.columns[name] = number
    missing = [c for c in required if c not in table.columns]
    if missing:
        table.problems.append(
            Problem(table.file, line, len(record) + 1, f"missing column(s) {', '.join(missing)} in the header")
        )


def _row(table: Table, record: list[str], line: int) -> None:
    """Add a data row, or record that it has too many or too few fields."""
    width = max(table.columns.values())
    if len(record) > width and any(v.strip() for v in record[width:]):
        table.problems.append(Problem(table.file, line, width + 1, f"{len(record)} fields, the header has {width}"))
        return
    by_number = {number: name for name, number in table.columns.items()}
    short = [by_number[n] for n in sorted(by_number) if n > len(record)]
    if short:
        table.problems.append(Problem(table.file, line, len(record) + 1, f"missing field(s) {', '.join(short)}"))
        return
    fields = {name: record[number - 1].strip() for name, number in table.columns.items()}
    table.rows.append(Row(table.file, line, fields, table.columns))

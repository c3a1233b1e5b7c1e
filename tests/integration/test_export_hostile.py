"""Hostile exports: an auditor's commands answer every forged or broken file in a few lines, never a traceback.

Each file is built here from a real export, as someone handing out a forged or damaged copy could.
"""

import contextlib
import io
import json
import os
import zipfile

import pytest

from services.cli import main
from services.read.export_file import MAX_LINE

pytestmark = pytest.mark.integration


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process; an uncaught exception (a traceback for the user) fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def forge(path, out, member: str, edit, drop: bool = False):
    """Copy an export with one member's bytes changed (or the member left out); return the copy."""
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as forged:
        for name in original.namelist():
            if name == member and drop:
                continue
            data = original.read(name)
            forged.writestr(name, edit(data) if name == member else data)
    return out


def lines_of(log: bytes) -> list[bytes]:
    return log.splitlines(keepends=True)


def replace_line(number: int, new: bytes):
    """An edit putting ``new`` in place of log line ``number`` (from 1)."""

    def edit(log: bytes) -> bytes:
        lines = lines_of(log)
        lines[number - 1] = new
        return b"".join(lines)

    return edit


def edit_row(number: int, **fields):
    """An edit changing fields of the row on line ``number``, re-encoded as the exporter writes it."""

    def edit(log: bytes) -> bytes:
        lines = lines_of(log)
        row = json.loads(lines[number - 1])
        lines[number - 1] = json.dumps({**row, **fields}, separators=(",", ":")).encode() + b"\n"
        return b"".join(lines)

    return edit


# name -> (edit of log.jsonl, what the one-line error of tally and report names)
LINE_FORGERIES = {
    "truncated mid-line": (lambda log: log[: len(log) - len(lines_of(log)[-1]) // 2], "line 8 unreadable"),
    "a UTF-8 byte order mark": (lambda log: b"\xef\xbb\xbf" + log, "line 1 unreadable"),
    "bytes that are not UTF-8": (replace_line(2, b'{"position": "\xff\xfe"}\n'), "line 2 unreadable"),
    "a line that is not JSON": (replace_line(3, b"not json\n"), "line 3 unreadable"),
    "a JSON array as a line": (replace_line(3, b"[1, 2, 3]\n"), "line 3 unreadable"),
    "deep nesting": (replace_line(3, b"[" * 200_000 + b"\n"), "line 3 unreadable"),
    "deep nesting in a field no row has": (
        replace_line(3, b'{"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"),
        "line 3 unreadable: JSON nested too deeply",
    ),
    "a line over the length limit": (replace_line(4, b"x" * (MAX_LINE + 1) + b"\n"), "line 4 unreadable"),
    "a hash with a non-hex digit": (edit_row(5, hash="zz" * 32), "row 5 (line 5) unreadable"),
    "a recorded_at that is no time": (edit_row(5, recorded_at="2026-11-29T13:52:16+00:0x"), "row 5 (line 5)"),
    "a recorded_at with no offset": (edit_row(6, recorded_at="2026-11-29T13:52:16"), "row 6 (line 6) unreadable"),
    "a payload that is not JSON": (edit_row(5, payload='{"type": "vote.cast",'), "row 5 (line 5) unreadable"),
}


async def test_broken_log_lines_are_one_line_errors_naming_the_line_and_verify_says_not_verified(exported, tmp_path):
    path = exported[0]
    for n, (name, (edit, where)) in enumerate(LINE_FORGERIES.items()):
        forged = forge(path, tmp_path / f"forged{n}.zip", "log.jsonl", edit)
        for command in (["tally"], ["report", "final"]):
            code, out, err = run(*command, "--file", str(forged))
            assert (code, out) == (2, ""), (name, command, code, out, err)
            assert err.count("\n") == 1 and str(forged) in err and f"log.jsonl {where}" in err, (name, err)
        code, out, err = run("audit", "verify", "--file", str(forged))
        assert code == 1 and out.endswith("NOT VERIFIED\n") and err == "", (name, out, err)
        assert f"FAIL {where}" in out and "log.jsonl is not read further" in out, (name, out)


async def test_an_export_without_its_log_with_it_twice_or_with_a_deeply_nested_manifest_is_one_line(exported, tmp_path):
    nolog = forge(exported[0], tmp_path / "nolog.zip", "log.jsonl", None, drop=True)
    nested = forge(exported[0], tmp_path / "nested.zip", "manifest.json", lambda _: b'{"x": ' + b"[" * 200_000)
    twice = tmp_path / "twice.zip"
    forge(exported[0], twice, "log.jsonl", lambda log: log)
    with zipfile.ZipFile(twice, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("log.jsonl", b"")  # unzip would show the first copy, zipfile reads the last
    for forged, why in (
        (nolog, "it holds no log.jsonl"),
        (nested, "manifest.json: JSON nested too deeply"),
        (twice, "it holds log.jsonl twice"),
    ):
        for command in (["tally"], ["report", "final"], ["audit", "verify"]):
            code, out, err = run(*command, "--file", str(forged))
            assert (code, out, err) == (2, "", f"vote-ledger: {forged}: not a vote-ledger export ({why})\n")


def test_a_device_or_a_fifo_given_as_export_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for file in ("/dev/zero", str(fifo)):  # /dev/zero would be read until memory runs out
        for command in (["tally"], ["report", "final"], ["audit", "verify"]):
            code, out, err = run(*command, "--file", file)
            assert (
                (code, out) == (2, "")
                and err
                == f"vote-ledger: {file}: not a regular file; an export is a zip file written by vote-ledger export\n"
            )


async def test_tally_and_report_refuse_an_export_that_does_not_verify(exported, tmp_path):
    path = exported[0]

    def swapped(log: bytes) -> bytes:
        lines = lines_of(log)
        lines[3], lines[4] = lines[4], lines[3]
        return b"".join(lines)

    def duplicated(log: bytes) -> bytes:
        lines = lines_of(log)
        return b"".join(lines[:4] + [lines[3]] + lines[4:])

    def manifest_rows(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), "rows": 5}).encode()

    forgeries = {
        "a vote changed": (
            "log.jsonl",
            lambda log: log.replace(b'\\"against\\"', b'\\"for\\"'),
            "hash chain: position",
        ),
        "rows swapped": ("log.jsonl", swapped, "hash chain: position 4"),
        "a row duplicated": ("log.jsonl", duplicated, "hash chain: position 4"),
        "the manifest's row count": ("manifest.json", manifest_rows, "rows: the log gives 8, the manifest says 5"),
    }
    for n, (name, (member, edit, why)) in enumerate(forgeries.items()):
        forged = forge(path, tmp_path / f"forged{n}.zip", member, edit)
        for command in (["tally"], ["report", "final"]):
            code, out, err = run(*command, "--file", str(forged))
            assert (code, out) == (2, ""), (name, command, err)
            assert err.startswith(f"vote-ledger: {forged}: the export does not verify: {why}"), (name, err)
            assert err.endswith(f"; run vote-ledger audit verify --file {forged} for details\n"), (name, err)
        code, out, _err = run("audit", "verify", "--file", str(forged))
        assert code == 1 and "NOT VERIFIED" in out, name


async def test_a_manifest_naming_another_meeting_fails_in_a_few_lines_not_one_per_row(exported, tmp_path):
    path, manifest, _tally, _report = exported

    def other(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), "meeting_id": "other"}).encode()

    forged = forge(path, tmp_path / "other.zip", "manifest.json", other)
    code, out, _err = run("audit", "verify", "--file", str(forged))
    assert code == 1 and out.endswith("NOT VERIFIED\n")
    listed = [line for line in out.splitlines() if line.startswith("FAIL row ")]
    assert listed == [f"FAIL row {p} belongs to meeting m1" for p in range(1, 6)]
    assert f"FAIL … and {manifest.rows - 5:,} more row(s) of another meeting" in out

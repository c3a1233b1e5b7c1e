"""One CLI convention: every flag documented, one output flag, --version, one percentage, one number type."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.report import percent
from services.cli import build_parser, main
from services.cli.common import positive_number, whole_number
from services.cli.tally_cmd import render
from services.read.renderings import tally_csv as render_csv


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every parser of the tree (the program, each command, each action) with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def options(parser: argparse.ArgumentParser):
    """The parser's own arguments, without the sub-command placeholder."""
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


ALL = list(commands(build_parser()))
# Commands that print a result, and the formats each offers.
FORMATS = {
    ("tally",): ["table", "json", "csv"],
    ("tally", "diff"): ["table", "json"],
    ("report", "final"): ["md", "json", "csv"],
    ("report", "overvotes"): ["table", "json"],
    ("report", "rejections"): ["table", "json"],
    ("proxies",): ["table", "json"],
    ("audit", "history"): ["table", "json"],
    ("audit", "events"): ["table", "json"],
    ("audit", "verify"): ["table", "json"],
    ("audit", "prove"): ["table", "json"],
    ("audit", "receipt"): ["table", "json"],
    ("audit", "consistency"): ["table", "json"],
    ("status",): ["table", "json"],
    ("export",): ["json", "table"],
    ("meeting", "show"): ["table", "json"],
    ("stack", "status"): ["table", "json"],
    ("channel", "keygen"): ["table", "json"],
    ("channel", "list"): ["table", "json"],
    ("channel", "submit"): ["table", "json"],
}
LONG_WORK = [("export",), ("audit", "verify"), ("projections", "rebuild"), ("meeting", "load"), ("bench",)]


@pytest.mark.parametrize("path, parser", ALL, ids=[" ".join(p) or "vote-ledger" for p, _ in ALL])
def test_every_flag_and_argument_of_every_command_is_described_in_its_help(path, parser):
    undocumented = [a.option_strings or [a.dest] for a in options(parser) if not a.help or a.help == argparse.SUPPRESS]
    assert not undocumented, f"vote-ledger {' '.join(path)}: no help for {undocumented}"
    text = parser.format_help()
    for action in options(parser):
        for flag in action.option_strings:
            assert flag in text, f"vote-ledger {' '.join(path)} --help does not show {flag}"


def test_the_walk_covers_every_command():
    names = {" ".join(path) for path, _ in ALL}
    assert {"tally", "tally diff", "report final", "audit verify", "export", "bench", "stack status"} <= names
    assert len(names) > 25


@pytest.mark.parametrize("path", list(FORMATS), ids=" ".join)
def test_every_command_that_prints_results_takes_format_with_json_as_its_alias(path):
    parser = dict(ALL)[path]
    by_flag = {flag: a for a in options(parser) for flag in a.option_strings}
    assert list(by_flag["--format"].choices) == FORMATS[path]
    assert by_flag["--json"].dest == by_flag["--format"].dest and by_flag["--json"].const == "json"
    assert "alias of --format json" in by_flag["--json"].help


def test_json_and_format_json_parse_alike_and_the_default_output_is_unchanged():
    parser = build_parser()
    assert parser.parse_args(["tally", "--meeting", "m", "--json"]).format == "json"
    assert parser.parse_args(["tally", "--meeting", "m", "--format", "json"]).format == "json"
    assert parser.parse_args(["tally", "--meeting", "m"]).format == "table"
    assert parser.parse_args(["report", "final", "--meeting", "m"]).format == "md"
    assert parser.parse_args(["report", "final", "--meeting", "m", "--json"]).format == "json"
    assert parser.parse_args(["export", "--meeting", "m", "--out", "x.zip"]).format == "json"
    # `tally --json diff ...` keeps its meaning: the diff's own flag does not overwrite it.
    args = parser.parse_args(["tally", "--json", "diff", "--meeting", "m", "1", "2"])
    assert (args.format, args.diff_format) == ("json", "table")
    with pytest.raises(SystemExit):
        parser.parse_args(["status", "--format", "csv"])


def test_bench_help_says_how_to_get_its_extras_from_an_installed_wheel_too():
    text = " ".join(dict(ALL)[("bench",)].format_help().split())  # argparse wraps the description
    assert "pip install 'vote-ledger[bench]'" in text


def test_the_readme_cli_table_shows_the_verbose_flag_of_services_run():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `vote-ledger services run")]
    assert "`-v`/`--verbose`" in row and {"-v", "--verbose"} <= {
        flag for a in options(dict(ALL)[("services", "run")]) for flag in a.option_strings
    }


@pytest.mark.parametrize("path", LONG_WORK, ids=" ".join)
def test_long_work_can_be_told_to_draw_no_progress_bar(path):
    parser = dict(ALL)[path]
    assert {"-q", "--quiet"} <= {flag for a in options(parser) for flag in a.option_strings}


def test_version_prints_the_installed_packages_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"vote-ledger {version('vote-ledger')}\n"


LAYERS_PROBE = """
import importlib, json, pkgutil, sys

def under(package):
    return sorted(m for m in sys.modules if m == package or m.startswith(package + "."))

def load_all(package):
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(found.name)

from services.cli import build_parser
build_parser()
clients = sorted(m for m in ("aiokafka", "faststream", "asyncpg") if m in sys.modules)
after_parser = under("services.devtools")
import services.read
load_all(services.read)
read_side = under("services.runtime")
import services.adapters, services.runtime
for package in (services.runtime, services.adapters):
    load_all(package)
seen = {"clients": clients, "parser": after_parser, "read_side": read_side, "services": under("services.devtools")}
print(json.dumps({**seen, "loaded": sorted(sys.modules)}))
"""


def test_loading_the_cli_imports_no_client_nor_developer_tooling_and_the_read_side_no_running_service():
    import json

    done = subprocess.run([sys.executable, "-c", LAYERS_PROBE], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    assert seen["clients"] == []
    assert seen["parser"] == []  # every `vote-ledger` call builds the parser, `services run` too
    # The running services, the read side (the HTTP API's too) and the adapters need none of the
    # local stack, demo traffic or benchmark.
    assert {"services.runtime.ledger", "services.runtime.projector", "services.read.tallies"} <= set(seen["loaded"])
    assert seen["services"] == []
    assert seen["read_side"] == []  # what the HTTP API will import loads no running service


def _old_tally_percent(part: int, whole: int) -> str:
    """The tally table's formatter before there was one (services/cli/tally_cmd.py `_pct`)."""
    if whole == 0:
        return "-"
    hundredths = (part * 10000 + whole // 2) // whole
    return f"{hundredths // 100}.{hundredths % 100:02d} %"


@given(whole=st.integers(1, 10**15), data=st.data())
def test_the_tally_table_shows_the_final_reports_percentage_exactly_as_it_did(whole, data):
    part = data.draw(st.integers(0, whole))
    assert f"{percent(part, whole)} %" == _old_tally_percent(part, whole)


TALLY = {
    "meeting_id": "m1",
    "as_of_position": 12,
    "outstanding": 3_000,
    "quorum": {"present": 2_001, "required": 1_501, "met": True},
    "items": {
        "1": {
            "for": 1_500,
            "against": 400,
            "abstain": 1,
            "broker_non_votes": 100,
            "not_voted": 0,
            "outcome": "passed",
            "margin": 1_100,
        },
        "4": {
            "1y": 5,
            "2y": 6,
            "3y": 7,
            "abstain": 8,
            "broker_non_votes": 0,
            "not_voted": 1_975,
            "outcome": "1y",
            "margin": 1,
        },
    },
}


def test_the_tally_table_reads_as_before():
    assert render(TALLY).splitlines()[:2] == [
        "Meeting m1  (log position 12)",
        "Quorum: present 2,001 of 3,000 shares (66.70 %); required 1,501: MET",
    ]


def test_the_tally_csv_has_one_row_per_item_and_every_column_the_json_has():
    # The margin is not a column (the JSON's alone): the CSV stays as it was before the JSON gained it.
    assert render_csv(TALLY).splitlines() == [
        "item,for,against,abstain,broker_non_votes,not_voted,1y,2y,3y,outcome",
        "1,1500,400,1,100,0,,,,passed",
        "4,,,8,0,1975,5,6,7,1y",
    ]


@pytest.mark.parametrize(
    "minimum, text, error",
    [
        (1, "0", "must be at least 1: 0"),
        (0, "-1", "must be at least 0: -1"),
        (0, "x", "not a whole number: 'x'"),
        (0, "2147483648", "must be at most 2147483647: 2147483648"),
    ],
)
def test_a_whole_number_argument_below_its_minimum_or_not_a_number_is_refused_in_one_line(minimum, text, error):
    with pytest.raises(argparse.ArgumentTypeError, match=error):
        whole_number(minimum)(text)
    assert whole_number(minimum)(str(minimum + 3)) == minimum + 3


@pytest.mark.parametrize(
    "maximum, text, error",
    [
        (None, "0", "must be a finite number above 0: 0"),
        (None, "-0.5", "must be a finite number above 0: -0.5"),
        (None, "nan", "must be a finite number above 0: nan"),
        (None, "inf", "must be a finite number above 0: inf"),
        (None, "soon", "not a number: 'soon'"),
        (1, "1.01", "must be at most 1: 1.01"),
    ],
)
def test_a_positive_number_argument_that_is_not_above_zero_finite_and_within_its_maximum_is_refused(
    maximum, text, error
):
    with pytest.raises(argparse.ArgumentTypeError, match=error):
        positive_number(maximum)(text)
    assert positive_number(maximum)("0.25") == 0.25


# Every numeric flag that a bad value used to get past (0, negatives) or turn into a traceback or a busy loop.
BAD_NUMBERS = [
    (["bench", "--events", "0"], "--events: must be at least 1: 0"),
    (["bench", "--positions", "-5"], "--positions: must be at least 1: -5"),
    (["bench", "--latency-rate", "0"], "--latency-rate: must be at least 1: 0"),
    (["bench", "--latency-seconds", "0"], "--latency-seconds: must be a finite number above 0: 0"),
    (["bench", "--peer-events", "-1"], "--peer-events: must be at least 1: -1"),
    (["bench", "--scale", "10000,lots"], "--scale: not a whole number: 'lots'"),
    (["bench", "--scale", "10000,0"], "--scale: must be at least 1: 0"),
    (["tally", "--meeting", "m", "--watch", "-1"], "--watch: must be a finite number above 0: -1"),
    (["tally", "--meeting", "m", "--format", "csv", "--json"], "--json: not allowed with argument --format"),
    (["tally", "--meeting", "m", "--watch", "0"], "--watch: must be a finite number above 0: 0"),
    (["simulate", "--meeting", "m", "--rate", "0"], "--rate: must be a finite number above 0: 0"),
    (["simulate", "--meeting", "m", "--duration", "-2"], "--duration: must be a finite number above 0: -2"),
    (["simulate", "--meeting", "m", "--turnout", "1.5"], "--turnout: must be at most 1: 1.5"),
    (["simulate", "--meeting", "m", "--turnout", "0"], "--turnout: must be a finite number above 0: 0"),
]


HUGE = "99999999999999999999"  # reached PostgreSQL as a parameter and failed there with a DataError traceback
HUGE_COUNTS = [
    (["audit", "events", "--meeting", "m", "--limit", HUGE], "vote-ledger audit events: error: argument --limit"),
    (
        ["report", "rejections", "--meeting", "m", "--examples", HUGE],
        "vote-ledger report rejections: error: argument --examples",
    ),
]


@pytest.mark.parametrize("argv, flag", HUGE_COUNTS, ids=[" ".join(argv[:2]) for argv, _ in HUGE_COUNTS])
def test_a_count_beyond_a_32_bit_integer_is_refused_as_it_is_parsed(argv, flag, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [f"{flag}: must be at most 2147483647: {HUGE}"]


@pytest.mark.parametrize("argv, error", BAD_NUMBERS, ids=[" ".join(argv) for argv, _ in BAD_NUMBERS])
def test_a_bad_number_for_a_flag_exits_2_with_one_error_line_naming_the_flag(argv, error, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error" in line.lower()] == [
        f"vote-ledger {argv[0]}: error: argument {error}"
    ]
    assert "Traceback" not in err


def test_the_bench_scale_is_parsed_into_sizes_when_the_arguments_are_read():
    parser = build_parser()
    assert parser.parse_args(["bench"]).scale == [10_000, 100_000]
    assert parser.parse_args(["bench", "--scale", "500, 2000,"]).scale == [500, 2000]


class _Stop(Exception):
    """Ends a watch, as Ctrl-C would."""


def test_a_watched_tally_going_to_a_pipe_prints_each_refresh_with_no_terminal_codes(capsys):
    import asyncio

    from services.cli.tally_cmd import _watch

    positions = iter([12, 13])

    async def read() -> dict:
        position = next(positions, None)
        if position is None:
            raise _Stop
        return {**TALLY, "as_of_position": position}

    with pytest.raises(_Stop):
        asyncio.run(_watch(read, 0, render, redraw=True))
    out = capsys.readouterr().out
    assert out == render({**TALLY, "as_of_position": 12}) + "\n" + render({**TALLY, "as_of_position": 13}) + "\n"
    assert "\x1b" not in out


def test_no_progress_bar_is_drawn_when_stderr_is_not_a_terminal(capsys):
    from services.cli.progress import progress_bar

    with progress_bar("exporting m1") as on_progress:
        for done in range(0, 30_001, 10_000):
            on_progress(done, 30_000)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("quiet", [False, True])
def test_on_a_terminal_the_bar_shows_count_rate_and_eta_unless_quiet(quiet):
    import os

    feed = (
        "from services.cli.progress import progress_bar\n"
        f"with progress_bar('exporting m1', quiet={quiet}) as on_progress:\n"
        "    for done in range(0, 1001, 250):\n"
        "        on_progress(done, 1000)\n"
    )
    # FORCE_COLOR makes Rich treat the captured stderr as a terminal, as a user's would be.
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "160"}
    done = subprocess.run([sys.executable, "-c", feed], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == ""
    if quiet:
        assert done.stderr == ""
    else:
        assert all(part in done.stderr for part in ("exporting m1", "1000/1000", "100%", "rows/s", "ETA"))

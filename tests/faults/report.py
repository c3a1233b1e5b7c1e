"""Render the fault suite's recorded results (bench-results/faults/*.json) as the README's table.

    python -m tests.faults.report                    # print the table
    python -m tests.faults.report --readme README.md # replace the table between its markers

The table sits between ``<!-- faults:begin -->`` and ``<!-- faults:end -->`` (README "Faults"); each row
is one case's last recorded run (tests.faults.harness.record writes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench-results" / "faults"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"
COLUMNS = (
    "Fault",
    "Case",
    "Injections",
    "Events",
    "Lost",
    "Doubled",
    "Stalled",
    "Recovery max (s)",
    "Recovery median (s)",
    "Recorded at (load)",
)


def load(folder: Path = RESULTS) -> list[dict]:
    """Every recorded case, in file name order."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _seconds(value: float | None, result: dict) -> str:
    """Seconds to one decimal; "(failover)" when counted from the injection (README Faults defines both)."""
    if value is None:
        return "–"
    return f"{value:.1f}" + (" (failover)" if result.get("recovery_from") == "kill" else "")


def row(result: dict) -> str:
    """One case as a Markdown table row."""
    load_avg = result.get("load_average_1m")
    when = result["recorded_at"].replace("T", " ").replace("+00:00", " UTC")
    cells = (
        result["fault"],
        f"`{result['case']}` (seed {result['seed']})",
        str(result["injected"]),
        f"{result['events']:,}",
        str(result["lost"]),
        str(result["doubled"]),
        str(result["stalled"]),
        _seconds(result.get("recovery_s_max"), result),
        _seconds(result.get("recovery_s_median"), result),
        when + (f" ({load_avg:g} on {result.get('cpus')} cores)" if load_avg is not None else ""),
    )
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def table(results: list[dict]) -> str:
    """The Markdown table of these results (a line saying so when there are none)."""
    if not results:
        return "_No recorded run yet: `make faults`._"
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    return "\n".join(lines + [row(r) for r in results])


def replace_between_markers(text: str, body: str) -> str:
    """The text with what lies between the markers replaced by ``body``; ValueError without both markers."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} in the file")
    return text[: start + len(BEGIN)] + "\n" + body + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into a README between its markers."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, help="write the table between the faults markers of this file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the recorded results")
    args = parser.parse_args(argv)
    body = table(load(args.results))
    if args.readme is None:
        print(body)
        return 0
    try:
        args.readme.write_text(replace_between_markers(args.readme.read_text(), body))
    except ValueError as exc:
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.readme}: faults table updated ({body.count(chr(10)) - 1} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

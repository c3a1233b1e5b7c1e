"""The final report of a meeting, after Form 8-K Item 5.07, and its Markdown/JSON/CSV renderings. Pure.

Per item: For / Against / Abstain / Broker non-votes (frequency items: 1 / 2 / 3 years / Abstain /
Broker non-votes) and the outcome; shares present, outstanding, quorum required and met, the quorum
percentage; and the log position and digest the numbers were computed at, so an auditor can replay
exactly that prefix of the log and check both.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from events import Item, MeetingScheduled
from projections.completeness import RegisterState, summary
from projections.outcomes import item_counts, outcomes, quorum
from projections.overvotes import OverVote
from projections.printable import escaped

DIRECTOR, PROPOSAL, FREQUENCY = "director", "proposal", "frequency"
KIND_OF_STANDARD = {"plurality": DIRECTOR, "majority_of_votes_cast": PROPOSAL, "frequency": FREQUENCY}
# The 8-K's columns per kind of item, in its order (broker non-votes and outcome follow).
VOTE_COLUMNS = {
    DIRECTOR: ("for", "against", "abstain"),
    PROPOSAL: ("for", "against", "abstain"),
    FREQUENCY: ("1y", "2y", "3y", "abstain"),
}
CSV_COLUMNS = ("item", "title", "for", "against", "abstain", "1y", "2y", "3y", "broker_non_votes", "outcome")

_SECTIONS = (
    (DIRECTOR, "Election of directors", "Nominee"),
    (PROPOSAL, "Proposals", "Proposal"),
    (FREQUENCY, "Frequency of advisory votes", "Proposal"),
)
_HEADINGS = {
    "for": "For",
    "against": "Against",
    "abstain": "Abstain",
    "1y": "1 year",
    "2y": "2 years",
    "3y": "3 years",
    "broker_non_votes": "Broker non-votes",
}
_FREQUENCY_WORDS = {"1y": "1 year", "2y": "2 years", "3y": "3 years"}
REPORT_TITLE = "Item 5.07 Submission of Matters to a Vote of Security Holders"
# A report asked for as preliminary (report final --preliminary) says so in its title, text and JSON:
# the only way to have a report of a meeting whose register is incomplete (docs/rules.md).
PRELIMINARY_TITLE = f"PRELIMINARY: {REPORT_TITLE}"


def percent(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, rounded half up, in exact integers."""
    if whole <= 0:
        raise ValueError("percentage of a non-positive whole")
    # Doubling numerator and denominator rounds half up without ever leaving the integers.
    hundredths = (2 * part * 10_000 + whole) // (2 * whole)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def item_kind(item: Item) -> str:
    """Which 8-K table an item belongs to: director, proposal or frequency."""
    return KIND_OF_STANDARD[item.standard]


def final_report(
    spec: MeetingScheduled,
    present: int,
    totals: Mapping[str, Mapping[str, int]],
    overvotes: Sequence[OverVote],
    position: int,
    digest: str,
    chain: str | None = None,
    register: RegisterState | None = None,
    preliminary: bool = False,
) -> dict[str, Any]:
    """The final report's data: meeting, quorum, per-item columns and outcome, over-votes, log point.

    ``chain``: ``POSITION:HEX``, the meeting's hash-chain value at the report's point, which
    `audit verify --expect-hash` checks later, online or on an export. ``register``: the register's
    completeness at that point (None: not known). ``preliminary``: the title says PRELIMINARY.
    """
    q = quorum(spec, present)
    results = outcomes(spec, totals, q["met"])
    items: dict[str, dict[str, Any]] = {}
    for item in spec.items:
        kind = item_kind(item)
        counts = item_counts(item, totals.get(item.id, {}), present)
        row: dict[str, Any] = {"title": item.title, "kind": kind}
        row.update({column: counts.get(column, 0) for column in VOTE_COLUMNS[kind]})
        row["broker_non_votes"] = counts["broker_non_votes"]
        row["outcome"] = results[item.id]
        items[item.id] = row
    return {
        "report_title": PRELIMINARY_TITLE if preliminary else REPORT_TITLE,
        "preliminary": preliminary,
        "meeting_id": spec.meeting_id,
        "company": spec.company,
        "title": spec.title,
        "meeting_at": spec.meeting_at.isoformat(),
        "timezone": spec.timezone,
        "record_date": spec.record_date.isoformat(),
        "outstanding": spec.outstanding,
        "quorum": {
            "fraction": f"{spec.quorum.numerator}/{spec.quorum.denominator}",
            "required": q["required"],
            "present": present,
            "met": q["met"],
            "present_percent": percent(present, spec.outstanding),
        },
        "items": items,
        "over_votes": [dataclasses.asdict(o) for o in overvotes],
        "register": None if register is None else register.as_dict(),
        "log": {"position": position, "digest": digest, **({"chain": chain} if chain else {})},
        "as_of_position": position,  # log.position, under the name every read's JSON and the API's answers share
    }


def render_json(report: Mapping[str, Any]) -> str:
    """The report as JSON; keys in the fixed order final_report builds them."""
    return json.dumps(report, indent=2)


# What a spreadsheet reads as the start of a formula (OWASP, CSV injection): a text cell beginning with one
# of these, e.g. a title `=HYPERLINK("http://x", "click")`, would be evaluated when the CSV is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell a spreadsheet shows as written: text starting like a formula gets a leading '; numbers stay."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def render_csv(report: Mapping[str, Any]) -> str:
    """One row per item under a header; cells not applying to an item's kind are empty; text is spreadsheet-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item_id, row in report["items"].items():
        cells = [item_id if column == "item" else row.get(column, "") for column in CSV_COLUMNS]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: heading, meeting line, quorum line, one table per kind, footer."""
    q = report["quorum"]
    meeting_at = datetime.fromisoformat(report["meeting_at"]).isoformat(sep=" ", timespec="minutes")
    lines = [
        f"# {report.get('report_title', REPORT_TITLE)}",
        "",
        f"{_text(report['company'])}, {_text(report['title'])} ({_code(report['meeting_id'])}), held {meeting_at}"
        f"{_amended_date(report)}"
        f" ({_text(report['timezone'])}); record date {_text(report['record_date'])}.",
        "",
        f"Quorum: {q['present']:,} of {report['outstanding']:,} shares outstanding present in person or by"
        f" proxy ({q['present_percent']} %); {q['required']:,} required ({q['fraction']}):"
        f" **{'met' if q['met'] else 'not met'}**.",
    ]
    register = report.get("register")
    if register is not None and not register["complete"]:
        lines += [
            "",
            f"**Register {summary(register)}.** The results count only the positions recorded: they are not the final"
            " results.",
        ]
    for kind, heading, label in _SECTIONS:
        rows = [(item_id, row) for item_id, row in report["items"].items() if row["kind"] == kind]
        if rows:
            lines += ["", f"## {heading}", "", *_table(kind, label, rows)]
    if "as_amended" in report:
        lines += ["", "## Amendments", "", "The meeting as amended by these events (docs/rules.md, Amendments):", ""]
        for a in report["as_amended"]["amendments"]:
            why = f" ({_text(a['reason'])})" if a["reason"] else ""
            lines.append(
                f"- #{a['position']} {_code(a['type'])} effective {_text(a['effective_at'])}: {_cell(a['change'])}{why}"
            )
    if report["over_votes"]:
        policies = sorted({o["policy"] for o in report["over_votes"]})
        lines += [
            "",
            f"Over-votes (R17, policy {', '.join(policies)}): {len(report['over_votes'])} nominee/item"
            " pair(s) over the nominee's entitlement; see `vote-ledger report overvotes`.",
        ]
    log = report["log"]
    lines += ["", f"_Computed at log position {log['position']}, digest {log['digest']}._"]
    if log.get("chain"):
        lines += [
            "",
            f"_Hash chain at that point: `{log['chain']}` (check: `vote-ledger audit verify --expect-hash"
            f" {log['chain']}`)._",
        ]
    return "\n".join(lines) + "\n"


def _amended_date(report: Mapping[str, Any]) -> str:
    """The meeting line's words for an amended meeting: as amended, and the original date if it moved."""
    amended = report.get("as_amended")
    if amended is None:
        return ""
    original = datetime.fromisoformat(amended["original_meeting_at"])
    if original == datetime.fromisoformat(report["meeting_at"]):
        return " (as amended)"
    return f" (as amended; originally {original.isoformat(sep=' ', timespec='minutes')})"


def _table(kind: str, label: str, rows: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """A Markdown table of one kind of item, numbers right-aligned with thousands separators."""
    columns = (*VOTE_COLUMNS[kind], "broker_non_votes")
    header = ["Item", label, *(_HEADINGS[c] for c in columns), "Outcome"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", ":---", *("---:" for _ in columns), ":---"]) + "|",
    ]
    for item_id, row in rows:
        outcome = _FREQUENCY_WORDS.get(row["outcome"], row["outcome"]).replace("_", " ")
        cells = [_cell(item_id), _cell(row["title"]), *(f"{row[c]:,}" for c in columns), _cell(outcome)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (and on a terminal: control and format characters escaped)."""
    return _text(text.replace("\n", " "))


# Characters that make Markdown of text from the log: HTML (< >), links and images ([ ], and so the ( ) and
# ! around them), emphasis and code (* _ ~ `), table cells (|), and the backslash itself. Escaped with a
# backslash, they render as written: a title `<img src=x onerror=...>` or `[x](javascript:...)` stays text.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*_~\[\]<>|]")
# An ampersand only makes an entity when a name or number follows (`&lt;`, `&#60;`): "CPA & Co" stays as it is.
_ENTITY_START = re.compile(r"&(?=#?[A-Za-z0-9])")
# What makes a heading, a list item or a block quote at the start of a line.
_LEADING_SPECIAL = ("#", "+", "-", ">", "=")


def _text(text: str) -> str:
    """Text from the log as literal Markdown: its Markdown and HTML characters backslash-escaped, then printable.

    Parentheses and ! are left alone: without an unescaped [ ] before them they start no link or image, and
    the report of an ordinary title ("Plan (20,000,000 shares)") reads as before.
    """
    text = _ENTITY_START.sub(r"\\&", _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m[0], str(text)))
    if text.startswith(_LEADING_SPECIAL):
        text = "\\" + text
    return escaped(text)


def _code(text: str) -> str:
    """Text from the log as a Markdown code span: fenced by more backticks than any run in it (CommonMark)."""
    text = escaped(str(text))
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"

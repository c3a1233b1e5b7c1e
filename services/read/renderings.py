"""Pure renderings of read results shared by the CLI and the API: one implementation of each, no I/O.

The tally's CSV, a meeting's summary (`meeting show --json`, GET /v1/meetings/{id}), and the final
report's refusal of an incomplete register (`report final`, GET .../report) live here so that the
command line and the HTTP API cannot drift apart.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from events import MeetingScheduled
from projections.completeness import summary
from projections.outcomes import quorum
from projections.report import spreadsheet_safe


def tally_csv(report: dict[str, Any]) -> str:
    """One row per item: every column the tally JSON gives an item (each option, broker non-votes, not
    voted), in the order they first appear, empty where an item has no such column; the outcome last."""
    columns: dict[str, None] = {}
    for counts in report["items"].values():
        columns.update(dict.fromkeys(c for c in counts if c not in ("outcome", "margin")))  # the margin: JSON only
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["item", *columns, "outcome"])
    for item_id, counts in report["items"].items():
        cells = [item_id, *(counts.get(c, "") for c in columns), counts["outcome"]]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])  # an item id like =HYPERLINK(...) stays text
    return out.getvalue().rstrip("\n")  # printed with print(), like the table and the JSON


def meeting_summary(meeting: MeetingScheduled) -> dict[str, Any]:
    """The meeting's own fields as `meeting show` prints them."""
    return {
        "meeting_id": meeting.meeting_id,
        "company": meeting.company,
        "title": meeting.title,
        "record_date": meeting.record_date,
        "meeting_at": meeting.meeting_at,
        "timezone": meeting.timezone,
        "outstanding": meeting.outstanding,
        "quorum_required": quorum(meeting, 0)["required"],
        "cutoffs": {"internet": meeting.cutoffs.internet, "phone": meeting.cutoffs.phone},
        "named_proxies": meeting.named_proxies,
        "overvote_policy": meeting.overvote_policy,
        "items": [
            {
                "id": i.id,
                "title": i.title,
                "standard": i.standard,
                "routine": i.routine,
                "options": i.options,
                "recommendation": i.recommendation,
            }
            for i in meeting.items
        ],
        "declared_register": msgspec.to_builtins(meeting.register),
    }


def final_report_refusal(report: dict[str, Any]) -> str | None:
    """Why a final report may not be given (an incomplete register, not asked as preliminary); else None."""
    register = report["register"]
    if not report["preliminary"] and register is not None and not register["complete"]:
        return (
            f"meeting {report['meeting_id']}: no final report while its register is {summary(register)}"
            f" (log position {report['log']['position']})"
        )
    return None

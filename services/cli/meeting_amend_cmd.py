"""`vote-ledger meeting amend adjourn|cutoff|correct`: publish a meeting's amendment on meetings.admin.

An amendment is appended, never an edit: each takes effect from its effective_at (docs/rules.md,
Amendments), and the ledger judges it like any admin event (poll_closed, unknown_item, ...).
"""

from __future__ import annotations

import argparse
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

from events.schema import CUTOFF_CHANNELS
from projections.printable import UNPRINTABLE
from services.cli import UserError
from services.cli.admin_publish import EVENT_ID_MAX, add_wait, admin_event, publish_admin
from services.cli.common import parse_timestamp


def add_amend(actions: argparse._SubParsersAction) -> None:
    """Add `meeting amend adjourn|cutoff|correct` under `meeting`."""
    amend = actions.add_parser(
        "amend",
        help="publish an amendment: adjournment, changed cut-off, corrected field (meeting administration)",
        description="Amend a loaded meeting by appending an event on meetings.admin, as meeting administration: "
        "votes already cast stand, and each amendment takes effect from --effective-at (default: now). Then "
        "waits for the ledger's decision (docs/rules.md, Amendments).",
    )
    kinds = amend.add_subparsers(dest="amend_action", required=True, metavar="AMENDMENT")

    adjourn = kinds.add_parser(
        "adjourn",
        help="publish meeting.adjourned: the meeting is held at a new date and time (record date unchanged)",
        description="Adjourn (or, with --postponed, postpone before it convened) the meeting to --to. The record "
        "date, the register and the votes already cast stand; cut-offs change only with `amend cutoff`.",
    )
    _common(adjourn)
    adjourn.add_argument("--to", required=True, type=parse_timestamp, metavar="TIME", help="RFC 3339 new meeting time")
    adjourn.add_argument("--postponed", action="store_true", help="postponed before convening (default: adjourned)")
    adjourn.set_defaults(func=_adjourn)

    cutoff = kinds.add_parser(
        "cutoff",
        help="publish meeting.cutoff_changed: a channel's cut-off set, moved or lifted (R12)",
        description="Change a channel's cut-off for submissions received from --effective-at on: a reopening "
        "accepts from then on; an earlier cut-off does not undo what was received before it took effect.",
    )
    _common(cutoff)
    cutoff.add_argument("--channel", required=True, choices=CUTOFF_CHANNELS, help="the channel (broker: its platform)")
    at = cutoff.add_mutually_exclusive_group(required=True)
    at.add_argument("--cutoff", type=parse_timestamp, metavar="TIME", help="RFC 3339 new cut-off")
    at.add_argument("--lift", action="store_true", help="no cut-off for the channel any more")
    cutoff.set_defaults(func=_cutoff)

    correct = kinds.add_parser(
        "correct",
        help="publish meeting.corrected: company, title, item titles, recommendations",
        description="Correct descriptive fields. A corrected recommendation (R9) votes the unmarked items of "
        "cards executed from --effective-at on; earlier cards keep the one they were signed under.",
    )
    _common(correct)
    correct.add_argument("--company", metavar="TEXT", help="the company's corrected name")
    correct.add_argument("--title", metavar="TEXT", help="the meeting's corrected title")
    correct.add_argument(
        "--item-title", action="append", default=[], type=_pair, metavar="ID=TEXT", help="an item's title (repeat)"
    )
    correct.add_argument(
        "--recommendation",
        action="append",
        default=[],
        type=_pair,
        metavar="ID=OPTION",
        help="an item's recommendation, one of its options (repeat)",
    )
    correct.set_defaults(func=_correct)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meeting", required=True, metavar="M", help="the meeting id")
    parser.add_argument(
        "--effective-at",
        type=parse_timestamp,
        metavar="TIME",
        help="RFC 3339 time it takes effect (default: now); not earlier: the ledger refuses a back-dated amendment"
        " (invalid_amendment)",
    )
    parser.add_argument("--reason", metavar="TEXT", help="why, for the report and the auditors")
    add_wait(parser)


def _pair(text: str) -> tuple[str, str]:
    item, sep, value = text.partition("=")
    if not sep or not item.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"ID=VALUE expected: {text!r}")
    return item.strip(), value.strip()


def unprintable(text: str) -> str | None:
    """The first character of ``text`` in an UNPRINTABLE category, as U+XXXX and its name; None if there is none."""
    # Refused in an amendment's text: controls (newline, ESC: a terminal obeys them when tally, audit history or a
    # report prints the text, which escape them since), format characters (bidirectional overrides reorder what a
    # reader sees), line and paragraph separators.
    for char in text:
        kind = UNPRINTABLE.get(unicodedata.category(char))
        if kind:
            name = unicodedata.name(char, "")  # controls have none
            return f"U+{ord(char):04X}{' ' + name if name else ''}, {kind}"
    return None


def _printable(**texts: str | None) -> None:
    """Refuse a text argument holding a control, format or separator character (one line, naming it)."""
    for option, text in texts.items():
        found = None if text is None else unprintable(text)
        if found:
            raise UserError(f"meeting amend: --{option.replace('_', '-')} holds {found}: only printable text")


def amendment_id(meeting_id: str, kind: str, now: datetime) -> str:
    """A new id per publication, sortable by publication time (``now``): ``<meeting>/amend/<kind>/<UTC time>-<random>``.

    Two amendments of a kind with the same effective_at tie, and the greater event id wins (docs/rules.md,
    Amendments): the time of publication first makes that the later-published one, where a random suffix
    alone made identical command sequences end differently. The suffix keeps ids apart within a microsecond.
    """
    suffix = f"/amend/{kind}/{now.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}-{secrets.token_hex(3)}"
    return meeting_id[: EVENT_ID_MAX - len(suffix)] + suffix


def _fields(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    _printable(meeting=args.meeting, reason=args.reason)
    now = datetime.now(UTC)
    effective_at = args.effective_at or now  # the default: from now on, as the judge requires (never before)
    return {
        "event_id": amendment_id(args.meeting, kind, now),
        "meeting_id": args.meeting,
        "effective_at": effective_at,
        "reason": args.reason,
        "recorded_at": now,  # when it was recorded: what the judge falls back on without the broker's clock
    }


def _adjourn(args: argparse.Namespace) -> int:
    from events import MeetingAdjourned

    event = admin_event(MeetingAdjourned, **_fields(args, "adjourned"), meeting_at=args.to, postponed=args.postponed)
    return _publish(event, f"to {args.to.isoformat()}", None if args.no_wait else args.wait)


def _cutoff(args: argparse.Namespace) -> int:
    from events import CutoffChanged

    new = None if args.lift else args.cutoff
    event = admin_event(CutoffChanged, **_fields(args, f"cutoff-{args.channel}"), channel=args.channel, cutoff=new)
    what = f"{args.channel} cut-off {'lifted' if new is None else new.isoformat()}"
    return _publish(event, what, None if args.no_wait else args.wait)


def _correct(args: argparse.Namespace) -> int:
    from events import MeetingCorrected

    _printable(company=args.company, title=args.title)
    for option, pairs in (("item_title", args.item_title), ("recommendation", args.recommendation)):
        for pair in pairs:
            _printable(**{option: "=".join(pair)})
    items: dict[str, dict[str, str]] = {}
    for item_id, title in args.item_title:
        items.setdefault(item_id, {"id": item_id})["title"] = title
    for item_id, option in args.recommendation:
        items.setdefault(item_id, {"id": item_id})["recommendation"] = option
    if not (args.company or args.title or items):
        raise UserError(
            "meeting amend correct: nothing to correct (--company, --title, --item-title, --recommendation)"
        )
    event = admin_event(
        MeetingCorrected,
        **_fields(args, "corrected"),
        company=args.company,
        title=args.title,
        items=list(items.values()),
    )
    return _publish(event, "correction", None if args.no_wait else args.wait)


def _publish(event: Any, what: str, wait: float | None) -> int:
    """Publish the amendment as meeting administration and report the ledger's decision."""
    from events import tag_of

    said = f"published {tag_of(event)} ({what}) for {event.meeting_id} (event {event.event_id})"
    return publish_admin(event, said, wait)

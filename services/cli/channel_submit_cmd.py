"""`vote-ledger channel submit FILE`: sign submissions, publish them as the channel and print their answers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from services.cli import UserError
from services.cli.channel_keys_cmd import KEY_FILE_HELP, as_json, load_key
from services.cli.common import add_format, parse_timestamp, positive_number, whole_number

# A submission is about 1 KB signed; a file over this is not a channel's batch of votes (and `submit`
# decodes it whole: /dev/zero grew to 21 GB before the OOM killer). The same cap as `audit receipt`.
SUBMISSIONS_MAX = 16 * 1024 * 1024


def register_action(actions: argparse._SubParsersAction) -> None:
    """Add submit to `channel`."""
    submit = actions.add_parser(
        "submit",
        help="sign submissions from a JSON file, publish them and print their answers",
        description="Read submissions (vote.cast, vote.revoked, proxy.substituted) from FILE, a JSON array or "
        "one JSON object per line; prefix each event id with the key's channel id (S6); sign them as batches; "
        "publish them on votes.submissions as the channel role; await each one's answer on votes.decisions and "
        "print them. Unanswered submissions are republished with the same bytes (a redelivery, applied once: "
        "R18), and so is the whole file when run again with the same key. Exit 1 if some stay unanswered.",
        epilog="example: vote-ledger channel submit votes.json --key-file web.key.json",
    )
    submit.add_argument("file", metavar="FILE", help="the submissions: a JSON array, or one JSON object per line")
    submit.add_argument("--key-file", required=True, metavar="FILE", help=KEY_FILE_HELP)
    submit.add_argument(
        "--batch",
        type=whole_number(1, 1 << 20),
        default=1024,
        metavar="N",
        help="submissions per signed batch (default 1024; 1 signs each alone)",
    )
    submit.add_argument(
        "--timeout",
        type=positive_number(3600),
        default=30.0,
        metavar="S",
        help="seconds to await the answers of each attempt (default 30)",
    )
    submit.add_argument(
        "--attempts", type=whole_number(1, 100), default=3, metavar="N", help="publications at most (default 3)"
    )
    submit.add_argument(
        "--since",
        type=parse_timestamp,
        metavar="TIME",
        help="read answers published since this RFC 3339 time (default: the whole topic, so the answers of an "
        "earlier run of the same file are found)",
    )
    add_format(submit)
    submit.set_defaults(func=_submit)


def read_submissions(path: str) -> list[Any]:
    """The submissions of a file: a JSON array of objects, or one object per line; UserError naming what is wrong."""
    from events import MalformedMessage, ProxySubstituted, VoteCast, VoteRevoked, decode, tag_of
    from services.files import read_regular

    try:
        data = read_regular(path, SUBMISSIONS_MAX, "submissions file")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        try:
            items = [msgspec.json.encode(item) for item in msgspec.json.decode(stripped)]
        except msgspec.DecodeError as exc:
            raise UserError(f"{path}: not JSON: {exc}") from None
        where = [f"item {n}" for n in range(len(items))]
    else:
        lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        items, where = [line for _, line in lines], [f"line {n}" for n, _ in lines]
    events = []
    for place, item in zip(where, items, strict=True):
        try:
            event = decode(item)
        except MalformedMessage as exc:
            raise UserError(f"{path}: {place}: {exc.reason}: {exc.detail}") from None
        if not isinstance(event, (VoteCast, VoteRevoked, ProxySubstituted)):
            raise UserError(f"{path}: {place}: {tag_of(event)} is not a submission (meeting administration's)")
        events.append(event)
    if not events:
        raise UserError(f"{path}: no submission in it")
    return events


def _submit(args: argparse.Namespace) -> int:
    from services.channel.client import ANSWERS_FROM_START, ChannelClient, sign
    from services.cli.meeting_cmd import kafka_settings, run_kafka

    key = load_key(args.key_file)
    events = read_submissions(args.file)
    try:
        signed = sign(events, key, args.batch)
    except ValueError as exc:
        raise UserError(f"{args.file}: {exc}") from None
    current = kafka_settings()

    async def go() -> dict[str, Any]:
        async with ChannelClient(current, "channel", answers_from=args.since or ANSWERS_FROM_START) as client:
            return await client.submit(signed, timeout=args.timeout, attempts=args.attempts)

    try:
        answers = run_kafka(current, go())
    except TimeoutError as exc:
        raise UserError(str(exc)) from None
    rows = [_answer_row(s.event_id, answers.get(s.event_id)) for s in signed]
    if args.format == "json":
        print(as_json([{"event_id": s.event_id, "answer": answers.get(s.event_id)} for s in signed]))
    else:
        width = max(len(r["event_id"]) for r in rows)
        for r in rows:
            where = f"position {r['position']}" if r.get("position") is not None else ""
            what = r["answer"] + (f" {r['reason']}" if r.get("reason") else "")
            print(f"{r['event_id']:<{width}}  {what:<32} {where}".rstrip())
    missing = sum(1 for r in rows if r["answer"] == "unanswered")
    if missing:
        print(
            f"vote-ledger: {missing} of {len(rows)} submissions unanswered after {args.attempts} attempt(s)",
            file=sys.stderr,
        )
        return 1
    return 0


def _answer_row(event_id: str, answer: Any) -> dict[str, Any]:
    if answer is None:
        return {"event_id": event_id, "answer": "unanswered"}
    fields = msgspec.structs.asdict(answer)
    what = fields.get("decision", "parked")
    return {"event_id": event_id, "answer": what, **{k: v for k, v in fields.items() if k != "event_id"}}

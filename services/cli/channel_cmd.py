"""`vote-ledger channel keygen|register|revoke|list|submit`: a channel's key, its registration, signed submissions."""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from events.schema import CHANNELS
from services.cli import UserError
from services.cli.common import add_format, parse_timestamp, positive_number, whole_number

_KEY_FILE_HELP = "the channel's key file (JSON: channel_id, key_id, private_key; see channel keygen)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `channel` and its actions."""
    parser = subparsers.add_parser(
        "channel",
        help="a voting channel's signing key, its registration for a meeting, signed submissions",
        description="What a voting channel needs (docs/channels.md): an Ed25519 key (keygen), registered for a "
        "meeting by meeting administration (register, revoke, list), and signed submissions published with "
        "their answers awaited (submit).",
    )
    actions = parser.add_subparsers(dest="channel_action", required=True, metavar="ACTION")

    keygen = actions.add_parser(
        "keygen",
        help="make a channel's key pair: the private key to a file (0600), the public key printed",
        description="Write a new Ed25519 key to FILE, readable by its owner only, and print the public key and "
        "key id that meeting administration registers (channel register). An existing file is never overwritten.",
    )
    keygen.add_argument("--channel-id", required=True, metavar="ID", help="the channel's id, e.g. proxyvote-web")
    keygen.add_argument(
        "--key-id", metavar="K", help="the key's id (default: the first 16 hex digits of the public key's SHA-256)"
    )
    keygen.add_argument("--out", required=True, metavar="FILE", help="where to write the key file (must not exist)")
    add_format(keygen)
    keygen.set_defaults(func=_keygen)

    reg = actions.add_parser(
        "register",
        help="publish channel.key_registered on meetings.admin (meeting administration's login)",
        description="Register a channel's public key for a meeting, with what it may submit (S1, S4): its "
        "channel kinds, the nominees whose beneficial positions it may vote (default: any position) and the "
        "proxy holders whose substitutions it may submit. Published as the admin role.",
    )
    _meeting(reg)
    source = reg.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="FILE", help=_KEY_FILE_HELP + "; only its public key is published")
    source.add_argument(
        "--public-key", metavar="HEX", help="the public key (64 hex digits); with --channel-id, --key-id"
    )
    reg.add_argument("--channel-id", metavar="ID", help="the channel's id (with --public-key; else the key file's)")
    reg.add_argument("--key-id", metavar="K", help="the key's id (with --public-key; else the key file's)")
    reg.add_argument(
        "--kinds",
        required=True,
        type=_kinds,
        metavar="KIND[,KIND...]",
        help=f"the channel values its submissions may carry: {', '.join(CHANNELS)} (the ballot desk: in_person)",
    )
    reg.add_argument(
        "--nominees",
        nargs="+",
        metavar="NAME",
        help="nominees (DTC participants) whose beneficial positions it may vote",
    )
    reg.add_argument(
        "--proxy-holders", nargs="+", default=[], metavar="NAME", help="proxy holders whose substitutions it may submit"
    )
    reg.add_argument(
        "--effective-at", type=parse_timestamp, metavar="TIME", help="RFC 3339 time it is valid from (default: now)"
    )
    reg.set_defaults(func=_register)

    revoke = actions.add_parser(
        "revoke",
        help="publish channel.key_revoked on meetings.admin (meeting administration's login)",
        description="Revoke a channel's key for a meeting from a time on (S3): submissions the broker appends "
        "from then on are refused key_revoked. Rotating a key: register the new key id, then revoke the old one.",
    )
    _meeting(revoke)
    revoke.add_argument("--channel-id", required=True, metavar="ID", help="the channel's id")
    revoke.add_argument("--key-id", required=True, metavar="K", help="the key's id")
    revoke.add_argument(
        "--effective-at", type=parse_timestamp, metavar="TIME", help="RFC 3339 time it is revoked from (default: now)"
    )
    revoke.add_argument("--reason", metavar="TEXT", help="why, for the auditors")
    revoke.set_defaults(func=_revoke)

    listing = actions.add_parser(
        "list",
        help="the channel keys registered for a meeting, from the log, and whether each is in force",
        description="Every key registered for the meeting (accepted channel.key_registered rows), its scope, "
        "and its revocation if any; read from the log as the reader role.",
    )
    _meeting(listing)
    add_format(listing)
    listing.set_defaults(func=_list)

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
    submit.add_argument("--key-file", required=True, metavar="FILE", help=_KEY_FILE_HELP)
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


def _meeting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meeting", required=True, metavar="M", help="the meeting id")


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CHANNELS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"one or more of {', '.join(CHANNELS)}, comma-separated: {text!r}")
    return list(dict.fromkeys(kinds))


def _now() -> datetime:
    return datetime.now(UTC)


def _load_key(path: str):
    from services.channel.keys import group_or_world_readable, load_key

    try:
        key = load_key(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if group_or_world_readable(path):
        print(f"vote-ledger: warning: {path} is readable by others: chmod 600 it", file=sys.stderr)
    return key


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _keygen(args: argparse.Namespace) -> int:
    from projections.signing import generate_key, public_key_of
    from services.channel.keys import ChannelKey, write_key

    private, public = generate_key()
    key_id = args.key_id or hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16]
    try:
        key = ChannelKey(args.channel_id, key_id, private)
        write_key(args.out, key)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except FileExistsError:
        raise UserError(f"{args.out} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    assert public_key_of(private) == key.public_key
    out = {"channel_id": key.channel_id, "key_id": key.key_id, "public_key": key.public_key, "key_file": args.out}
    if args.format == "json":
        print(_json(out))
    else:
        print(f"wrote {args.out} (0600): keep it secret; give meeting administration the public key:")
        print(f"  channel id  {key.channel_id}\n  key id      {key.key_id}\n  public key  {key.public_key}")
    return 0


def _register(args: argparse.Namespace) -> int:
    from events import ChannelKeyRegistered

    if args.key_file is not None:
        if args.channel_id or args.key_id:
            raise UserError("--channel-id and --key-id come from the key file: give them with --public-key only")
        key = _load_key(args.key_file)
        channel_id, key_id, public = key.channel_id, key.key_id, key.public_key
    else:
        if not (args.channel_id and args.key_id):
            raise UserError("--public-key needs --channel-id and --key-id")
        channel_id, key_id, public = args.channel_id, args.key_id, args.public_key.lower()
    now = _now()
    event = _admin_event(
        ChannelKeyRegistered,
        event_id=f"{args.meeting}/keys/{channel_id}/{key_id}/registered",
        meeting_id=args.meeting,
        channel_id=channel_id,
        key_id=key_id,
        public_key=public,
        kinds=args.kinds,
        effective_at=args.effective_at or now,
        nominees=args.nominees,
        proxy_holders=args.proxy_holders,
        recorded_at=now,
    )
    return _publish_admin(event)


def _revoke(args: argparse.Namespace) -> int:
    from events import ChannelKeyRevoked

    now = _now()
    event = _admin_event(
        ChannelKeyRevoked,
        event_id=f"{args.meeting}/keys/{args.channel_id}/{args.key_id}/revoked",
        meeting_id=args.meeting,
        channel_id=args.channel_id,
        key_id=args.key_id,
        effective_at=args.effective_at or now,
        reason=args.reason,
        recorded_at=now,
    )
    return _publish_admin(event)


def _admin_event(cls: type, **fields: Any) -> Any:
    """The event as the ledger will decode it: a field the wire schema refuses is a one-line error here."""
    try:
        return msgspec.convert(fields, cls, from_attributes=False, strict=False)
    except msgspec.ValidationError as exc:
        raise UserError(f"not a valid {cls.__name__}: {exc}") from None


def _publish_admin(event: Any) -> int:
    from events import tag_of
    from services.adapters.kafka.topics import producer, publish
    from services.cli.meeting_cmd import kafka_settings, run_kafka

    current = kafka_settings()

    async def go() -> None:
        async with producer(current, "admin") as client:
            await publish(client, current, [event])

    run_kafka(current, go())
    print(
        f"published {tag_of(event)} {event.channel_id}/{event.key_id} for {event.meeting_id} (event {event.event_id})"
    )
    return 0


def keys_of(rows: list[Any]) -> list[dict[str, Any]]:
    """The keys the accepted rows register, each with its scope and its revocation (None: not revoked)."""
    from events import ChannelKeyRegistered, ChannelKeyRevoked, decode_logged

    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        event = decode_logged(row["payload"])
        if isinstance(event, ChannelKeyRegistered):
            keys[(event.channel_id, event.key_id)] = {
                "channel_id": event.channel_id,
                "key_id": event.key_id,
                "public_key": event.public_key,
                "kinds": event.kinds,
                "nominees": event.nominees,
                "proxy_holders": event.proxy_holders,
                "effective_at": event.effective_at,
                "registered_at_position": row["position"],
                "revoked": None,
            }
        elif isinstance(event, ChannelKeyRevoked) and (event.channel_id, event.key_id) in keys:
            entry = keys[(event.channel_id, event.key_id)]
            if entry["revoked"] is None or event.effective_at < entry["revoked"]["effective_at"]:
                entry["revoked"] = {
                    "effective_at": event.effective_at,
                    "reason": event.reason,
                    "position": row["position"],
                }
    return sorted(keys.values(), key=lambda k: (k["channel_id"], k["effective_at"], k["key_id"]))


def _status(key: dict[str, Any], now: datetime) -> str:
    if key["revoked"] is not None and key["revoked"]["effective_at"] <= now:
        return f"revoked since {key['revoked']['effective_at'].isoformat()}"
    if key["effective_at"] > now:
        return f"valid from {key['effective_at'].isoformat()}"
    if key["revoked"] is not None:
        return f"in force until {key['revoked']['effective_at'].isoformat()}"
    return "in force"


def _list(args: argparse.Namespace) -> int:
    from services.adapters.postgres.log.channel_keys import key_rows
    from services.cli.common import show
    from services.read.meeting import require_logged

    now = _now()

    async def read(conn) -> dict[str, Any]:
        await require_logged(conn, args.meeting)
        keys = keys_of(await key_rows(conn, args.meeting))
        for key in keys:
            key["status"] = _status(key, now)
        return {"meeting_id": args.meeting, "as_of": now, "keys": keys}

    def render(report: dict[str, Any]) -> str:
        if args.format == "json":
            return _json(report) + "\n"
        if not report["keys"]:
            return f"no channel key registered for {report['meeting_id']}\n"
        lines = [f"Channel keys of {report['meeting_id']} (as of {report['as_of'].isoformat(timespec='seconds')})"]
        for key in report["keys"]:
            scope = ",".join(key["kinds"])
            if key["nominees"] is not None:
                scope += "; nominees: " + ", ".join(key["nominees"])
            if key["proxy_holders"]:
                scope += "; proxy holders: " + ", ".join(key["proxy_holders"])
            lines.append(f"  {key['channel_id']}/{key['key_id']}  {key['status']}  [{scope}]  {key['public_key']}")
            if key["revoked"] is not None and key["revoked"]["reason"]:
                lines.append(f"      revoked: {key['revoked']['reason']}")
        return "\n".join(lines) + "\n"

    return show(args.meeting, read, render)


def read_submissions(path: str) -> list[Any]:
    """The submissions of a file: a JSON array of objects, or one object per line; UserError naming what is wrong."""
    from events import MalformedMessage, ProxySubstituted, VoteCast, VoteRevoked, decode, tag_of

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
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

    key = _load_key(args.key_file)
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
        print(_json([{"event_id": s.event_id, "answer": answers.get(s.event_id)} for s in signed]))
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

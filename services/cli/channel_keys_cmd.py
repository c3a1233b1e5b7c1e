"""`vote-ledger channel keygen|list`: a channel's key file, and the keys registered for a meeting from the log."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.cli import UserError
from services.cli.common import add_format

KEY_FILE_HELP = "the channel's key file (JSON: channel_id, key_id, private_key; see channel keygen)"


def add_keygen(actions: argparse._SubParsersAction) -> None:
    """Add keygen to `channel`."""
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


def add_list(actions: argparse._SubParsersAction) -> None:
    """Add list to `channel`."""
    listing = actions.add_parser(
        "list",
        help="the channel keys registered for a meeting, from the log, and whether each is in force",
        description="Every key registered for the meeting (accepted channel.key_registered rows), its scope, "
        "and its revocation if any; read from the log as the reader role. A key equal to the simulated "
        "channel's demo key (meeting load --simulated-channels), under its own channel id or another, is marked:"
        " anyone can sign with it.",
    )
    meeting_arg(listing)
    add_format(listing)
    listing.set_defaults(func=_list)


def meeting_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meeting", required=True, metavar="M", help="the meeting id")


def utc_now() -> datetime:
    return datetime.now(UTC)


def load_key(path: str):
    """The key file's key, or a one-line UserError (unreadable, not private, not a regular file, malformed)."""
    from services.channel.keys import load_key as load

    try:
        return load(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def as_json(value: Any) -> str:
    """Indented JSON for --json output."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _keygen(args: argparse.Namespace) -> int:
    from projections.signing import generate_key, public_key_of
    from services.channel.keys import SigningKey, write_key

    private, public = generate_key()
    key_id = args.key_id or hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16]
    try:
        key = SigningKey(args.channel_id, key_id, private)
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
        print(as_json(out))
    else:
        print(f"wrote {args.out} (0600): keep it secret; give meeting administration the public key:")
        print(f"  channel id  {key.channel_id}\n  key id      {key.key_id}\n  public key  {key.public_key}")
    return 0


def keys_of(rows: list[Any]) -> list[dict[str, Any]]:
    """The keys the accepted rows register (projections.channels.KeyBook), each with its scope and revocation."""
    from events import ChannelKeyRegistered, ChannelKeyRevoked, decode_logged
    from projections.channels import KeyBook

    book = KeyBook()
    positions: dict[tuple[str, str], int] = {}
    revocations: dict[tuple[str, str], list[tuple[Any, int]]] = {}
    for row in rows:
        event = decode_logged(row["payload"])
        ident = (event.channel_id, event.key_id)
        if isinstance(event, ChannelKeyRegistered):
            book.register(event)
            positions[ident] = row["position"]
        elif isinstance(event, ChannelKeyRevoked) and book.get(*ident) is not None:
            book.revoke(event)  # of several, the earliest holds (S3)
            revocations.setdefault(ident, []).append((event, row["position"]))
    keys = []
    for ident, key in book.keys.items():
        reg = key.registered
        revoked = None
        if key.revoked_at is not None:
            event, position = next((e, p) for e, p in revocations[ident] if e.effective_at == key.revoked_at)
            revoked = {"effective_at": key.revoked_at, "reason": event.reason, "position": position}
        keys.append(
            {
                "channel_id": reg.channel_id,
                "key_id": reg.key_id,
                "public_key": reg.public_key,
                "kinds": reg.kinds,
                "nominees": reg.nominees,
                "proxy_holders": reg.proxy_holders,
                "effective_at": reg.effective_at,
                "registered_at_position": positions[ident],
                "revoked": revoked,
            }
        )
    return sorted(keys, key=lambda k: (k["channel_id"], k["effective_at"], k["key_id"]))


def _status(key: dict[str, Any], now: datetime) -> str:
    if key["revoked"] is not None and key["revoked"]["effective_at"] <= now:
        return f"revoked since {key['revoked']['effective_at'].isoformat()}"
    if key["effective_at"] > now:
        return f"valid from {key['effective_at'].isoformat()}"
    if key["revoked"] is not None:
        return f"in force until {key['revoked']['effective_at'].isoformat()}"
    return "in force"


def mark_demo_keys(meeting_id: str, keys: list[dict[str, Any]], nominees: Iterable[str] = ()) -> None:
    """Mark each key that is the public demo key of a simulated channel of the meeting, under whatever channel id.

    The simulated channel ids: the default submitters', a broker per nominee (the register's and the keys'
    scopes), and every channel id listed. Derived from public ids (meeting load --simulated-channels).
    """
    from services.devtools.demo.channels import demo_public_keys, simulated_channel_ids

    scoped = [n for key in keys for n in key["nominees"] or ()]
    ids = simulated_channel_ids([*nominees, *scoped]) | {key["channel_id"] for key in keys}
    demo = demo_public_keys(meeting_id, ids)
    for key in keys:
        key["demo_key_of"] = demo.get(key["public_key"])
        key["public_demo_key"] = key["demo_key_of"] is not None


def _list(args: argparse.Namespace) -> int:
    from services.adapters.postgres.log.channel_keys import key_rows, register_nominees
    from services.cli.common import show
    from services.read.meeting import require_logged

    now = utc_now()

    async def read(conn) -> dict[str, Any]:
        await require_logged(conn, args.meeting)
        keys = keys_of(await key_rows(conn, args.meeting))
        mark_demo_keys(args.meeting, keys, await register_nominees(conn, args.meeting) or ())
        for key in keys:
            key["status"] = _status(key, now)
        return {"meeting_id": args.meeting, "as_of": now, "keys": keys}

    def render(report: dict[str, Any]) -> str:
        if args.format == "json":
            return as_json(report) + "\n"
        if not report["keys"]:
            return f"no channel key registered for {report['meeting_id']}\n"
        lines = [f"Channel keys of {report['meeting_id']} (as of {report['as_of'].isoformat(timespec='seconds')})"]
        for key in report["keys"]:
            scope = ",".join(key["kinds"])
            if key["nominees"] is not None:
                scope += "; nominees: " + ", ".join(key["nominees"])
            if key["proxy_holders"]:
                scope += "; proxy holders: " + ", ".join(key["proxy_holders"])
            demo = ""
            if key["demo_key_of"] is not None:
                of = "" if key["demo_key_of"] == key["channel_id"] else f" of simulated channel {key['demo_key_of']}"
                demo = f"  public demo key{of} (anyone can sign with it)"
            lines.append(
                f"  {key['channel_id']}/{key['key_id']}  {key['status']}  [{scope}]  {key['public_key']}{demo}"
            )
            if key["revoked"] is not None and key["revoked"]["reason"]:
                lines.append(f"      revoked: {key['revoked']['reason']}")
        return "\n".join(lines) + "\n"

    return show(args.meeting, read, render)

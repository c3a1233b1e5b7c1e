"""`vote-ledger channel register|revoke`: meeting administration publishes a channel key's registration or
revocation on meetings.admin, then reports what the ledger decided (read from the log as the reader role)."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from events.schema import CHANNELS
from services.cli import UserError
from services.cli.admin_publish import EVENT_ID_MAX, add_wait, admin_event, publish_admin
from services.cli.channel_keys_cmd import KEY_FILE_HELP, load_key, meeting_arg, utc_now
from services.cli.common import parse_timestamp


def register_actions(actions: argparse._SubParsersAction) -> None:
    """Add register and revoke to `channel`."""
    reg = actions.add_parser(
        "register",
        help="publish channel.key_registered on meetings.admin (meeting administration's login)",
        description="Register a channel's public key for a meeting, with what it may submit (S1, S4): its "
        "channel kinds, the nominees whose beneficial positions it may vote (default: any position, registered "
        "holders' too) and the proxy holders whose substitutions it may submit. Published as the admin role; "
        "then waits for the ledger's decision (accepted, or rejected with its reason: exit 1).",
    )
    meeting_arg(reg)
    source = reg.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="FILE", help=KEY_FILE_HELP + "; only its public key is published")
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
        help="nominees (DTC participants) whose beneficial positions it may vote (without it: every position)",
    )
    reg.add_argument(
        "--proxy-holders", nargs="+", default=[], metavar="NAME", help="proxy holders whose substitutions it may submit"
    )
    reg.add_argument(
        "--effective-at", type=parse_timestamp, metavar="TIME", help="RFC 3339 time it is valid from (default: now)"
    )
    add_wait(reg)
    reg.set_defaults(func=_register)

    revoke = actions.add_parser(
        "revoke",
        help="publish channel.key_revoked on meetings.admin (meeting administration's login)",
        description="Revoke a channel's key for a meeting from a time on (S3): submissions the broker appends "
        "from then on are refused key_revoked. A key may be revoked again (say, earlier: the earliest holds). "
        "Rotating a key: register the new key id, then revoke the old one. Then waits for the ledger's decision.",
    )
    meeting_arg(revoke)
    revoke.add_argument("--channel-id", required=True, metavar="ID", help="the channel's id")
    revoke.add_argument("--key-id", required=True, metavar="K", help="the key's id")
    revoke.add_argument(
        "--effective-at", type=parse_timestamp, metavar="TIME", help="RFC 3339 time it is revoked from (default: now)"
    )
    revoke.add_argument("--reason", metavar="TEXT", help="why, for the auditors")
    add_wait(revoke)
    revoke.set_defaults(func=_revoke)


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CHANNELS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"one or more of {', '.join(CHANNELS)}, comma-separated: {text!r}")
    return list(dict.fromkeys(kinds))


def admin_event_id(meeting_id: str, channel_id: str, key_id: str, action: str, effective_at: datetime) -> str:
    """A new id for a key's registration or revocation: readable, and unique per publication.

    A fixed id per key made R18 log a second revocation (an emergency one, earlier than a planned one)
    duplicate_event_id, so the key stayed valid; and a second registration of a key duplicate_event_id
    rather than duplicate_key. The effective time and a random suffix make every publication its own event.
    """
    suffix = f"/{action}/{effective_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"
    prefix = f"{meeting_id}/keys/{channel_id}/{key_id}"
    return prefix[: EVENT_ID_MAX - len(suffix)] + suffix


def _register(args: argparse.Namespace) -> int:
    from events import ChannelKeyRegistered

    if args.key_file is not None:
        if args.channel_id or args.key_id:
            raise UserError("--channel-id and --key-id come from the key file: give them with --public-key only")
        key = load_key(args.key_file)
        channel_id, key_id, public = key.channel_id, key.key_id, key.public_key
    else:
        if not (args.channel_id and args.key_id):
            raise UserError("--public-key needs --channel-id and --key-id")
        channel_id, key_id, public = args.channel_id, args.key_id, args.public_key.lower()
    now = utc_now()
    effective_at = args.effective_at or now
    event = admin_event(
        ChannelKeyRegistered,
        event_id=admin_event_id(args.meeting, channel_id, key_id, "registered", effective_at),
        meeting_id=args.meeting,
        channel_id=channel_id,
        key_id=key_id,
        public_key=public,
        kinds=args.kinds,
        effective_at=effective_at,
        nominees=args.nominees,
        proxy_holders=args.proxy_holders,
        recorded_at=now,
    )
    known, unread = _register_nominees(args.meeting)  # also names the brokers' simulated channels
    for warning in registration_warnings(event, known or ()):
        _warn(warning)
    if event.nominees:
        _warn_unknown_nominees(args.meeting, event.nominees, known, unread)
    return _publish_admin(event, None if args.no_wait else args.wait)


def registration_warnings(event: Any, nominees: Iterable[str] = ()) -> list[str]:
    """What is worth a warning in a registration the ledger will accept: a public demo key, a broker key for all.

    The key is checked against the demo key of every simulated channel id of the meeting (the default
    submitters', a broker per nominee: the register's ``nominees`` and the key's scope), not only its own id.
    """
    from services.devtools.demo.channels import demo_channel_of, simulated_channel_ids

    key = f"{event.channel_id}/{event.key_id}"
    warnings = []
    ids = simulated_channel_ids([*nominees, *(event.nominees or ())]) | {event.channel_id}
    demo = demo_channel_of(event.meeting_id, event.public_key, ids)
    if demo == event.channel_id:
        warnings.append(f"{key} is the simulated channel's PUBLIC demo key: anyone can sign with it")
    elif demo is not None:
        warnings.append(f"{key} is the PUBLIC demo key of the simulated channel {demo}: anyone can sign with it")
    if "broker" in event.kinds and event.nominees is None:  # S4 as documented: no nominees, any position
        warnings.append(
            f"{key} may vote every position as broker, registered holders' too (S4): "
            "give --nominees to limit it to those nominees' beneficial positions"
        )
    return warnings


def _revoke(args: argparse.Namespace) -> int:
    from events import ChannelKeyRevoked

    now = utc_now()
    effective_at = args.effective_at or now
    event = admin_event(
        ChannelKeyRevoked,
        event_id=admin_event_id(args.meeting, args.channel_id, args.key_id, "revoked", effective_at),
        meeting_id=args.meeting,
        channel_id=args.channel_id,
        key_id=args.key_id,
        effective_at=effective_at,
        reason=args.reason,
        recorded_at=now,
    )
    return _publish_admin(event, None if args.no_wait else args.wait)


def _warn(message: str) -> None:
    print(f"vote-ledger: warning: {message}", file=sys.stderr)


def _reader_configured() -> bool:
    from services.settings import settings

    current = settings()
    return bool(current.pg_reader_dsn or current.pg_dsn)


def _register_nominees(meeting_id: str) -> tuple[set[str] | None, str | None]:
    """The nominees of the meeting's logged register (None: no register yet or not read), and why it was not read."""
    if not _reader_configured():
        return None, None
    import asyncio

    from services.adapters.postgres.connect import READER_ROLE, connect_as
    from services.adapters.postgres.log.channel_keys import register_nominees
    from services.settings import settings

    async def read() -> set[str] | None:
        conn = await connect_as(settings(), READER_ROLE)
        try:
            return await register_nominees(conn, meeting_id)
        finally:
            await conn.close()

    try:
        return asyncio.run(read()), None
    except (OSError, UserError) as exc:  # the register is advice here: the registration goes ahead
        return None, str(exc)


def _warn_unknown_nominees(meeting_id: str, nominees: list[str], known: set[str] | None, unread: str | None) -> None:
    """Warn of a named nominee without a position in the meeting's register (a typo scopes the key to nothing)."""
    if unread is not None:
        _warn(f"the register of {meeting_id} not read ({unread}): nominees not checked")
        return
    if not _reader_configured():
        return
    if known is None:
        _warn(f"no register of {meeting_id} in the log yet: nominees not checked")
        return
    for name in nominees:
        if name not in known:
            _warn(f"nominee {name!r} has no position in the register of {meeting_id}: the key may vote none for it")


def _publish_admin(event: Any, wait: float | None) -> int:
    """Publish the key event as meeting administration and report the ledger's decision."""
    from events import tag_of

    said = (
        f"published {tag_of(event)} {event.channel_id}/{event.key_id} for {event.meeting_id} (event {event.event_id})"
    )
    return publish_admin(event, said, wait)

"""`vote-ledger channel`: key files and listing (channel_keys_cmd), registration (channel_admin_cmd), submit."""

from __future__ import annotations

import argparse

from services.cli import channel_admin_cmd, channel_keys_cmd, channel_submit_cmd


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
    channel_keys_cmd.add_keygen(actions)
    channel_admin_cmd.register_actions(actions)  # register, revoke
    channel_keys_cmd.add_list(actions)
    channel_submit_cmd.register_action(actions)  # submit

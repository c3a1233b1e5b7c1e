"""A channel's signing key and its key file (JSON: channel_id, key_id, private_key hex), written 0600.

The private key is the 32-byte Ed25519 seed in hex (projections.signing.generate_key); the public
key, which meeting administration registers (channel.key_registered), is derived from it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from events.schema import CHANNEL_ID_PATTERN
from projections.signing import generate_key, public_key_of
from services.files import read_regular

# The wire schema's ChannelId (events/schema.py): checked here too, so a key file cannot name a channel
# whose submissions the ledger would park.
CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)
_HEX32 = re.compile(r"[0-9a-f]{64}")
KEY_ID_MAX = 200
# A key file holds a few hundred bytes; reading more than this is reading something else.
KEY_FILE_MAX = 64 * 1024


class _KeyFile(msgspec.Struct, forbid_unknown_fields=True):
    channel_id: str
    key_id: str
    private_key: str
    public_key: str | None = None  # written for the operator's eyes; checked against the private key when present


@dataclass(frozen=True)
class SigningKey:
    """A channel's private Ed25519 key: who signs (channel_id, key_id) and the private seed (hex)."""

    channel_id: str
    key_id: str
    private_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if CHANNEL_ID.fullmatch(self.channel_id) is None:
            raise ValueError(f"channel id {self.channel_id!r}: 1-64 of a-z 0-9 . _ - starting with a letter or digit")
        if not 1 <= len(self.key_id) <= KEY_ID_MAX:
            raise ValueError(f"key id: 1-{KEY_ID_MAX} characters")
        if _HEX32.fullmatch(self.private_key) is None:
            raise ValueError("private key: 64 lowercase hex digits (an Ed25519 seed)")

    @property
    def public_key(self) -> str:
        """The public key (hex) meeting administration registers for this channel."""
        return public_key_of(self.private_key)


def new_key(channel_id: str, key_id: str) -> SigningKey:
    """A fresh random key pair for a channel."""
    private, _ = generate_key()
    return SigningKey(channel_id, key_id, private)


def write_key(path: str | Path, key: SigningKey) -> None:
    """Write a key file readable by its owner only (0600); refuse to overwrite an existing file.

    Created with O_EXCL and mode 0600 in one call, so the private key is never readable by others,
    not even between creating the file and changing its mode.
    """
    data = msgspec.json.format(
        msgspec.json.encode(
            _KeyFile(
                channel_id=key.channel_id, key_id=key.key_id, private_key=key.private_key, public_key=key.public_key
            )
        ),
        indent=2,
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data + b"\n")


def load_key(path: str | Path) -> SigningKey:
    """Read a key file; ValueError naming the file and what is wrong (unreadable, unprotected, malformed, mismatched).

    Like ssh with an "unprotected private key file", a key file others may read is refused: whoever can
    read it can sign as the channel.
    """
    path = Path(path)
    data = read_regular(path, KEY_FILE_MAX, "key file")
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise ValueError(
            f"{path}: unprotected private key file: permissions {stat.S_IMODE(mode):04o} let others read it: "
            "chmod 600 it (and consider the key compromised if others did)"
        )
    try:
        raw = msgspec.json.decode(data, type=_KeyFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{path}: not a channel key file: {exc}") from None
    try:
        key = SigningKey(raw.channel_id, raw.key_id, raw.private_key)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if raw.public_key is not None and raw.public_key != key.public_key:
        raise ValueError(f"{path}: public_key is not the private key's: the file was altered")
    return key

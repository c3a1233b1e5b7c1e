"""Reading files a user names (key files, submissions, receipt bundles): bounded, regular files only."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_regular(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ValueError naming the file otherwise.

    Opened without blocking and checked on the open descriptor: a FIFO would block the read forever, a
    device such as /dev/zero never ends (`channel submit /dev/zero` grew to 21 GB before the OOM killer).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        # Checked before os.fdopen, which raises IsADirectoryError (a traceback) on a directory.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file: a {what} is one")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path}: over {limit:,} bytes: too large for a {what}")
    return data

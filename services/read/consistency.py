"""Consistency proofs between two heads of a meeting's Merkle tree (RFC 9162 2.1.4), from the live log or an export.

Online, the meeting's row hashes are read in one repeatable-read snapshot as the reader role; the heads
come from ``ledger.heads``, read by the caller first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from projections.heads import Head
from services.read.export_file import read_manifest
from services.read.proof_trees import ProofError, Proven, Target, target, tree_of
from services.read.proofs import file_rows, meeting_hashes

if TYPE_CHECKING:
    import asyncpg


async def prove_consistency(
    conn: asyncpg.Connection,
    meeting_id: str,
    old_size: int,
    old_root: str,
    new_size: int | None = None,
    heads: list[Head] | None = None,
) -> Proven:
    """A proof that the meeting's tree now (the latest published head, or ``new_size``) extends (old_size, old_root)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        positions, hashes = await meeting_hashes(conn, meeting_id, None)
    if not positions:
        raise ProofError(f"no row of meeting {meeting_id!r} in the log")
    return _consistency(
        meeting_id, positions, hashes, old_size, old_root, target(heads, meeting_id, new_size, old_size)
    )


def _consistency(
    meeting_id: str,
    positions: list[int],
    hashes: list[bytes | None],
    old_size: int,
    old_root: str,
    against: Target,
) -> Proven:
    tree = tree_of(positions, hashes, meeting_id, against)
    try:
        bundle = tree.consistency(meeting_id, old_size, old_root, against.head.published_at if against.head else None)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    source = "published" if against.head is not None else "computed"
    return Proven(bundle, source, against.notes, old_root_now=tree.root_at(old_size))


def prove_consistency_file(path: Path, old_size: int, old_root: str, new_size: int | None = None) -> Proven:
    """A consistency proof from an export: its tree (or that of its first ``new_size`` rows) extends the old one."""
    meeting_id = read_manifest(path).meeting_id
    positions: list[int] = []
    hashes: list[bytes | None] = []
    for row, _event in file_rows(path):
        positions.append(row.position)
        hashes.append(row.hash)
    against = target(None, meeting_id, new_size, old_size)
    if new_size is None:
        against.notes = ["against the tree at the export's end"]
    return _consistency(meeting_id, positions, hashes, old_size, old_root, against)

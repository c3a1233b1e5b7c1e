"""What a proof is against: the published head that reaches the row, --head-size, or the tree at the log's end.

Shared by receipts (services/read/proofs.py) and consistency proofs (services/read/consistency.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from projections.chain import ChainRow
from projections.heads import Head
from projections.receipt_check import check_consistency
from projections.receipts import Consistency, Receipt, Tree


class ProofError(LookupError):
    """Nothing to prove as asked: no such event, a head the log does not reach, a log that no longer matches."""


@dataclass
class Proven:
    """A bundle and where its head came from."""

    bundle: Receipt | Consistency
    head_source: str  # "published", "computed" (the tree at the log's or export's end, or at --head-size)
    notes: list[str] = field(default_factory=list)
    old_root_now: str | None = None  # consistency: what the log's first old_size rows hash to today

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the bundle itself is written apart)."""
        head = self.bundle.head if isinstance(self.bundle, Receipt) else self.bundle.new
        out = {
            "meeting_id": self.bundle.meeting_id,
            "head": msgspec.to_builtins(head),
            "head_source": self.head_source,
            "notes": self.notes,
        }
        if isinstance(self.bundle, Receipt):
            sub = self.bundle.submission
            out.update(event_id=sub.event_id, position=sub.position, leaf_index=sub.leaf_index, decision=sub.decision)
            out.update(reason=sub.reason, rows_proven=1 + len(self.bundle.others) + len(self.bundle.meeting))
        else:
            out.update(old=msgspec.to_builtins(self.bundle.old), old_root_now=self.old_root_now)
            out.update(problems=check_consistency(self.bundle))
        return out


def latest_head(heads: Iterable[Head] | None, meeting_id: str) -> Head | None:
    """The published head of the meeting's chain with the largest tree (heads without a tree are older)."""
    found = [h for h in heads or () if h.chain == "meeting" and h.meeting_id == meeting_id and h.tree_size]
    return max(found, key=lambda h: h.tree_size or 0, default=None)


@dataclass
class Target:
    """The tree a proof is against: its size, and the published head behind it (None: computed)."""

    size: int | None  # None: every row there is
    head: Head | None
    notes: list[str]


def target(heads: list[Head] | None, meeting_id: str, head_size: int | None, at_least: int) -> Target:
    """Which head to prove against: --head-size, else the latest published head reaching leaf ``at_least``."""
    if head_size is not None:
        return Target(head_size, None, [f"against the tree of the meeting's first {head_size:,} rows (--head-size)"])
    if heads is None:
        return Target(None, None, ["the published heads were not read: against the tree at the log's end"])
    latest = latest_head(heads, meeting_id)
    if latest is None:
        return Target(None, None, ["no head with a Merkle root published for the meeting yet: against the log's end"])
    if (latest.tree_size or 0) < at_least:
        return Target(
            None,
            None,
            [
                f"the latest published head ({latest.tree_size:,} rows) does not reach the row yet:"
                " against the tree at the log's end; ask again after the next head"
            ],
        )
    return Target(latest.tree_size, latest, [f"against the head published at {latest.published_at}"])


def tree_of(positions: list[int], hashes: list[bytes | None], meeting_id: str, target: Target) -> Tree:
    """The tree of the target's size; ProofError if the log is shorter or no longer hashes to the published root."""
    size = len(positions) if target.size is None else target.size
    if size > len(positions) or size < 1:
        raise ProofError(f"the log holds {len(positions):,} rows of meeting {meeting_id}, not {size:,}")
    tree = Tree(hashes[:size])
    if target.head is not None and tree.head().merkle_root != target.head.merkle_root:
        raise ProofError(
            f"the log's first {size:,} rows of meeting {meeting_id} no longer hash to the root published at"
            f" {target.head.published_at} ({target.head.merkle_root}): the log was changed after that head;"
            " run `vote-ledger audit verify`"
        )
    return tree


def choose_row(
    rows: Sequence[ChainRow], event_id: str, row_hash: str | None = None, position: int | None = None
) -> ChainRow:
    """The row a receipt proves among those logged under an event id (docs/receipts.md, "Which row").

    ``position`` or ``row_hash`` (the hash in the ledger's answer) picks exactly one. Else the accepted
    row: anyone able to publish can get a rejected row logged first under a victim's predictable id,
    and the first row would then hide the victim's own. With no accepted row, the only rejected one.
    """
    if position is not None or row_hash is not None:
        found = [
            r
            for r in rows
            if position in (None, r.position) and row_hash in (None, r.hash.hex() if r.hash is not None else None)
        ]
        if len(found) != 1:
            asked = " and ".join(
                ([f"at position {position}"] if position is not None else [])
                + ([f"with row hash {row_hash}"] if row_hash is not None else [])
            )
            raise ProofError(f"no row under event id {event_id!r} is {asked} (its rows: {_listed(rows)})")
        return found[0]
    accepted = [r for r in rows if r.decision == "accepted"]
    if len(accepted) == 1:
        return accepted[0]
    meetings = sorted({r.meeting_id for r in accepted})
    if len(meetings) > 1:
        raise ProofError(f"event id {event_id!r} is accepted in meetings {', '.join(meetings)}: pass --meeting")
    if len(rows) == 1:
        return rows[0]
    what = "accepted rows" if accepted else "rows, none accepted"
    raise ProofError(
        f"event id {event_id!r} has {len(accepted or rows)} {what}, at {_listed(accepted or rows)}:"
        " choose one with --position N or --row-hash HASH (the hash in the ledger's answer)"
    )


def _listed(rows: Sequence[ChainRow]) -> str:
    shown = ", ".join(f"position {r.position} ({r.decision}{': ' + r.reason if r.reason else ''})" for r in rows[:20])
    return shown + (f" and {len(rows) - 20:,} more" if len(rows) > 20 else "")

"""Rebuild a judge from the accepted rows of events.JUDGE_TAGS read back from the log. Pure, no I/O.

The ledger (before judging), the projector (at start), the proxy report and a control number's
history all need the meeting state the ledger judged with; they all rebuild it here, from the
same rows (services/adapters/postgres/log/admin.py reads them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from events import AnyEvent, decode_logged
from projections.judge import Judge


@dataclass
class Rebuilt:
    """A judge with the rows applied to it, and (when isolating) the meetings whose rows failed."""

    judge: Judge
    applied: list[tuple[int, AnyEvent]] = field(default_factory=list)  # (position, event), in log order
    broken: dict[str, tuple[int, str]] = field(default_factory=dict)  # meeting -> (position, error)


def rebuild_judge(
    rows: Iterable[tuple[int, str, str | bytes]],
    judge: Judge | None = None,
    *,
    isolate: bool = False,
    skip: Collection[str] = (),
) -> Rebuilt:
    """Apply accepted (position, meeting_id, payload) rows in log order to ``judge`` (a new one if None).

    Rows of meetings in ``skip`` are left out. A row that does not decode or apply raises, unless
    ``isolate``: then its meeting is dropped from the judge, recorded in ``broken`` and its later rows
    are left out too, so one meeting's bad row does not stop the others (the projector's need: it
    records such a meeting as failed and goes on; the ledger and the read side must not go on).
    """
    rebuilt = Rebuilt(judge if judge is not None else Judge())
    for position, meeting_id, payload in rows:
        if meeting_id in skip or meeting_id in rebuilt.broken:
            continue
        try:
            # decode_logged: the ledger appended only payloads that passed decode's storable check.
            event = decode_logged(payload)
            rebuilt.judge.apply_accepted(event)
        except Exception as exc:  # noqa: BLE001 - no I/O here: the row's own data
            if not isolate:
                raise
            rebuilt.broken[meeting_id] = (position, f"{type(exc).__name__}: {exc}")
            rebuilt.judge.meetings.pop(meeting_id, None)
            rebuilt.judge.proxies.pop(meeting_id, None)
            continue
        rebuilt.applied.append((position, event))
    return rebuilt

"""R17 `reject` made visible in the log (R19): the fold's refusals as the ledger's vote.refused rows. Pure, no I/O.

Under the `reject` over-vote policy the fold (projections.fold.Tally.apply) refuses the instruction that
first takes its nominee's votes on an item over the nominee's entitlement, and the revocation-revived
discretionary vote that would do the same. Those decisions depend on every earlier vote of the nominee,
so they are made when counting, not at ingest: the ledger folds the accepted rows of `reject` meetings in
log order, exactly as the projector does (RefusalFold), and appends a `vote.refused` row (decision
`rejected`, reason `over_entitlement`) right after the row whose folding refused an instruction.
`audit verify` folds the same rows again (RefusalCheck) and reports any refusal row missing, extra or
different; the projector checks each refusal row against its own fold (disagreement).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec.structs

from events import AnyEvent, MeetingScheduled, VoteCast, VoteRefused, VoteRevoked, encode
from projections import timing
from projections.fold import Tally, VoterState, cut_times, record, voter_contribution
from projections.judge import Judge
from projections.log_row import LogRow, log_row_of
from projections.replay import Projection
from projections.validation import OVER_ENTITLEMENT

# The event id of the refusal row of event id X: "ledger:refused:X". Event ids hold at most 200
# characters (events.schema.NonEmpty), so a longer one is named by its SHA-256 instead; the row's
# refused_event_id always holds the id itself.
REFUSED_PREFIX = "ledger:refused:"
_ID_MAX = 200


def refusal_id(refused_event_id: str) -> str:
    """The event id of the vote.refused row refusing ``refused_event_id``."""
    whole = REFUSED_PREFIX + refused_event_id
    if len(whole) <= _ID_MAX:
        return whole
    return REFUSED_PREFIX + "sha256:" + hashlib.sha256(refused_event_id.encode()).hexdigest()


def refusal_row(refusal: VoteRefused) -> LogRow:
    """The ledger's log row of a refusal: rejected, over_entitlement, no Kafka source (the ledger wrote it)."""
    return log_row_of(refusal, encode(refusal).decode(), "rejected", OVER_ENTITLEMENT)


def is_ledger_refusal(type_: str, reason: str | None) -> bool:
    """Whether a log row (by its type and reason) is a refusal row of the ledger's, not a channel's message."""
    return type_ == "vote.refused" and reason == OVER_ENTITLEMENT


@dataclass
class RefusalFold:
    """The accepted rows of `reject` meetings folded in log order; says which instructions the fold refuses.

    Fed every accepted row of the log in order (rows of other meetings cost one dict lookup), it keeps a
    Projection of the `reject` meetings only, and each meeting's accepted submissions per control number
    for refolds (a late-logged poll closure, R12), as the projector reads them back from the log.
    """

    # No proxy book, as the ledger's own judge (services/runtime/ledger.py): no refusal reads who holds a proxy
    # (R13 is the book's), and a book keeps every accepted substitution of the meeting in memory for nothing.
    projection: Projection = field(default_factory=lambda: Projection(state=Judge(proxy_books=False)))
    votes: dict[str, dict[str, list[VoteCast | VoteRevoked]]] = field(default_factory=dict)
    # meeting -> refused event id -> its refusal: each instruction is refused (and logged) once.
    refused: dict[str, dict[str, VoteRefused]] = field(default_factory=dict)

    def tracks(self, meeting_id: str) -> bool:
        """Whether this meeting is folded here (scheduled with over-vote policy `reject`)."""
        return meeting_id in self.projection.tallies

    def meetings(self) -> list[str]:
        """The meetings folded here."""
        return sorted(self.projection.tallies)

    def apply(self, event: AnyEvent) -> list[VoteRefused]:
        """Fold one accepted row; the refusals it causes, in order (none for a meeting not under `reject`)."""
        if isinstance(event, MeetingScheduled):
            if event.overvote_policy == "reject" and not self.tracks(event.meeting_id):
                self.projection.apply(event)
                self.votes[event.meeting_id], self.refused[event.meeting_id] = {}, {}
            return []
        tally = self.projection.tallies.get(event.meeting_id)
        if tally is None or isinstance(event, VoteRefused):
            return []
        if isinstance(event, (VoteCast, VoteRevoked)):
            self.votes[event.meeting_id].setdefault(event.control_number, []).append(event)
            return self._fold(tally, event)
        self.projection.apply(event)  # meeting administration, proxy substitutions
        out: list[VoteRefused] = []
        for number in sorted(self.projection.refolds.pop(event.meeting_id, ())):
            out += self._refold(tally, number)
        return out

    def apply_all(self, events: Iterable[AnyEvent]) -> list[VoteRefused]:
        """Fold accepted rows in log order; every refusal, in order."""
        out: list[VoteRefused] = []
        for event in events:
            out += self.apply(event)
        return out

    def _refold(self, tally: Tally, number: str) -> list[VoteRefused]:
        """Tally.refold, one event at a time so that each refusal it makes is seen (as the projector refolds)."""
        applied = tally.events_applied
        tally.refold(number, [])  # takes the control number's contribution out and leaves it empty
        out: list[VoteRefused] = []
        for event in self.votes[tally.meeting.meeting_id].get(number, []):
            out += self._fold(tally, event)
        tally.events_applied = applied
        return out

    def _fold(self, tally: Tally, event: VoteCast | VoteRevoked) -> list[VoteRefused]:
        number = event.control_number
        before = msgspec.structs.replace(tally.voters.get(number) or VoterState())
        tally.apply(event)
        after = tally.voters.get(number)
        if after is None:
            return []
        known = self.refused[tally.meeting.meeting_id]
        out = []
        for event_id, item_id in after.overvote_rejected:
            if event_id not in known:
                known[event_id] = refusal = _refusal(tally, before, after, event, event_id, item_id)
                out.append(refusal)
        return out


def _refusal(
    tally: Tally, before: VoterState, after: VoterState, event: VoteCast | VoteRevoked, event_id: str, item_id: str
) -> VoteRefused:
    """The refusal of ``event_id`` on ``item_id``: the nominee's votes on the item with it and without it.

    What the fold tested (Tally._exceeds_entitlement): ``before`` with ``event`` recorded counts the refused
    instruction (a vote.cast, or the discretionary vote a revocation revived); ``after`` is what counts.
    """
    meeting = tally.meeting
    position = meeting.positions[event.control_number]
    nominee = position.nominee or ""
    trial = msgspec.structs.replace(before)
    record(trial, event, cut_times(timing.item_horizons(meeting)))  # as Tally.apply records it (R12 per item)
    counted = tally.nominee_voted(item_id, nominee)
    number = event.control_number
    attempted = (
        counted - _voted(tally, number, after, item_id, nominee) + _voted(tally, number, trial, item_id, nominee)
    )
    return VoteRefused(
        event_id=refusal_id(event_id),
        meeting_id=meeting.meeting_id,
        refused_event_id=event_id,
        control_number=event.control_number,
        nominee=nominee,
        item=item_id,
        entitlement=meeting.entitlements.get(nominee, 0),
        attempted=attempted,
        counted=counted,
    )


def _voted(tally: Tally, number: str, state: VoterState, item_id: str, nominee: str) -> int:
    """Shares a control number's state votes for its nominee on an item (broker non-votes are not votes)."""
    part = voter_contribution(tally.meeting, tally.meeting.positions[number], state)
    if part is None:
        return 0
    return sum(part.buckets.get((item_id, option, nominee), 0) for option in tally.meeting.options[item_id])


def disagreement(tally: Tally, refusal: VoteRefused) -> str | None:
    """Why a logged refusal contradicts this fold (None: it does not), for the projector's own check.

    Folded in the same log order, the fold refused the same instruction and its state still says so. Once
    the meeting has a poll closure or an amended cut-off, a refold (R12) may have reconsidered the control
    number since (an instruction refused, then dropped as late, or one fitting after others were dropped):
    the projector then takes the row as logged, and `audit verify` accounts for it exactly (RefusalCheck).
    """
    meeting = tally.meeting
    if meeting.spec.overvote_policy != "reject":
        return f"{refusal.event_id} refuses an instruction of a meeting whose over-vote policy is not reject"
    position = meeting.positions.get(refusal.control_number)
    if position is None or (position.nominee or "") != refusal.nominee:
        return f"{refusal.event_id} names nominee {refusal.nominee} for {refusal.control_number}, not its position's"
    state = tally.voters.get(refusal.control_number) or VoterState()
    if (refusal.refused_event_id, refusal.item) in state.overvote_rejected:
        return None
    if meeting.first_closure is not None or meeting.cutoff_changes:
        return None  # refolded since, maybe (R12): verify's account is the exact one
    return f"{refusal.event_id}: the fold does not refuse {refusal.refused_event_id} on item {refusal.item}"


@dataclass
class RefusalCheck:
    """`audit verify`'s refusal accounting over one meeting's rows in log order: missing, extra, different rows.

    Each refusal the fold makes must be logged once as a vote.refused row after the row that caused it,
    equal to the fold's; every over_entitlement row must be such a row, with no Kafka source.
    """

    fold: RefusalFold = field(default_factory=RefusalFold)
    pending: dict[str, tuple[VoteRefused, int]] = field(default_factory=dict)  # event id -> (refusal, cause row)
    logged: set[str] = field(default_factory=set)  # refused event ids already matched by a row
    problems: list[str] = field(default_factory=list)
    rows: int = 0  # refusal rows that matched

    def feed(self, position: int, type_: str, decision: str, reason: str | None, event: AnyEvent, source: bool) -> None:
        """Walk one row (``source``: whether it has a Kafka source)."""
        if decision == "accepted":
            for refusal in self.fold.apply(event):
                self.pending[refusal.refused_event_id] = (refusal, position)
            return
        if reason != OVER_ENTITLEMENT:
            return
        if not isinstance(event, VoteRefused) or type_ != "vote.refused":
            self.problems.append(f"row {position} is rejected {OVER_ENTITLEMENT} but is not a vote.refused row")
            return
        if source:
            self.problems.append(f"row {position} is a refusal with a Kafka source: only the ledger writes them")
        expected, _cause = self.pending.pop(event.refused_event_id, (None, 0))
        if expected is None:
            again = " again" if event.refused_event_id in self.logged else ""
            self.problems.append(
                f"row {position} refuses {event.refused_event_id}{again}, but the fold of the rows before it does not"
            )
        elif expected != event:
            self.problems.append(
                f"row {position} refuses {event.refused_event_id} as {_said(event)}, the fold gives {_said(expected)}"
            )
        else:
            self.rows += 1
        self.logged.add(event.refused_event_id)

    def finish(self) -> list[str]:
        """The problems found, with every refusal the fold made that no row logged."""
        for refusal, cause in self.pending.values():
            self.problems.append(
                f"row {cause} makes the fold refuse {refusal.refused_event_id} ({_said(refusal)}),"
                " but no vote.refused row says so"
            )
        self.pending.clear()
        return self.problems


def _said(refusal: VoteRefused) -> str:
    return (
        f"{refusal.nominee} on item {refusal.item}: entitlement {refusal.entitlement},"
        f" attempted {refusal.attempted}, counted {refusal.counted}"
    )

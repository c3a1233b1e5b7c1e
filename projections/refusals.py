"""R17 `reject` made visible in the log (R19): the fold's refusals as the ledger's rows. Pure, no I/O.

Under the `reject` over-vote policy the fold (projections.fold.Tally.apply) refuses the instruction that
first takes its nominee's votes on an item over the nominee's entitlement, and the revocation-revived
discretionary vote that would do the same. Those decisions depend on every earlier vote of the nominee,
so they are made when counting, not at ingest: the ledger folds the accepted rows of `reject` meetings in
log order, exactly as the projector does (RefusalFold), and appends a `vote.refused` row (decision
`rejected`, reason `over_entitlement`) right after the row whose folding refused an instruction.
A poll closure or cut-off change makes the fold count the meeting's votes again, in log order, under the
meeting as it now is (projections.recount): the refusals that no longer hold are withdrawn by a
`vote.reinstated` row, those that now hold get a `vote.refused` row, right after it, so the refusals in
force do not depend on when the closure or change was logged (R5). `audit verify` folds the same rows
again (RefusalCheck) and reports any ledger row missing, extra or different; the projector checks each
instruction's last ledger row against its own fold (LastWords).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec.structs

from events import (
    LEDGER_EVENTS,
    AnyEvent,
    MeetingScheduled,
    VoteCast,
    VoteRefused,
    VoteReinstated,
    VoteRevoked,
    encode,
    logged_event,
    tag_of,
)
from projections import timing
from projections.fold import Tally, VoterState, cut_times, record, voter_contribution
from projections.judge import Judge
from projections.log_row import LogRow, log_row_of
from projections.replay import Projection
from projections.validation import OVER_ENTITLEMENT

# The event id of the refusal row of event id X: "ledger:refused:X", and "ledger:refused#N:X" for its N-th
# refusal (N >= 2: refused again after a vote.reinstated), so that the ledger's rows of a meeting never
# share an id (a vote.reinstated names the row it withdraws by its id, and is an accepted row: unique per
# meeting, 015_event_ids_per_meeting.sql). Event ids hold at most 200 characters (events.schema.NonEmpty),
# so a longer one is named by its SHA-256 instead, as is an id that itself begins with "sha256:" (which
# could otherwise read as another id's hash); the row's refused_event_id always holds the id itself.
REFUSED_PREFIX = "ledger:refused:"
REINSTATED_PREFIX = "ledger:reinstated:"
_ID_MAX = 200
_HASHED = "sha256:"


def _named(prefix: str, event_id: str) -> str:
    whole = prefix + event_id
    if len(whole) <= _ID_MAX and not event_id.startswith(_HASHED):
        return whole
    return prefix + _HASHED + hashlib.sha256(event_id.encode()).hexdigest()


def refusal_id(refused_event_id: str, nth: int = 1) -> str:
    """The event id of the ``nth`` vote.refused row refusing ``refused_event_id`` in its meeting."""
    return _named(REFUSED_PREFIX if nth == 1 else f"ledger:refused#{nth}:", refused_event_id)


def reinstatement_id(withdrawn_event_id: str) -> str:
    """The event id of the vote.reinstated row withdrawing the vote.refused row ``withdrawn_event_id``."""
    return _named(REINSTATED_PREFIX, withdrawn_event_id)


LedgerRow = VoteRefused | VoteReinstated


def ledger_row(event: LedgerRow) -> LogRow:
    """The ledger's log row of a refusal (rejected, over_entitlement) or of its withdrawal (accepted); no source."""
    if isinstance(event, VoteReinstated):
        return log_row_of(event, encode(event).decode(), "accepted", None)
    return log_row_of(event, encode(event).decode(), "rejected", OVER_ENTITLEMENT)


def refusal_row(refusal: VoteRefused) -> LogRow:
    """The ledger's log row of a refusal: rejected, over_entitlement, no Kafka source (the ledger wrote it)."""
    return ledger_row(refusal)


def is_ledger_refusal(type_: str, reason: str | None) -> bool:
    """Whether a log row (by its type and reason) is a refusal row of the ledger's, not a channel's message."""
    return type_ == "vote.refused" and reason == OVER_ENTITLEMENT


def is_ledger_row(type_: str, decision: str, reason: str | None) -> bool:
    """Whether a log row is one the ledger wrote (vote.refused, vote.reinstated), not a channel's message."""
    return is_ledger_refusal(type_, reason) or (type_ == "vote.reinstated" and decision == "accepted")


def _same(a: VoteRefused, b: VoteRefused) -> bool:
    """Whether two refusals say the same (their row ids aside)."""
    return msgspec.structs.replace(a, event_id=b.event_id) == b


@dataclass
class RefusalFold:
    """The accepted rows of `reject` meetings folded in log order; says which ledger rows each one calls for.

    Fed every accepted row of the log in order (rows of other meetings cost one dict lookup), it keeps a
    Projection of the `reject` meetings only, each meeting's accepted submissions in log order (for a
    recount), and the refusals in force (the vote.refused rows not withdrawn by a vote.reinstated).
    A submission's folding may refuse an instruction (R17): a vote.refused row. A poll closure or cut-off
    change recounts the meeting (projections.recount, R5): the refusals that no longer hold are withdrawn
    (vote.reinstated), those that now hold and are not in force are refused, right after it.
    """

    # No proxy book, as the ledger's own judge (services/runtime/ledger.py): no refusal reads who holds a proxy
    # (R13 is the book's), and a book keeps every accepted substitution of the meeting in memory for nothing.
    projection: Projection = field(default_factory=lambda: Projection(state=Judge(proxy_books=False)))
    votes: dict[str, list[VoteCast | VoteRevoked]] = field(default_factory=dict)
    # meeting -> refused event id -> the vote.refused row in force for it.
    in_force: dict[str, dict[str, VoteRefused]] = field(default_factory=dict)
    # meeting -> refused event id -> vote.refused rows written for it so far (its next row's id: refusal_id).
    written: dict[str, dict[str, int]] = field(default_factory=dict)

    def tracks(self, meeting_id: str) -> bool:
        """Whether this meeting is folded here (scheduled with over-vote policy `reject`)."""
        return meeting_id in self.projection.tallies

    def meetings(self) -> list[str]:
        """The meetings folded here."""
        return sorted(self.projection.tallies)

    def apply(self, event: AnyEvent, commit: bool = True) -> list[LedgerRow]:
        """Fold one accepted row; the ledger rows it calls for, in order (none for a meeting not under `reject`).

        ``commit``: take them as logged (the ledger appends them; verify expects them). Without it (rows
        read back from the log, whose ledger rows come next), only ``note`` changes what is in force.
        """
        if isinstance(event, MeetingScheduled):
            if event.overvote_policy == "reject" and not self.tracks(event.meeting_id):
                self.projection.apply(event)
                self.votes[event.meeting_id], self.in_force[event.meeting_id] = [], {}
                self.written[event.meeting_id] = {}
            return []
        tally = self.projection.tallies.get(event.meeting_id)
        if tally is None or isinstance(event, LEDGER_EVENTS):
            return []
        if isinstance(event, (VoteCast, VoteRevoked)):
            self.votes[event.meeting_id].append(event)
            known = self.in_force[event.meeting_id]
            out: list[LedgerRow] = [
                self._refused(refusal) for refusal in _fold(tally, event) if refusal.refused_event_id not in known
            ]
        else:
            self.projection.apply(event)  # meeting administration, proxy substitutions
            self.projection.refolds.pop(event.meeting_id, None)
            if event.meeting_id not in self.projection.recounts:
                return []
            self.projection.recounts.discard(event.meeting_id)
            out = self._recount(event)
        if commit:
            for row in out:
                self.note(row)
        return out

    def apply_all(self, events: Iterable[AnyEvent]) -> list[LedgerRow]:
        """Fold accepted rows in log order; every ledger row they call for, in order."""
        out: list[LedgerRow] = []
        for event in events:
            out += self.apply(event)
        return out

    def note(self, row: LedgerRow) -> None:
        """Take a ledger row as logged: what is in force, and how many rows each instruction has had."""
        if not self.tracks(row.meeting_id):
            return
        in_force = self.in_force[row.meeting_id]
        if isinstance(row, VoteRefused):
            in_force[row.refused_event_id] = row
            written = self.written[row.meeting_id]
            written[row.refused_event_id] = written.get(row.refused_event_id, 0) + 1
        else:
            current = in_force.get(row.refused_event_id)
            if current is not None and current.event_id == row.withdrawn_event_id:
                del in_force[row.refused_event_id]

    def _refused(self, refusal: VoteRefused) -> VoteRefused:
        """The refusal under the id of its next row."""
        nth = self.written[refusal.meeting_id].get(refusal.refused_event_id, 0) + 1
        return msgspec.structs.replace(refusal, event_id=refusal_id(refusal.refused_event_id, nth))

    def _recount(self, cause: AnyEvent) -> list[LedgerRow]:
        """R5 under R17 `reject`: the refusals of the meeting as it now is, against those in force; the rows to log."""
        meeting_id = cause.meeting_id
        old = self.projection.tallies[meeting_id]
        fresh = Tally(meeting=old.meeting)
        now: dict[str, VoteRefused] = {}
        for vote in self.votes[meeting_id]:
            for refusal in _fold(fresh, vote):
                now.setdefault(refusal.refused_event_id, refusal)
        fresh.events_applied = old.events_applied
        self.projection.tallies[meeting_id] = fresh
        out: list[LedgerRow] = []
        in_force = self.in_force[meeting_id]
        stays: set[str] = set()
        for refused_event_id, row in in_force.items():  # in the order they were logged
            if refused_event_id in now and _same(row, now[refused_event_id]):
                stays.add(refused_event_id)
                continue
            out.append(
                VoteReinstated(
                    event_id=reinstatement_id(row.event_id),
                    meeting_id=meeting_id,
                    refused_event_id=refused_event_id,
                    control_number=row.control_number,
                    nominee=row.nominee,
                    item=row.item,
                    withdrawn_event_id=row.event_id,
                    cause_event_id=cause.event_id,
                )
            )
        out += [self._refused(refusal) for event_id, refusal in now.items() if event_id not in stays]
        return out


def _fold(tally: Tally, event: VoteCast | VoteRevoked) -> list[VoteRefused]:
    """Fold one submission into the tally; the refusals its folding made (ids of first rows: see RefusalFold)."""
    number = event.control_number
    before = msgspec.structs.replace(tally.voters.get(number) or VoterState())
    tally.apply(event)
    after = tally.voters.get(number)
    if after is None:
        return []
    had = set(before.overvote_rejected)
    return [
        _refusal(tally, before, after, event, event_id, item_id)
        for event_id, item_id in after.overvote_rejected
        if (event_id, item_id) not in had
    ]


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


def disagreement(tally: Tally, row: LedgerRow) -> str | None:
    """Why a ledger row, the last of its instruction so far, contradicts this fold (None: it does not).

    Folded in the same log order under the same meeting state (recounted after each closure or cut-off
    change, projections.recount), the fold refuses exactly the instructions whose last ledger row is a
    vote.refused, and none whose last row is a vote.reinstated.
    """
    meeting = tally.meeting
    if meeting.spec.overvote_policy != "reject":
        return f"{row.event_id} concerns an instruction of a meeting whose over-vote policy is not reject"
    position = meeting.positions.get(row.control_number)
    if position is None or (position.nominee or "") != row.nominee:
        return f"{row.event_id} names nominee {row.nominee} for {row.control_number}, not its position's"
    state = tally.voters.get(row.control_number) or VoterState()
    if isinstance(row, VoteReinstated):
        if any(event_id == row.refused_event_id for event_id, _ in state.overvote_rejected):
            return f"{row.event_id}: the fold still refuses {row.refused_event_id}"
        return None
    if (row.refused_event_id, row.item) in state.overvote_rejected:
        return None
    return f"{row.event_id}: the fold does not refuse {row.refused_event_id} on item {row.item}"


# The accepted rows after which the ledger may append rows of its own in the same transaction (a recount,
# R17, R19): a projector's batch ending on one of them, or on ledger rows after one, may not hold them all.
_RECOUNTING = frozenset({"polls.closed", "meeting.cutoff_changed"})


@dataclass
class LastWords:
    """The ledger rows of one meeting seen so far and not yet checked: the last one of each refused instruction."""

    rows: dict[str, tuple[int, LedgerRow]] = field(default_factory=dict)
    after_recount: bool = False  # the rows seen last are a closure or cut-off change and ledger rows after it

    def see(
        self,
        position: int,
        type_: str,
        decision: str,
        reason: str | None,
        payload: str | None,
        compact: bytes | None = None,
    ) -> None:
        """Take any row of the meeting, in log order (only the ledger's are decoded: compact form or payload)."""
        if is_ledger_row(type_, decision, reason):
            row = logged_event(compact, payload)
            if isinstance(row, (VoteRefused, VoteReinstated)):
                self.rows[row.refused_event_id] = (position, row)
        else:
            self.after_recount = decision == "accepted" and type_ in _RECOUNTING

    def check(self, tally: Tally | None, ends_batch: bool) -> list[str] | None:
        """Each last row against the fold (then forgotten); None: not yet, ledger rows may follow unread.

        ``ends_batch``: whether the meeting's last row seen ends what was read (a batch of the projector, a
        rebuild's checkpoint). A recount's rows are checked once read whole: before, a refusal it withdraws
        would look like one the fold does not make.
        """
        if ends_batch and self.after_recount:
            return None
        problems = []
        for position, row in self.rows.values():
            problem = "no meeting to fold it in" if tally is None else disagreement(tally, row)
            if problem is not None:
                problems.append(f"log position {position}: {problem}")
        self.rows.clear()
        return problems


@dataclass
class RefusalCheck:
    """`audit verify`'s refusal accounting over one meeting's rows in log order: missing, extra, different rows.

    Each ledger row the fold calls for (RefusalFold: a refusal when a submission is folded, the withdrawals
    and refusals of a recount after a closure or cut-off change) must be logged right after the row that
    called for it, equal to the fold's; every over_entitlement row and every accepted vote.reinstated must
    be such a row, with no Kafka source.
    """

    fold: RefusalFold = field(default_factory=RefusalFold)
    pending: dict[str, tuple[LedgerRow, int]] = field(default_factory=dict)  # row event id -> (row, cause row)
    problems: list[str] = field(default_factory=list)
    rows: int = 0  # ledger rows that matched

    def feed(self, position: int, type_: str, decision: str, reason: str | None, event: AnyEvent, source: bool) -> None:
        """Walk one row (``source``: whether it has a Kafka source)."""
        if is_ledger_row(type_, decision, reason):
            self._ledger_row(position, type_, event, source)
            return
        self._missing()  # the rows a row calls for come right after it, before any other
        if decision == "accepted":
            for row in self.fold.apply(event):
                self.pending[row.event_id] = (row, position)
        elif reason == OVER_ENTITLEMENT:
            self.problems.append(f"row {position} is rejected {OVER_ENTITLEMENT} but is not a vote.refused row")

    def _ledger_row(self, position: int, type_: str, event: AnyEvent, source: bool) -> None:
        if not isinstance(event, (VoteRefused, VoteReinstated)) or tag_of(event) != type_:
            self.problems.append(
                f"row {position} is logged as a {type_} row of the ledger's, but its payload is not one"
            )
            return
        if source:
            self.problems.append(f"row {position} is a {type_} row with a Kafka source: only the ledger writes them")
        expected, _cause = self.pending.pop(event.event_id, (None, 0))
        if expected is None:
            self.problems.append(f"row {position} ({_said(event)}) is not called for by the fold of the rows before it")
        elif expected != event:
            self.problems.append(f"row {position} says {_said(event)}, the fold gives {_said(expected)}")
        else:
            self.rows += 1

    def _missing(self) -> None:
        for row, cause in self.pending.values():
            self.problems.append(f"row {cause} calls for {_said(row)}, but no row right after it says so")
        self.pending.clear()

    def finish(self) -> list[str]:
        """The problems found, with every ledger row the fold called for that no row logged."""
        self._missing()
        return self.problems


def _said(row: LedgerRow) -> str:
    if isinstance(row, VoteReinstated):
        return (
            f"{row.event_id}: {row.refused_event_id} reinstated ({row.nominee} on item {row.item}),"
            f" withdrawing {row.withdrawn_event_id}, after {row.cause_event_id}"
        )
    return (
        f"{row.event_id}: {row.refused_event_id} refused ({row.nominee} on item {row.item}: entitlement"
        f" {row.entitlement}, attempted {row.attempted}, counted {row.counted})"
    )

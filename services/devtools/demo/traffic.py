"""Pure, seeded generator of a meeting's submissions: a realistic proxy campaign in arrival order.

The campaign: proxy materials go out ``opens_days_before`` the meeting; owners of about ``turnout``
of the shares instruct (registered holders by internet, phone or a mail card dated days before it
arrives; beneficial owners through their nominee, which submits on channel ``broker``); some
re-vote or revoke; nominees vote uninstructed positions on routine items only; a few holders try
after the cut-off or send invalid submissions; a named proxy substitutes; ballots are cast at the
meeting. What each card marks (universal proxy cards of contested elections included) is drawn by
``services.devtools.demo.choices``. Times are whole seconds after the mailing on one axis, rendered in each
channel's offset. No I/O: the same meeting, register, spec and seed always give the same events, ids included.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from fractions import Fraction
from itertools import accumulate, islice

import msgspec

from events import MeetingScheduled, Position, ProxySubstituted, Submission, VoteCast, VoteRevoked
from services.devtools.demo.choices import (
    DAY,
    HOUR,
    WRONG_OPTIONS,
    card_date,
    card_signatures,
    contest_marks,
    contests,
    item_marks,
    typo,
)
from services.devtools.demo.spec import SimulationSpec

# RFC 4122 version 4, variant 10: the bits uuid.UUID(version=4) clears and sets.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)

# (received second, sequence, event, the position if it is an owner instruction)
Planned = tuple[int, int, Submission, Position | None]


def generate(
    meeting: MeetingScheduled,
    positions: Sequence[Position],
    sim: SimulationSpec,
    *,
    count: int | None = None,
    seed: int | None = None,
) -> Iterator[Submission]:
    """Yield the campaign's submissions in arrival order (received_at), optionally exactly ``count``.

    ``count=None`` yields the natural campaign. A smaller ``count`` yields its first arrivals (the
    campaign so far); a larger one adds later-dated re-votes by holders who already voted (legal
    under R5), spread over the campaign, so a load test of any size still tells a coherent story.
    ``seed`` defaults to the spec's; the campaign part does not depend on ``count``.
    """
    rng = random.Random(sim.seed if seed is None else seed)
    campaign = _Campaign(meeting, positions, sim, rng)
    planned = campaign.build()
    if count is None:
        for _received, _seq, event, _voter in planned:
            yield event
        return
    yield from islice(_with_revotes(campaign, planned, max(0, count - len(planned))), count)


def _with_revotes(campaign: _Campaign, planned: list[Planned], extra: int) -> Iterator[Submission]:
    """Merge ``extra`` re-votes, at sorted uniform times before the cut-off, into the campaign."""
    rng = campaign.rng
    voted: list[Position] = []
    seen: set[str] = set()
    start = next((received for received, _, _, voter in planned if voter is not None), None)
    times = _sorted_times(rng, extra, start, campaign.t_cutoff - 10) if start is not None else iter(())
    pending = next(times, None)
    for received, _seq, event, voter in planned:
        while pending is not None and pending <= received and voted:
            yield campaign.instruction(voted[rng.randrange(len(voted))], pending)[1]
            pending = next(times, None)
        yield event
        if voter is not None and voter.control_number not in seen:
            seen.add(voter.control_number)
            voted.append(voter)
    while pending is not None and voted:
        yield campaign.instruction(voted[rng.randrange(len(voted))], pending)[1]
        pending = next(times, None)


def _sorted_times(rng: random.Random, n: int, low: int, high: int) -> Iterator[int]:
    """n uniform times in [low, high] in increasing order, in O(1) memory (order statistics)."""
    x = 0.0
    for remaining in range(n, 0, -1):
        x += (1.0 - x) * (1.0 - rng.random() ** (1.0 / remaining))
        yield low + int(x * (high - low))


class _Campaign:
    """Plans one campaign's events; ``build`` returns them sorted by arrival."""

    def __init__(
        self, meeting: MeetingScheduled, positions: Sequence[Position], sim: SimulationSpec, rng: random.Random
    ) -> None:
        self.meeting, self.sim, self.rng = meeting, sim, rng
        self.positions = list(positions)
        self.known = {p.control_number for p in self.positions}
        cutoffs = [c for c in (meeting.cutoffs.internet, meeting.cutoffs.phone) if c is not None]
        start = meeting.meeting_at - timedelta(days=sim.opens_days_before)
        # Remote channels stamp times in the cut-off's zone (the US agent), the meeting in its own.
        self.t0_remote = start.astimezone(cutoffs[0].tzinfo) if cutoffs else start
        self.t0_meeting = start
        self.t_meeting = sim.opens_days_before * DAY
        self.t_cutoff = int((min(cutoffs) - start).total_seconds()) if cutoffs else self.t_meeting - HOUR
        self.t_cutoff = max(DAY, min(self.t_cutoff, self.t_meeting - HOUR))
        self.t_discretion = max(0, self.t_meeting - int(sim.discretionary_days_before * DAY))
        self.items = [(i.id, i.options, i.recommendation) for i in meeting.items]
        # Universal-proxy groups are marked as a whole (services.devtools.demo.choices); the rest item by item.
        self.plain = [(i.id, i.options, i.recommendation) for i in meeting.items if not i.universal_proxy]
        self.contests = contests(meeting.items)
        self.order = [i.id for i in meeting.items]
        self.routine = {i.id: i.recommendation or i.options[0] for i in meeting.items if i.routine}
        self.channels = list(sim.channels)
        self.channel_weights = list(accumulate(sim.channels.values()))
        self.first_executed: dict[str, int] = {}
        self.planned: list[Planned] = []

    def build(self) -> list[Planned]:
        """Plan every kind of submission, then sort by arrival (ties: planning order)."""
        voters = self._voters()
        for position in voters:
            self._holder(position)
        self._discretionary()
        self._late(voters)
        self._invalid(voters)
        self._ballots(voters)
        self._substitution()
        self.planned.sort(key=lambda planned: (planned[0], planned[1]))
        return self.planned

    def _add(self, received: int, event: Submission, voter: Position | None = None) -> None:
        self.planned.append((received, len(self.planned), event, voter))

    def _voters(self) -> list[Position]:
        """Holders owning about ``turnout`` of the outstanding shares; large holders vote more often."""
        rng = self.rng
        # Weighted sampling without replacement (Efraimidis–Spirakis), weight shares^0.35:
        # institutions nearly always vote, most retail accounts do not (about 1 in 5 here).
        keys = {p.control_number: rng.random() ** (1.0 / p.shares**0.35) for p in self.positions}
        ranked = sorted(self.positions, key=lambda p: keys[p.control_number], reverse=True)
        target = math.ceil(self.meeting.outstanding * Fraction(str(self.sim.turnout)))
        voters, total = [], 0
        for position in ranked:
            if total >= target:
                break
            voters.append(position)
            total += position.shares
        return voters

    def _holder(self, p: Position) -> None:
        """One holder's instructions: a first one, maybe a re-vote, maybe a revocation and a new vote."""
        rng, sim = self.rng, self.sim
        received = self._arrival()
        executed, vote = self.instruction(p, received)
        self.first_executed[p.control_number] = executed
        self._add(received, vote, p)
        last = received
        if rng.random() < sim.revote and last + HOUR < self.t_cutoff:
            last = rng.randint(last + HOUR, self.t_cutoff - 1)
            self._add(last, self.instruction(p, last)[1], p)
        if p.kind == "registered" and rng.random() < sim.revoke and last + 3 * DAY < self.t_cutoff:
            at = rng.randint(last + HOUR, self.t_cutoff - 2 * DAY)
            arrives = min(at + rng.randint(DAY, 3 * DAY), self.t_meeting - HOUR)  # a letter, by mail
            self._add(
                arrives,
                VoteRevoked(
                    event_id=self._id(),
                    meeting_id=self.meeting.meeting_id,
                    control_number=p.control_number,
                    channel="mail",
                    submitted_by=sim.submitters.get("revocation", "corporate-secretary"),
                    executed_at=self._remote(at),
                    received_at=self._remote(arrives),
                ),
            )
            if rng.random() < sim.vote_after_revoke:
                again = rng.randint(at + HOUR, self.t_cutoff - 1)
                self._add(again, self.instruction(p, again, "internet")[1], p)

    def instruction(self, p: Position, received: int, channel: str | None = None) -> tuple[int, VoteCast]:
        """An owner's instruction arriving at ``received``; returns (executed second, the vote)."""
        rng, sim = self.rng, self.sim
        shares = rng.randint(1, p.shares - 1) if p.shares > 1 and rng.random() < sim.partial else None
        choices = item_marks(rng, self.plain, sim, shares or p.shares, p.kind == "beneficial")
        signatures = None
        if p.kind == "beneficial":
            channel, by = "broker", p.nominee or "nominee"
            executed = max(0, received - 60 - int(rng.random() * 6 * HOUR))  # nominees forward in batches
        else:
            channel = channel or rng.choices(self.channels, cum_weights=self.channel_weights)[0]
            if channel == "mail" and received < sim.mail_delay_days[0] * DAY:
                channel = "internet"  # no card can have come back yet: the earliest votes are online
            by = sim.submitters.get(channel, channel)
            if channel == "mail":
                executed = card_date(rng, sim, self.t0_remote, received)
                signatures = card_signatures(rng, sim, p.holders)
            else:
                executed = max(0, received - int(rng.random() * (4 if channel == "internet" else 9)))
        choices = self._contested(choices, channel)
        return executed, self._vote(p, channel, by, executed, received, choices, shares=shares, signatures=signatures)

    def _discretionary(self) -> None:
        """R10: nominees vote still-uninstructed beneficial positions on the routine items only."""
        if not self.routine:
            return
        rng = self.rng
        for p in self.positions:
            if p.kind != "beneficial" or rng.random() >= self.sim.discretionary:
                continue
            executed = self.t_discretion + int(rng.random() * DAY)
            first = self.first_executed.get(p.control_number)
            if first is not None and first <= executed:
                continue  # the owner already instructed: no discretion left
            received = executed + 60 + int(rng.random() * 2 * HOUR)
            self._add(
                received,
                self._vote(
                    p, "broker", p.nominee or "nominee", executed, received, dict(self.routine), discretionary=True
                ),
            )

    def _late(self, voters: list[Position]) -> None:
        """Internet votes after the cut-off: recorded and rejected cutoff_passed (R12)."""
        registered = [p for p in voters if p.kind == "registered"]
        room = self.t_meeting - self.t_cutoff - 120
        if not registered or room < 60 or self.meeting.cutoffs.internet is None:
            return
        for _ in range(self.sim.late):
            p = self.rng.choice(registered)
            received = self.t_cutoff + self.rng.randint(60, min(room, 6 * HOUR))
            self._add(received, self.instruction(p, received, "internet")[1])

    def _invalid(self, voters: list[Position]) -> None:
        """Typos of control numbers (not_entitled, R1) and options not on the card (invalid_choice, R4)."""
        rng = self.rng
        for n in range(round(self.sim.invalid * len(voters))):
            received = self._arrival()
            if n % 2 == 0:
                executed, vote = self.instruction(rng.choice(self.positions), received, "internet")
                vote = msgspec.structs.replace(vote, control_number=typo(rng, vote.control_number, self.known))
            else:
                executed, vote = self.instruction(rng.choice(voters), received)
                item_id, options, _ = rng.choice(self.items)
                wrong = next(o for o in WRONG_OPTIONS if o not in options)
                vote = msgspec.structs.replace(vote, choices={**vote.choices, item_id: wrong})
            self._add(received, vote)

    def _ballots(self, voters: list[Position]) -> None:
        """Ballots at the meeting (R6); beneficial owners need a legal proxy from the nominee (R8)."""
        rng, sim = self.rng, self.sim
        chosen: dict[str, Position] = {}
        for _ in range(sim.in_person):
            p = rng.choice(voters) if voters and rng.random() < 0.6 else rng.choice(self.positions)
            chosen[p.control_number] = p
        for p in chosen.values():
            executed = self.t_meeting + rng.randint(2 * 60, 25 * 60)
            received = executed + rng.randint(0, 300)
            legal = None
            if p.kind == "beneficial" and rng.random() < sim.legal_proxy:
                legal = f"LP-{rng.randrange(10**8):08d}"
            self._add(
                received,
                self._vote(
                    p,
                    "in_person",
                    sim.submitters.get("in_person", "ballot-desk"),
                    executed,
                    received,
                    self._contested(item_marks(rng, self.plain, sim, p.shares, False, marked=True), "in_person", True),
                    legal_proxy_id=legal,
                    local=True,
                ),
            )

    def _substitution(self) -> None:
        """R13: a named proxy appoints a substitute for all its proxies the night before."""
        sub = self.sim.substitution
        if sub is None:
            return
        executed = self.t_meeting - int(sub.hours_before * HOUR)
        received = executed + self.rng.randint(60, 1800)
        self._add(
            received,
            ProxySubstituted(
                event_id=self._id(),
                meeting_id=self.meeting.meeting_id,
                proxy_holder=sub.proxy_holder,
                substitute=sub.substitute,
                executed_at=self._local(executed),
                received_at=self._local(received),
            ),
        )

    def _contested(self, choices: dict, channel: str, marked: bool = False) -> dict:
        """Add the marks on each universal-proxy group, keeping the card's item order."""
        if not self.contests:
            return choices  # uncontested: no draws, so such a meeting's traffic is unchanged
        for contest in self.contests:
            choices.update(contest_marks(self.rng, contest, self.sim, channel, marked))
        return {item_id: choices[item_id] for item_id in self.order if item_id in choices}

    def _arrival(self) -> int:
        """An arrival time before the cut-off: a burst after the mailing, then rising to the cut-off."""
        rng = self.rng
        r = rng.random()
        if r < 0.2:
            x = rng.random() * 0.12
        elif r < 0.5:
            x = rng.random()
        else:
            x = math.sqrt(rng.random())
        return int(x * (self.t_cutoff - 1))

    def _vote(
        self,
        p: Position,
        channel: str,
        by: str,
        executed: int,
        received: int,
        choices: dict,
        *,
        shares: int | None = None,
        signatures: list[str] | None = None,
        discretionary: bool = False,
        legal_proxy_id: str | None = None,
        local: bool = False,
    ) -> VoteCast:
        at = self._local if local else self._remote
        return VoteCast(
            event_id=self._id(),
            meeting_id=self.meeting.meeting_id,
            control_number=p.control_number,
            channel=channel,
            submitted_by=by,
            executed_at=at(executed),
            received_at=at(received),
            shares=shares,
            choices=choices,
            signatures=signatures,
            discretionary=discretionary,
            legal_proxy_id=legal_proxy_id,
        )

    def _id(self) -> str:
        """A random (version 4) UUID from the seeded generator; same as uuid.UUID(int=…, version=4)."""
        n = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _remote(self, second: int):
        return self.t0_remote + timedelta(seconds=second)

    def _local(self, second: int):
        return self.t0_meeting + timedelta(seconds=second)

"""The campaign forecast: final turnout, quorum and each item's outcome at the polls' close. Pure, no I/O.

From the fold at a position (a Tally) and when each control number first instructed: how many more
holders will instruct (projections.forecast_curve: the trend of first instructions per bin), which
positions (a position's chance grows with its size, logistic in log shares), what they will vote
(as the instructions so far, per registered / beneficial holder), and what the nominees add by
voting uninstructed positions on the routine items (R10, at an assumed rate). The interval is the
5th-95th percentile of a seeded Monte Carlo: each replicate draws a voter projection (low, point,
high) and, position by position, who instructs. Method and limits: docs/campaign.md.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from events import MeetingScheduled, Position, VoteCast
from projections.contribution import BROKER_NON_VOTE, REGISTERED
from projections.fold import Tally
from projections.forecast_curve import fit_turnout, later_probability, project_voters
from projections.outcomes import margin, outcomes, quorum
from projections.overvotes import counted_totals
from projections.voter_state import key_of, voter_contribution

REPLICATES = 400
EXACT_DRAWS = 500  # the largest undecided positions drawn one by one; the rest by a normal approximation
MIN_PEERS = 20  # a new large voter votes like one of at least this many voters of about its size
MIN_BINS = 4  # fewer bins of voting than this: too early to fit a trend
SCENARIOS = (("low", 1), ("point", 2), ("high", 1))  # voter projections and their weights in the replicates
Group = tuple[str, str]  # (holder kind, nominee): what a new instruction votes like, and for R17
Buckets = dict[tuple[str, str, str], float]
# New instructed shares per group (voting as the instructions so far), buckets of the large new voters drawn
# one by one (each voting like one voter so far), discretionary shares per nominee.
Draw = tuple[dict[Group, float], Buckets, dict[str, float]]


def first_instructions(events: list[VoteCast]) -> dict[str, datetime]:
    """When each control number's first own instruction (not a nominee's discretionary vote) was received."""
    first: dict[str, datetime] = {}
    for event in events:
        if not event.discretionary and (
            event.control_number not in first or event.received_at < first[event.control_number]
        ):
            first[event.control_number] = event.received_at
    return first


def bin_seconds(campaign_s: float) -> float:
    """A day, or a twentieth of a campaign shorter than 20 days (at least a second)."""
    return max(1.0, min(86_400.0, campaign_s / 20))


def forecast(
    tally: Tally,
    instructed_at: Mapping[str, datetime],
    now: datetime,
    broker_rate: float | None = None,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> dict[str, Any]:
    """The projection at the polls' close of the campaign whose fold so far is ``tally`` (method: module doc).

    ``broker_rate``: the share of still-uninstructed beneficial positions their nominees vote on the routine
    items (R10); by default 1, or 0 in a contest (a universal proxy card), where brokers have no discretion.
    """
    meeting, spec = tally.meeting, tally.meeting.spec
    if broker_rate is None:
        broker_rate = 0.0 if any(item.universal_proxy for item in spec.items) else 1.0
    end = meeting.meeting_at
    state = _State(tally)
    base: dict[str, Any] = {
        "polls_close": end.isoformat(),
        "as_of_time": now.isoformat(),
        "broker_rate_assumed": broker_rate,
        "routine_items": [item.id for item in spec.items if item.routine],
    }
    times = sorted(t for t in instructed_at.values() if t <= now)
    if meeting.polls_closed_at is not None or now >= end:
        return {**base, "status": "final", **state.final(spec)}
    start = times[0] if times else now
    width = bin_seconds((end - start).total_seconds())
    bins = int((now - start).total_seconds() // width)
    if bins < MIN_BINS:
        return {**base, "status": "insufficient_data", "bin_seconds": width, **state.final(spec)}
    counts = [0] * bins
    for t in times:
        k = bins - 1 - int((now - t).total_seconds() // width)
        if 0 <= k < bins:
            counts[k] += 1
    voters = project_voters(counts, (end - now).total_seconds() / width)
    instructed = len(state.instructed)
    scenario = {}
    for name, projected in (("low", voters.low), ("point", voters.point), ("high", voters.high)):
        elapsed = instructed / projected if projected > 0 else 1.0
        a, b = fit_turnout(state.size_groups(), elapsed)
        scenario[name] = {n: later_probability(a, b, elapsed, p.shares) for n, p in state.undecided}
    point = state.project(spec, state.expected(scenario["point"], broker_rate))
    draws = state.replicate(scenario, broker_rate, replicates, random.Random(seed))
    runs = [state.project(spec, draw) for draw in draws]
    return {
        **base,
        "status": "projected",
        "campaign_start": start.isoformat(),
        "elapsed_fraction": round((now - start) / (end - start), 4),
        "bin_seconds": width,
        "holders_instructed": {
            "now": instructed,
            "projected": round(voters.point),
            "low": round(voters.low),
            "high": round(voters.high),
        },
        **_summary(spec, state, point, runs),
        "replicates": replicates,
    }


class _State:
    """The fold so far split as the forecast needs it: instructed voters, the others, vote splits."""

    def __init__(self, tally: Tally) -> None:
        meeting = tally.meeting
        self.tally = tally
        self.instructed: dict[str, int] = {}  # control number -> present shares, by its own instruction
        self.discretionary: set[str] = set()  # present through its nominee's discretionary vote only (R10)
        self.base: Buckets = defaultdict(float)  # the instructed voters' buckets: stay as they are
        split: dict[str, Buckets] = {"registered": defaultdict(float), "beneficial": defaultdict(float)}
        weight = {"registered": 0, "beneficial": 0}
        self.disc_split: dict[str, Buckets] = defaultdict(lambda: defaultdict(float))
        self._disc_normalised: dict[str, Buckets] = {}  # per nominee, once: the same for every draw (project)
        # Each instructed voter's columns per share, by holder kind: a large new voter votes like one of them.
        # Sorted by the voter's shares: a new voter draws among those of about its size (see _pattern).
        self.patterns: dict[str, list[tuple[int, list[tuple[str, str, float]]]]] = {"registered": [], "beneficial": []}
        for number, voter in tally.voters.items():
            position = meeting.positions.get(number)
            part = voter_contribution(meeting, position, voter) if position is not None else None
            if part is None or position is None:
                continue
            if any(isinstance(v, VoteCast) and not v.discretionary for v in key_of(voter)):
                self.instructed[number] = part.present
                weight[position.kind] += part.present
                for key, shares in part.buckets.items():
                    self.base[key] += shares
                    split[position.kind][(key[0], key[1], "")] += shares
                self.patterns[position.kind].append(
                    (part.present, [(i, o, shares / part.present) for (i, o, _), shares in part.buckets.items()])
                )
            else:
                self.discretionary.add(number)
                for (item, option, _), shares in part.buckets.items():
                    self.disc_split[position.nominee or REGISTERED][(item, option, "")] += shares
        for patterns in self.patterns.values():
            patterns.sort(key=lambda p: p[0])
        self.sizes = {kind: [p[0] for p in patterns] for kind, patterns in self.patterns.items()}
        self.split = {kind: self._normalised(split[kind], kind, weight[kind]) for kind in split}
        self.undecided = sorted(
            ((n, p) for n, p in meeting.positions.items() if n not in self.instructed),
            key=lambda np: (-np[1].shares, np[0]),
        )

    def _normalised(self, buckets: Buckets, kind: str, present: float | None = None) -> Buckets:
        """Each item's columns per share present (else per share voted on it); none yet: as recommended (R9, R16)."""
        out: Buckets = defaultdict(float)
        for item in self.tally.meeting.spec.items:
            total = present or sum(v for (i, _, _), v in buckets.items() if i == item.id)
            mine = {o: v for (i, o, _), v in buckets.items() if i == item.id}
            if total <= 0:
                fallback = item.recommendation or item.options[0]
                mine = {fallback if kind == "registered" or item.routine else BROKER_NON_VOTE: 1.0}
                total = 1.0
            for option, v in mine.items():
                out[(item.id, option, "")] = v / total
        return out

    def size_groups(self) -> list[tuple[float, int, int]]:
        """(log shares rounded to a quarter, positions, instructed) over the register."""
        groups: dict[float, list[int]] = defaultdict(lambda: [0, 0])
        for number, position in self.tally.meeting.positions.items():
            g = groups[round(math.log(position.shares) * 4) / 4]
            g[0] += 1
            g[1] += number in self.instructed
        return [(x, n, v) for x, (n, v) in sorted(groups.items())]

    @staticmethod
    def group_of(position: Position) -> Group:
        return (position.kind, position.nominee or REGISTERED if position.kind == "beneficial" else REGISTERED)

    def expected(self, q: Mapping[str, float], broker_rate: float) -> Draw:
        """New instructed shares per group and discretionary shares per nominee, in expectation."""
        new: dict[Group, float] = defaultdict(float)
        disc: dict[str, float] = defaultdict(float)
        routine = any(item.routine for item in self.tally.meeting.spec.items)
        for number, position in self.undecided:
            chance = q[number]
            new[self.group_of(position)] += chance * position.shares
            if routine and position.kind == "beneficial":
                rate = 1.0 if number in self.discretionary else broker_rate
                disc[position.nominee or REGISTERED] += (1 - chance) * rate * position.shares
        return new, {}, disc

    def replicate(
        self, scenario: Mapping[str, Mapping[str, float]], broker_rate: float, n: int, rng: random.Random
    ) -> list[Draw]:
        """``n`` draws of who instructs: the largest positions one by one, the rest by a normal per group."""
        routine = any(item.routine for item in self.tally.meeting.spec.items)
        rest = self.undecided[EXACT_DRAWS:]
        # Each position's group once, not once per draw (400 draws of up to EXACT_DRAWS positions).
        exact = [(number, position, self.group_of(position)) for number, position in self.undecided[:EXACT_DRAWS]]
        names = [name for name, weight in SCENARIOS for _ in range(weight)]
        moments = {}
        for name, q in scenario.items():
            mean: dict[Group, float] = defaultdict(float)
            var: dict[Group, float] = defaultdict(float)
            rest_disc: dict[str, float] = defaultdict(float)  # their discretionary votes, in expectation
            for number, position in rest:
                g, p = self.group_of(position), q[number]
                mean[g] += p * position.shares
                var[g] += p * (1 - p) * position.shares**2
                if routine and position.kind == "beneficial":
                    rate = 1.0 if number in self.discretionary else broker_rate
                    rest_disc[g[1]] += (1 - p) * rate * position.shares
            moments[name] = (mean, var, rest_disc)
        out = []
        for _ in range(n):
            name = rng.choice(names)
            q = scenario[name]
            new: dict[Group, float] = defaultdict(float)
            extra: Buckets = defaultdict(float)
            disc: dict[str, float] = defaultdict(float)
            for number, position, g in exact:
                if rng.random() < q[number]:
                    pattern = self._pattern(position, rng)
                    if pattern is None:
                        new[g] += position.shares
                        continue
                    for item_id, option, f in pattern:
                        extra[(item_id, option, g[1])] += position.shares * f
                    extra[("", "present", "")] += position.shares
                elif routine and position.kind == "beneficial":
                    rate = 1.0 if number in self.discretionary else broker_rate
                    disc[g[1]] += rate * position.shares
            mean, var, rest_disc = moments[name]
            for g in mean:
                new[g] += max(0.0, rng.gauss(mean[g], math.sqrt(var[g])))
            for nominee, shares in rest_disc.items():
                disc[nominee] += shares
            out.append((new, extra, disc))
        return out

    def _pattern(self, position: Position, rng: random.Random) -> list[tuple[str, str, float]] | None:
        """How a voter so far of the same kind and about the same size (a tenth to ten times) voted, per share.

        Large holders vote alike more than like the retail accounts (and one holder's idiosyncratic vote
        is not every large holder's): among at least MIN_PEERS voters, widened by rank when too few.
        """
        patterns = self.patterns[position.kind]
        if not patterns:
            return None
        sizes = self.sizes[position.kind]
        lo, hi = bisect.bisect_left(sizes, position.shares / 10), bisect.bisect_right(sizes, position.shares * 10)
        while hi - lo < min(MIN_PEERS, len(patterns)):
            lo, hi = max(0, lo - 1), min(len(patterns), hi + 1)
        return patterns[rng.randrange(lo, hi)][1]

    def project(self, spec: MeetingScheduled, draw: Draw) -> dict[str, Any]:
        """Present, counted totals (R17 as the tally applies it), outcomes and margins for one draw."""
        new, extra, disc = draw
        buckets: Buckets = defaultdict(float, self.base)
        drawn = extra.get(("", "present", ""), 0.0)
        for key, shares in extra.items():
            if key[0]:
                buckets[key] += shares
        for (kind, nominee), shares in new.items():
            for (item_id, option, _), f in self.split[kind].items():
                buckets[(item_id, option, nominee)] += shares * f
        for nominee, shares in disc.items():
            split = self._discretionary_split(nominee)
            for item in spec.items:
                if item.routine:
                    for (i, option, _), f in split.items():
                        if i == item.id and option != BROKER_NON_VOTE:
                            buckets[(item.id, option, nominee)] += shares * f
                else:
                    buckets[(item.id, BROKER_NON_VOTE, nominee)] += shares
        present = round(sum(self.instructed.values()) + sum(new.values()) + drawn + sum(disc.values()))
        whole = {key: round(v) for key, v in buckets.items() if round(v) > 0}
        totals, _ = counted_totals(spec, self.tally.meeting.entitlements, whole)
        q = quorum(spec, present)
        return {"present": present, "met": q["met"], "totals": totals, "outcomes": outcomes(spec, totals, q["met"])}

    def _discretionary_split(self, nominee: str) -> Buckets:
        """The nominee's discretionary votes per share (else all nominees'); computed once, not per draw."""
        held = self._disc_normalised.get(nominee)
        if held is None:
            mine = self.disc_split.get(nominee)
            if not mine:
                overall: Buckets = defaultdict(float)
                for theirs in self.disc_split.values():
                    for key, v in theirs.items():
                        overall[key] += v
                mine = overall
            held = self._disc_normalised[nominee] = self._normalised(mine, "beneficial")
        return held

    def final(self, spec: MeetingScheduled) -> dict[str, Any]:
        """The numbers as they stand, for a closed meeting or one too early to project."""
        q = quorum(spec, self.tally.present)
        return {
            "turnout": {"present": self.tally.present, "outstanding": spec.outstanding},
            "quorum": {"required": q["required"], "met_now": q["met"]},
        }


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def _summary(
    spec: MeetingScheduled, state: _State, point: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Point, 5th-95th percentile interval and probabilities of turnout, quorum and every item."""
    present = [float(r["present"]) for r in runs]
    required = quorum(spec, 0)["required"]
    now_present = state.tally.present
    instructed_now = sum(state.instructed.values())
    items = {}
    for item in spec.items:
        margins = [float(margin(spec, r["totals"], item.id)) for r in runs]
        outcome = point["outcomes"][item.id]
        counts = point["totals"].get(item.id, {})
        items[item.id] = {
            "projected": {
                **{o: counts.get(o, 0) for o in item.options},
                "broker_non_votes": counts.get(BROKER_NON_VOTE, 0),
            },
            "outcome": outcome,
            "outcome_probability": round(sum(r["outcomes"][item.id] == outcome for r in runs) / len(runs), 3),
            "margin": margin(spec, point["totals"], item.id),
            "margin_low": round(_percentile(margins, 0.05)),
            "margin_high": round(_percentile(margins, 0.95)),
        }
    low, high = round(_percentile(present, 0.05)), round(_percentile(present, 0.95))
    return {
        "turnout": {
            "present": now_present,
            "outstanding": spec.outstanding,
            "projected": point["present"],
            "low": min(low, point["present"]),
            "high": max(high, point["present"]),
            "projected_percent": f"{100 * point['present'] / spec.outstanding:.2f}",
            "instructed_now": instructed_now,
            "discretionary_now": now_present - instructed_now,
        },
        "quorum": {
            "required": required,
            "met_now": now_present >= required,
            "projected_met": point["met"],
            "met_probability": round(sum(r["met"] for r in runs) / len(runs), 3),
            "met_without_new_votes": now_present >= required,
        },
        "items": items,
    }


def horizon(start: datetime, end: datetime, fraction: float) -> datetime:
    """The time a fraction of the way from ``start`` to ``end`` (whole seconds)."""
    return start + timedelta(seconds=int((end - start).total_seconds() * fraction))

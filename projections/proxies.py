"""Who holds, and so votes, each proxy at any time: named proxies and their substitutes (R13). Pure.

At the start every control number's proxy is held jointly by all the meeting's named proxies (each
may act alone). A substitution X -> Y executed at T makes Y replace X, from T, for every proxy X
holds at T, or only for the listed control numbers. Substitutions apply in R5 order (executed_at,
then received_at, then event_id), so every answer is a function of the *set* of accepted
substitutions, whatever order they arrived in. Memory grows with the substitutions, never with the
register: control numbers that follow the named proxies' common chain are not stored, only those a
listed substitution set apart (their exceptions).

Whether the holder held, at the substitution's time, what it passes on (R13 "a current holder") is
decided here, over that set, and not by the ledger at ingest (which could only see the substitutions
that happened to arrive first): a substitution of someone who then held none of it is accepted but
has no effect, and its Link says why (``why``); one that held only some of the listed control numbers
passes those on, and its Link names the others. A substitution received after the polls closed on every
item has no effect either (R12), whether that closure reached the log before it (the ledger then refuses
it ``poll_closed``) or after it.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from events import ProxySubstituted

SubstitutionKey = tuple[datetime, datetime, str]


def substitution_key(event: ProxySubstituted | Substitution) -> SubstitutionKey:
    """R5 order of substitutions: executed_at, then received_at, then event_id."""
    return (event.executed_at, event.received_at, event.event_id)


@dataclass(frozen=True, slots=True)
class Substitution:
    """What the book keeps of an accepted proxy.substituted: no signature or path (auth is checked at ingest).

    Measured with tracemalloc (10,000 signed substitutions decoded from the log, Merkle paths of 10
    hashes): a decoded event retains ~2.3 kB; the book keeps ~0.56 kB a substitution (this record, its
    R5 key, time and id), plus ~0.5 kB for its Link once a query has replayed it.
    """

    proxy_holder: str
    substitute: str
    executed_at: datetime
    received_at: datetime
    event_id: str
    control_numbers: tuple[str, ...] | None  # listed ones once each, in order; None: every proxy held

    @classmethod
    def of(cls, event: ProxySubstituted) -> Substitution:
        """The record of an accepted event."""
        listed = None if event.control_numbers is None else tuple(dict.fromkeys(event.control_numbers))
        return cls(event.proxy_holder, event.substitute, event.executed_at, event.received_at, event.event_id, listed)


@dataclass(frozen=True)
class Link:
    """One accepted substitution as the ordered replay applied it: who appointed whom, when, for what."""

    proxy_holder: str
    substitute: str
    executed_at: datetime
    control_numbers: tuple[str, ...] | None  # None: every proxy the holder then held
    event_id: str
    # False when, in R5 order, the holder held none of what it named at executed_at (it never held a
    # proxy by then, or an earlier-dated substitution had already passed it on), or named itself, or it
    # was received after the polls closed on every item: the link then changes nothing (R13, R12).
    effective: bool
    lineage: frozenset[str]  # named proxies whose authority the holder exercised
    # Why the link had no effect, or (listed numbers) why only part of it did; None: it did all it named.
    why: str | None = None
    not_held: tuple[str, ...] = ()  # listed control numbers the holder did not hold at executed_at


@dataclass(frozen=True)
class Holding:
    """How a current holder came to hold proxies: since when and appointed by whom."""

    since: datetime | None  # None: a named proxy, holding since the meeting was called
    appointed_by: tuple[str, ...]


@dataclass
class _State:
    """The holders after the first ``applied`` substitutions in R5 order."""

    default: frozenset[str]  # holders of every control number without an exception
    exceptions: dict[str, frozenset[str]] = field(default_factory=dict)
    holdings: dict[str, Holding] = field(default_factory=dict)
    roots: dict[str, frozenset[str]] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    applied: int = 0

    def holders(self, control_number: str) -> frozenset[str]:
        """Holders of one control number's proxy."""
        return self.exceptions.get(control_number, self.default)

    def holds_any(self, person: str) -> bool:
        """Whether the person holds at least one proxy."""
        return person in self.default or any(person in h for h in self.exceptions.values())

    def holds(self, person: str, control_numbers: Collection[str] | None) -> bool:
        """All (None or empty list): at least one proxy; listed: each listed one."""
        if not control_numbers:
            return self.holds_any(person)
        return all(person in self.holders(cn) for cn in control_numbers)


def _swap(holders: frozenset[str], old: str, new: str) -> frozenset[str]:
    return (holders - {old}) | {new}


class ProxyBook:
    """The proxies of one meeting: apply accepted substitutions, ask who holds what at any time."""

    def __init__(self, named_proxies: Iterable[str]) -> None:
        self.named_proxies: tuple[str, ...] = tuple(dict.fromkeys(named_proxies))
        self._events: list[Substitution] = []  # in R5 order
        self._keys: list[SubstitutionKey] = []
        self._times: list[datetime] = []
        self._ids: set[str] = set()
        # When the polls closed on every item (Meeting.polls_closed_at): a substitution received after it has no
        # effect, whether the closure was logged before it (the judge refuses it) or after (R12, R13, R5).
        self.polls_closed_at: datetime | None = None
        # The state after a prefix of the ordered substitutions; queries move it forward, and only
        # an earlier point in time (or an earlier-dated arrival) makes it start over.
        self._cache = self._start()

    def _start(self) -> _State:
        named = frozenset(self.named_proxies)
        return _State(
            default=named,
            holdings={p: Holding(None, ()) for p in self.named_proxies},
            roots={p: frozenset({p}) for p in self.named_proxies},
        )

    def apply(self, event: ProxySubstituted) -> None:
        """Apply an accepted substitution, whoever held what at its time; a repeated event_id applies once (R18).

        Its effect is decided on the next query, in R5 order among all those applied: an earlier-dated
        one applied later moves the point from which the cached state must be replayed, nothing else.
        """
        if event.event_id in self._ids:
            return
        self._ids.add(event.event_id)
        record = Substitution.of(event)
        key = substitution_key(record)
        index = bisect.bisect_left(self._keys, key)
        self._keys.insert(index, key)
        self._times.insert(index, record.executed_at)
        self._events.insert(index, record)
        if index < self._cache.applied:
            self._cache = self._start()

    def close_polls(self, closed_at: datetime | None) -> None:
        """Take the time the polls closed on every item (None: open); the links are decided again under it."""
        if closed_at != self.polls_closed_at:
            self.polls_closed_at = closed_at
            self._cache = self._start()

    @property
    def substitutions(self) -> tuple[Substitution, ...]:
        """The applied substitutions, in R5 order."""
        return tuple(self._events)

    def holders(self, control_number: str, as_of: datetime | None = None) -> frozenset[str]:
        """Who holds the control number's proxy at ``as_of`` (None: after every substitution)."""
        return self._state_as_of(as_of).holders(control_number)

    def holds(self, person: str, control_numbers: list[str] | None, at: datetime) -> bool:
        """Whether the person holds, at ``at``, at least one proxy (None) or each listed one."""
        return self._state_as_of(at).holds(person, control_numbers)

    def holdings(self, as_of: datetime | None = None) -> dict[str, Holding]:
        """Every holder of at least one proxy at ``as_of``, with since when and appointed by whom."""
        return dict(self._state_as_of(as_of).holdings)

    def holder_sets(self, as_of: datetime | None = None) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        """(holders of every unlisted control number, holders of each set-apart control number)."""
        state = self._state_as_of(as_of)
        return state.default, dict(state.exceptions)

    def links(self, as_of: datetime | None = None) -> tuple[Link, ...]:
        """Every substitution executed by ``as_of``, in R5 order, as it took effect (or why it did not)."""
        return tuple(self._state_as_of(as_of).links)

    def chains(self, as_of: datetime | None = None) -> dict[str, tuple[Link, ...]]:
        """Each named proxy's lineage: the substitutions made under its authority, in order."""
        links = self._state_as_of(as_of).links
        return {named: tuple(link for link in links if named in link.lineage) for named in self.named_proxies}

    def _state_as_of(self, as_of: datetime | None) -> _State:
        # Inclusive: a substitution executed at exactly `as_of` has taken effect by then.
        return self._state(len(self._events) if as_of is None else bisect.bisect_right(self._times, as_of))

    def _state(self, upto: int) -> _State:
        if upto < self._cache.applied:
            self._cache = self._start()
        state = self._cache
        for event in self._events[state.applied : upto]:
            _step(state, event, self.polls_closed_at)
            state.applied += 1
        return state


def _step(state: _State, event: Substitution, polls_closed_at: datetime | None) -> None:
    """Apply one substitution to the state (the next one in R5 order)."""
    old, new, listed, when = event.proxy_holder, event.substitute, event.control_numbers, event.executed_at
    not_held: tuple[str, ...] = ()
    why: str | None = None
    if polls_closed_at is not None and event.received_at > polls_closed_at:
        # R12: received after the polls closed on every item, as the fold drops a late vote (timing.fold_drops).
        effective, why = False, f"received after the polls closed at {polls_closed_at.isoformat()}"
    elif old == new:
        effective, why = False, f"{old} named itself as substitute"  # changes nothing, whatever it held
    elif listed is None:
        effective = state.holds_any(old)
        why = None if effective else f"{old} held no proxy at {when.isoformat()}"  # R13
        if effective:
            if old in state.default:
                state.default = _swap(state.default, old, new)
            for cn, holders in list(state.exceptions.items()):
                if old in holders:
                    state.exceptions[cn] = _swap(holders, old, new)
    else:
        # R13: only what the holder holds at executed_at passes on; the rest stays with whoever holds it.
        moved = [cn for cn in listed if old in state.holders(cn)]
        not_held = tuple(cn for cn in listed if cn not in moved)
        for cn in moved:
            state.exceptions[cn] = _swap(state.holders(cn), old, new)
        effective = bool(moved)
        if not listed:
            why = "lists no control number"  # an empty list names nothing to pass on (None means all)
        elif not effective:
            why = f"{old} held none of the listed proxies at {when.isoformat()}"
        elif not_held:
            why = f"{old} did not hold {', '.join(not_held)} at {when.isoformat()}; only the others passed on"
    if effective:
        # A control number back in step with the common chain needs no exception of its own.
        for cn in [cn for cn, holders in state.exceptions.items() if holders == state.default]:
            del state.exceptions[cn]
        current = state.holdings.get(new)
        if current is None:
            state.holdings[new] = Holding(when, (old,))
        elif old not in current.appointed_by:
            state.holdings[new] = Holding(current.since, current.appointed_by + (old,))
        if not state.holds_any(old):
            state.holdings.pop(old, None)
        state.roots[new] = state.roots.get(new, frozenset()) | state.roots.get(old, frozenset())
    state.links.append(
        Link(
            proxy_holder=old,
            substitute=new,
            executed_at=when,
            control_numbers=listed,
            event_id=event.event_id,
            effective=effective,
            lineage=state.roots.get(old, frozenset()),
            why=why,
            not_held=not_held,
        )
    )

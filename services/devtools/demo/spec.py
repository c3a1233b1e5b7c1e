"""Meeting spec files (TOML): the meeting as data, its synthetic register and the simulation knobs.

A spec file has three tables: ``[meeting]`` (everything ``meeting.scheduled`` carries, minus the
envelope), ``[register]`` (parameters of the synthetic record-date register) and ``[simulation]``
(parameters of the simulated campaign). Problems are reported as ``ValueError("FILE: where: what")``.
A ``[meeting]`` that leaves out ``signatures_required`` or ``broker_grace_s`` gets this project's
defaults for a new meeting (true, 300 s); ``broker_grace_s = "off"`` turns the broker's clock off.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from events import Cutoffs, Item, MeetingScheduled, Quorum, encode
from events.schema import HolderKind, PositiveShares

# Namespace of the demo's deterministic event ids: loading the same file twice yields the same ids,
# so the ledger applies it once (R18); a changed file yields new ids, which the ledger rejects as
# duplicate_meeting / duplicate_chunk instead of silently ignoring (R19).
DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://vote-ledger.invalid/demo")

# What the meeting tools write for a new meeting unless its file says otherwise (issue 11): channel
# signatures required (S5), and R12 on the broker's clock with this grace. A producer retries a record
# for up to its delivery.timeout.ms (Kafka's default: 120 s) before giving up, so a vote sent just before
# a cut-off can be appended up to two minutes after it; 300 s leaves that margin twice and a half, and
# still stops a late vote relabelled or back-dated from slipping in more than five minutes late.
SIGNATURES_REQUIRED = True
BROKER_GRACE_S = 300
# A file turns the broker's clock off with broker_grace_s = "off" (TOML has no null): a simulation
# that replays a past meeting's campaign now, whose every record the broker appends years late.
BROKER_CLOCK_OFF = "off"

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Nominee(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A broker or bank (DTC participant): its weight among beneficial positions, entitlement slack."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    weight: Annotated[float, msgspec.Meta(gt=0)]
    # Entitlement = books × (1 + slack), floored. Negative: the DTC position is below the broker's
    # books (share lending), so full voting of its clients over-votes (R17).
    entitlement_slack: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.0


class KnownHolder(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A holder named in the proxy statement, with its exact shares."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    shares: PositiveShares
    kind: HolderKind = "registered"
    nominee: str | None = None


class RegisterSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Parameters of the synthetic record-date register (positions sum to the outstanding shares)."""

    seed: int = 20231017
    positions: Annotated[int, msgspec.Meta(gt=0)] = 20000
    beneficial_positions: Probability = 0.78  # of the synthetic positions, held in street name
    beneficial_shares: Probability = 0.8  # of the synthetic shares, held in street name
    joint: Probability = 0.15  # of the registered synthetic positions, held jointly
    size_sigma: Annotated[float, msgspec.Meta(gt=0, le=5)] = 2.0  # log-normal spread of sizes
    # No synthetic holder reaches 5 %: the proxy statement would have to name it.
    max_position: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.049
    nominees: list[Nominee] = []
    known_holders: list[KnownHolder] = []


class Substitution(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A named proxy appointing a substitute shortly before the meeting (R13)."""

    proxy_holder: Annotated[str, msgspec.Meta(min_length=1)]
    substitute: Annotated[str, msgspec.Meta(min_length=1)]
    hours_before: Annotated[float, msgspec.Meta(gt=0)] = 12.0


def _default_channels() -> dict[str, float]:
    return {"internet": 0.55, "phone": 0.08, "mail": 0.37}


def _default_submitters() -> dict[str, str]:
    return {
        "internet": "proxyvote-web",
        "phone": "proxyvote-ivr",
        "mail": "mailroom-scan",
        "in_person": "ballot-desk",
        "revocation": "corporate-secretary",
    }


class SimulationSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Parameters of the simulated proxy campaign (probabilities are per holder or per card)."""

    seed: int = 7
    turnout: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.62  # fraction of shares instructing
    opens_days_before: Annotated[int, msgspec.Meta(ge=2, le=366)] = 45  # proxy materials mailed
    channels: dict[str, float] = msgspec.field(default_factory=_default_channels)  # registered holders
    submitters: dict[str, str] = msgspec.field(default_factory=_default_submitters)
    follow_board: Probability = 0.82
    # Of the cards marking a contested (universal proxy) group in full, those voting exactly the
    # board's nominees; None: follow_board. Separate, as a contest splits holders the routine items do not.
    board_slate: Probability | None = None
    unmarked: Probability = 0.03
    split: Probability = 0.04  # nominee instructions splitting an item (R3)
    partial: Probability = 0.02  # instructions for fewer shares than the position (R2)
    revote: Probability = 0.06
    revoke: Probability = 0.01
    vote_after_revoke: Probability = 0.5
    mail_delay_days: tuple[Count, Count] = (2, 9)
    unsigned: Probability = 0.01
    missing_joint_signature: Probability = 0.05
    discretionary: Probability = 1.0  # uninstructed beneficial positions voted on routine items
    discretionary_days_before: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    in_person: Count = 12
    legal_proxy: Probability = 0.75  # beneficial owners at the meeting who bring one (R8)
    late: Count = 4  # internet votes after the cut-off (rejected cutoff_passed)
    invalid: Probability = 0.005  # unknown control numbers and invalid options
    substitution: Substitution | None = None


class _SpecFile(msgspec.Struct, forbid_unknown_fields=True):
    meeting: dict[str, Any]
    register: RegisterSpec = RegisterSpec()
    simulation: SimulationSpec = SimulationSpec()


_ENVELOPE = {"type", "v", "event_id", "recorded_at"}
_SECTIONS = {"items": Item, "quorum": Quorum, "cutoffs": Cutoffs}


def load_spec(path: str | Path) -> tuple[MeetingScheduled, RegisterSpec, SimulationSpec]:
    """Parse and check a meeting spec file; raise ValueError naming the file and the field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the meeting spec: {exc.strerror or exc}") from None
    try:
        raw = msgspec.toml.decode(data, type=_SpecFile)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    meeting = _meeting(path, raw.meeting)
    _check(path, meeting, raw.register, raw.simulation)
    return meeting, raw.register, raw.simulation


def _meeting(path: Path, section: dict[str, Any]) -> MeetingScheduled:
    """Build meeting.scheduled from the [meeting] table, with a content-derived event id."""
    _no_unknown(path, "meeting", section, set(MeetingScheduled.__struct_fields__) - _ENVELOPE)
    for key, struct in _SECTIONS.items():
        values = section.get(key)
        for i, value in enumerate(values if isinstance(values, list) else [values]):
            if isinstance(value, dict):
                where = f"meeting.{key}[{i}]" if isinstance(values, list) else f"meeting.{key}"
                _no_unknown(path, where, value, set(struct.__struct_fields__))
    section = {"signatures_required": SIGNATURES_REQUIRED, "broker_grace_s": BROKER_GRACE_S, **section}
    if section["broker_grace_s"] == BROKER_CLOCK_OFF:
        section["broker_grace_s"] = None
    try:
        meeting = msgspec.convert({**section, "event_id": "pending"}, MeetingScheduled)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: [meeting] {exc}") from None
    digest = hashlib.sha256(encode(meeting)).hexdigest()[:16]
    event_id = str(uuid.uuid5(DEMO_NAMESPACE, f"{meeting.meeting_id}:scheduled:{digest}"))
    return msgspec.structs.replace(meeting, event_id=event_id)


def _no_unknown(path: Path, where: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{path}: {where}: unknown field(s) {', '.join(unknown)}")


def _fail(path: Path, where: str, what: str) -> None:
    raise ValueError(f"{path}: {where}: {what}")


def _check(path: Path, meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec) -> None:
    """Cross-field checks msgspec cannot express."""
    try:
        ZoneInfo(meeting.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(path, "meeting.timezone", f"unknown time zone {meeting.timezone!r}")
    if not meeting.items:
        _fail(path, "meeting.items", "a meeting needs at least one item")
    seen: set[str] = set()
    for i, item in enumerate(meeting.items):
        where = f"meeting.items[{i}] ({item.id})"
        if item.id in seen:
            _fail(path, where, "duplicate item id")
        seen.add(item.id)
        if len(set(item.options)) != len(item.options) or not item.options:
            _fail(path, where, "options must be non-empty and distinct")
        if item.recommendation is not None and item.recommendation not in item.options:
            _fail(path, where, f"recommendation {item.recommendation!r} is not an option")
    if meeting.meeting_at.date() <= meeting.record_date:
        _fail(path, "meeting.meeting_at", "the meeting must be after the record date")
    for channel in ("internet", "phone"):
        cutoff = getattr(meeting.cutoffs, channel)
        if cutoff is not None and cutoff > meeting.meeting_at:
            _fail(path, f"meeting.cutoffs.{channel}", "cut-off after the meeting starts")
    if meeting.quorum.numerator > meeting.quorum.denominator:
        _fail(path, "meeting.quorum", "quorum above 100 %")
    nominees = {n.name for n in register.nominees}
    if len(nominees) != len(register.nominees):
        _fail(path, "register.nominees", "duplicate nominee name")
    known = sum(h.shares for h in register.known_holders)
    if known >= meeting.outstanding:
        _fail(path, "register.known_holders", f"{known} shares, not below outstanding {meeting.outstanding}")
    if len(register.known_holders) >= register.positions:
        _fail(path, "register.positions", "must exceed the number of known holders")
    for i, holder in enumerate(register.known_holders):
        if (holder.kind == "beneficial") != (holder.nominee is not None) or (
            holder.nominee is not None and holder.nominee not in nominees
        ):
            _fail(
                path,
                f"register.known_holders[{i}]",
                "a beneficial holder names a listed nominee; a registered one names none",
            )
    if register.beneficial_positions > 0 and not nominees:
        _fail(path, "register.nominees", "beneficial positions need at least one nominee")
    if (
        not sim.channels
        or set(sim.channels) - {"internet", "phone", "mail"}
        or min(sim.channels.values()) < 0
        or sum(sim.channels.values()) <= 0
    ):
        _fail(path, "simulation.channels", "weights of internet, phone and/or mail, summing above 0")
    low, high = sim.mail_delay_days
    if low < 1 or high < low:
        _fail(path, "simulation.mail_delay_days", "[min, max] days with 1 <= min <= max")
    if (meeting.meeting_at - timedelta(days=sim.opens_days_before)).date() <= meeting.record_date:
        _fail(path, "simulation.opens_days_before", "proxy materials would go out by the record date")
    if sim.discretionary_days_before >= sim.opens_days_before:
        _fail(path, "simulation.discretionary_days_before", "must be below opens_days_before")
    if sim.substitution is not None and sim.substitution.proxy_holder not in meeting.named_proxies:
        _fail(path, "simulation.substitution.proxy_holder", "must be one of meeting.named_proxies")

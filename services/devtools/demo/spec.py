"""Simulation files (TOML): a meeting's synthetic register and simulated campaign, apart from the meeting.

The meeting file holds ``[meeting]`` only (services.registers.meeting_file). Its simulation file,
deploy/simulations/<meeting file's name> beside the meetings folder (else the bundled one of the
meeting id), holds ``[register]`` (parameters of the synthetic record-date register) and
``[simulation]`` (parameters of the simulated campaign): demo tooling reads it, a real meeting never
needs one. Problems are reported as ``ValueError("FILE: where: what")``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import msgspec

from events import MeetingScheduled, RegisterTotals
from events.schema import HolderKind, PositiveShares
from services.registers.build import CHUNK_SIZE
from services.registers.meeting_file import NAMESPACE, fail, load_meeting_file, with_totals

# The demo's deterministic event ids share the meeting tools' namespace (same URL as always).
DEMO_NAMESPACE = NAMESPACE

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


class _SimulationFile(msgspec.Struct, forbid_unknown_fields=True):
    register: RegisterSpec = RegisterSpec()
    simulation: SimulationSpec = SimulationSpec()


def simulation_file(meeting_file: str | Path, meeting_id: str) -> Path:
    """A meeting file's simulation: ../simulations/<its name> beside its folder, else the bundled one of its id."""
    meeting_file = Path(meeting_file)
    sibling = meeting_file.parent.parent / "simulations" / meeting_file.name
    if sibling.is_file():
        return sibling
    from deploy import simulation_file as bundled_simulation

    bundled = bundled_simulation(meeting_id)
    if bundled.is_file():
        return bundled
    raise ValueError(
        f"{meeting_file}: no simulation file ({sibling}, nor a bundled one for {meeting_id}): a synthetic register "
        "needs one; a real meeting loads its register with --register DIR"
    )


def load_spec(path: str | Path) -> tuple[MeetingScheduled, RegisterSpec, SimulationSpec]:
    """A meeting file and its simulation file, checked; the meeting declares the synthetic register's totals."""
    meeting = load_meeting_file(path)
    sim_path = simulation_file(path, meeting.meeting_id)
    try:
        raw = msgspec.toml.decode(sim_path.read_bytes(), type=_SimulationFile)
    except OSError as exc:
        raise ValueError(f"{sim_path}: cannot read the simulation file: {exc.strerror or exc}") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{sim_path}: {exc}") from None
    _check(sim_path, meeting, raw.register, raw.simulation)
    return with_totals(meeting, synthetic_totals(meeting, raw.register)), raw.register, raw.simulation


def synthetic_totals(meeting: MeetingScheduled, register: RegisterSpec) -> RegisterTotals:
    """What the synthetic register holds (register.build_register): its positions, the outstanding shares."""
    return RegisterTotals(
        chunks=max(1, -(-register.positions // CHUNK_SIZE)), positions=register.positions, shares=meeting.outstanding
    )


def _check(path: Path, meeting: MeetingScheduled, register: RegisterSpec, sim: SimulationSpec) -> None:
    """Cross-field checks of the simulation against its meeting that msgspec cannot express."""
    nominees = {n.name for n in register.nominees}
    if len(nominees) != len(register.nominees):
        fail(path, "register.nominees", "duplicate nominee name")
    known = sum(h.shares for h in register.known_holders)
    if known >= meeting.outstanding:
        fail(path, "register.known_holders", f"{known} shares, not below outstanding {meeting.outstanding}")
    if len(register.known_holders) >= register.positions:
        fail(path, "register.positions", "must exceed the number of known holders")
    for i, holder in enumerate(register.known_holders):
        if (holder.kind == "beneficial") != (holder.nominee is not None) or (
            holder.nominee is not None and holder.nominee not in nominees
        ):
            fail(
                path,
                f"register.known_holders[{i}]",
                "a beneficial holder names a listed nominee; a registered one names none",
            )
    if register.beneficial_positions > 0 and not nominees:
        fail(path, "register.nominees", "beneficial positions need at least one nominee")
    if (
        not sim.channels
        or set(sim.channels) - {"internet", "phone", "mail"}
        or min(sim.channels.values()) < 0
        or sum(sim.channels.values()) <= 0
    ):
        fail(path, "simulation.channels", "weights of internet, phone and/or mail, summing above 0")
    low, high = sim.mail_delay_days
    if low < 1 or high < low:
        fail(path, "simulation.mail_delay_days", "[min, max] days with 1 <= min <= max")
    if (meeting.meeting_at - timedelta(days=sim.opens_days_before)).date() <= meeting.record_date:
        fail(path, "simulation.opens_days_before", "proxy materials would go out by the record date")
    if sim.discretionary_days_before >= sim.opens_days_before:
        fail(path, "simulation.discretionary_days_before", "must be below opens_days_before")
    if sim.substitution is not None and sim.substitution.proxy_holder not in meeting.named_proxies:
        fail(path, "simulation.substitution.proxy_holder", "must be one of meeting.named_proxies")

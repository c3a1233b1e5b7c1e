"""The three files of a register directory, read and checked field by field (docs/register.md). No publishing."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from events.schema import MAX_SHARES
from projections.printable import UNPRINTABLE
from services.registers.csv_table import Problem, Row, read_table

REGISTERED = "registered.csv"  # the transfer agent's list of registered holders, Cede & Co. among them
DTC = "dtc_positions.csv"  # DTC's security position listing: each participant's position
BENEFICIAL = "beneficial.csv"  # the participants' beneficial owners (the nominees' lists)
FILES = (REGISTERED, DTC, BENEFICIAL)
CEDE = "Cede & Co."
_CEDE_SPELLINGS = {"cede&co", "cedeandco"}  # casefolded, spaces and dots dropped
_DIGITS = re.compile(r"[0-9]+")
_PARTICIPANT = re.compile(r"[0-9]{1,5}")
# A line break or other control character in a name or control number (a quoted field may hold one)
# would break every report that prints it on one line; a format character (a zero-width space, a
# right-to-left override) makes one text look like another. Unicode categories Cc (U+0085 NEL among
# them), Cf, Zl (U+2028) and Zp (U+2029) are refused: the categories the reports escape.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INVISIBLE = frozenset(UNPRINTABLE)
# A control number is ASCII letters, digits, '-', '.', '_' and '/' (docs/register.md): look-alikes
# (fullwidth digits, U+2011 NON-BREAKING HYPHEN) would make two holdings of one printed number.
_CONTROL_NUMBER = re.compile(r"[A-Za-z0-9._/-]+")
_CONTROL_NUMBER_CHARACTERS = "ASCII letters, digits, '-', '.', '_' and '/'"
MAX_TEXT = 200  # the wire's bound on a control number (events.schema.NonEmpty), applied to names too
# A participant's nominee, "NAME (DTC NNNN)", is an Entitlement.nominee (NonEmpty, at most MAX_TEXT): its
# name may be 11 characters shorter. A longer one made a chunk the ledger cannot decode (parked), after
# meeting.scheduled was published: a register that could never complete.
MAX_PARTICIPANT_NAME = MAX_TEXT - len(" (DTC 0000)")
# Shares are at most MAX_SHARES, 16 digits: a longer number is refused before int(), which raises
# (Python's 4,300-digit conversion limit) instead of reporting the cell.
_MAX_SHARES_DIGITS = len(str(MAX_SHARES))


@dataclass(frozen=True)
class Holding:
    """A registered holding: control number, its holder(s), shares."""

    control_number: str
    holders: list[str]
    shares: int
    row: Row


@dataclass(frozen=True)
class Participant:
    """A DTC participant's position on the record date: its number (4 digits), name, shares."""

    number: str
    name: str
    shares: int
    row: Row

    @property
    def nominee(self) -> str:
        """The name its entitlement and its positions carry, e.g. "Harbor Securities LLC (DTC 0015)"."""
        return f"{self.name} (DTC {self.number})"


@dataclass(frozen=True)
class BeneficialPosition:
    """A beneficial owner's position with a participant (holders empty: an objecting owner, not named)."""

    control_number: str
    participant: str
    holders: list[str]
    shares: int
    row: Row


@dataclass
class RegisterFiles:
    """What a register directory holds, and every problem found in it."""

    directory: Path
    registered: list[Holding] = field(default_factory=list)
    cede: Holding | None = None
    cede_named: bool = False  # some row names Cede & Co., valid or not: then no "no Cede & Co. row" as well
    listed: set[str] = field(default_factory=set)  # participant numbers of dtc_positions.csv, valid rows or not
    participants: dict[str, Participant] = field(default_factory=dict)
    beneficial: list[BeneficialPosition] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_register(directory: str | Path) -> RegisterFiles:
    """Read and check the register files of ``directory``; every problem is kept, nothing is raised."""
    directory = Path(directory)
    out = RegisterFiles(directory)
    if not directory.is_dir():
        out.problems.append(Problem(str(directory), 1, 1, "not a directory: a register is a directory of CSV files"))
        return out
    seen: dict[str, str] = {}  # control number -> where it first appears (unique across the files, R1)
    registered = read_table(directory / REGISTERED, ("control_number", "holders", "shares"))
    out.problems += registered.problems
    for row in registered.rows:
        _registered_row(out, row, seen)
    if not registered.problems and not out.cede_named:
        column = registered.columns["holders"]
        out.problems.append(
            Problem(
                registered.file, 1, column, f"holders: no {CEDE} row: the depository's registered position is needed"
            )
        )
    dtc = read_table(directory / DTC, ("participant", "name", "shares"))
    out.problems += dtc.problems
    for row in dtc.rows:
        _participant_row(out, row)
    beneficial = read_table(directory / BENEFICIAL, ("control_number", "participant", "shares"), ("holders",))
    out.problems += beneficial.problems
    for row in beneficial.rows:
        _beneficial_row(out, row, seen, dtc_readable=not dtc.problems)
    return out


def is_cede(names: list[str]) -> bool:
    """Whether a holder name is the depository's nominee, Cede & Co. (however spaced or dotted)."""
    return any(re.sub(r"[\s.,]", "", n.casefold()) in _CEDE_SPELLINGS for n in names)


def _registered_row(out: RegisterFiles, row: Row, seen: dict[str, str]) -> None:
    problems = out.problems
    before = len(problems)
    holders = _holders(row, problems, required=True)
    shares = _shares(row, problems)
    if holders and is_cede(holders):
        out.cede_named = True
        if len(holders) > 1:
            problems.append(row.at("holders", f"{CEDE} holds alone, never jointly"))
        elif out.cede is not None:
            problems.append(row.at("holders", f"a second {CEDE} row (the first at line {out.cede.row.line})"))
    number = _control_number(row, problems, seen)
    if len(problems) > before or holders is None or shares is None or number is None:
        return
    holding = Holding(number, holders, shares, row)
    if is_cede(holders):
        out.cede = holding
    else:
        out.registered.append(holding)


def _participant_row(out: RegisterFiles, row: Row) -> None:
    problems = out.problems
    before = len(problems)
    number = _participant(row, problems)
    if number is not None:
        out.listed.add(number)
    name = row.fields["name"]
    if not name:
        problems.append(row.at("name", "empty: the participant's name"))
    elif len(name) > MAX_PARTICIPANT_NAME:
        problems.append(
            row.at(
                "name",
                f"longer than {MAX_PARTICIPANT_NAME} characters: its nominee, NAME (DTC NNNN), may have {MAX_TEXT}",
            )
        )
    elif (invisible := _invisible(name)) is not None:
        problems.append(row.at("name", f"a line break, control or format character ({invisible})"))
    shares = _shares(row, problems)
    if number is not None and number in out.participants:
        problems.append(
            row.at(
                "participant", f"participant {number} listed twice (first at line {out.participants[number].row.line})"
            )
        )
    if len(problems) > before or number is None or shares is None:
        return
    out.participants[number] = Participant(number, name, shares, row)


def _beneficial_row(out: RegisterFiles, row: Row, seen: dict[str, str], *, dtc_readable: bool) -> None:
    problems = out.problems
    before = len(problems)
    number = _control_number(row, problems, seen)
    participant = _participant(row, problems)
    if participant is not None and dtc_readable and participant not in out.listed:
        problems.append(row.at("participant", f"participant {participant} is not in {DTC}"))
    holders = _holders(row, problems, required=False) if "holders" in row.fields else []
    shares = _shares(row, problems)
    if len(problems) > before or number is None or participant is None or holders is None or shares is None:
        return
    out.beneficial.append(BeneficialPosition(number, participant, holders, shares, row))


def _control_number(row: Row, problems: list[Problem], seen: dict[str, str]) -> str | None:
    value = row.fields["control_number"]
    if not value:
        problems.append(row.at("control_number", "empty"))
        return None
    if len(value) > MAX_TEXT:
        problems.append(row.at("control_number", f"longer than {MAX_TEXT} characters"))
        return None
    invisible = _invisible(value)
    if invisible is not None:
        problems.append(row.at("control_number", f"a line break, control or format character ({invisible})"))
        return None
    if not _CONTROL_NUMBER.fullmatch(value):
        other = next(c for c in value if not _CONTROL_NUMBER.fullmatch(c))
        problems.append(
            row.at(
                "control_number", f"{_shown(value)}: {_named(other)} (a control number is {_CONTROL_NUMBER_CHARACTERS})"
            )
        )
        return None
    where = f"{Path(row.file).name}:{row.line}"
    if value in seen:
        problems.append(row.at("control_number", f"{value} appears twice (first at {seen[value]})"))
        return None
    seen[value] = where
    return value


def _shares(row: Row, problems: list[Problem]) -> int | None:
    value = row.fields["shares"]
    if not value:
        problems.append(row.at("shares", "empty"))
        return None
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        problems.append(row.at("shares", f"{_shown(value, quoted=False)} is not positive"))
        return None
    if not _DIGITS.fullmatch(value):
        problems.append(
            row.at("shares", f"{_shown(value)} is not a whole number of shares (digits only, no separators)")
        )
        return None
    if len(value.lstrip("0")) > _MAX_SHARES_DIGITS:
        problems.append(row.at("shares", f"a {len(value):,}-digit number, above the ledger's bound of {MAX_SHARES:,}"))
        return None
    shares = int(value)
    if shares == 0:
        problems.append(row.at("shares", "0 is not positive: leave out a row without shares"))
        return None
    if shares > MAX_SHARES:
        problems.append(row.at("shares", f"{shares} is above the ledger's bound of {MAX_SHARES:,}"))
        return None
    return shares


def _participant(row: Row, problems: list[Problem]) -> str | None:
    value = row.fields["participant"]
    if not _PARTICIPANT.fullmatch(value):
        problems.append(row.at("participant", f"{_shown(value)} is not a DTC participant number (up to 5 digits)"))
        return None
    if not int(value):
        problems.append(row.at("participant", f"{value} is not a DTC participant number (they start at 1)"))
        return None
    return f"{int(value):04d}"  # 15 and 0015 are the same participant, written with four digits


def _holders(row: Row, problems: list[Problem], *, required: bool) -> list[str] | None:
    value = row.fields["holders"]
    if not value:
        if required:
            problems.append(row.at("holders", "empty: at least one holder's name"))
            return None
        return []
    names = [name.strip() for name in value.split(";")]
    if any(not name for name in names):
        problems.append(row.at("holders", "an empty name: joint holders' names are separated by ';'"))
        return None
    if any(len(name) > MAX_TEXT for name in names):
        problems.append(row.at("holders", f"a name longer than {MAX_TEXT} characters"))
        return None
    invisible = _invisible(value)
    if invisible is not None:
        problems.append(row.at("holders", f"a line break, control or format character in a name ({invisible})"))
        return None
    if len({n.casefold() for n in names}) != len(names):
        problems.append(row.at("holders", "a joint holder named twice"))
        return None
    return names


def _invisible(value: str) -> str | None:
    """The first line break, control or format character of a text, named; None if it has none."""
    if value.isascii():  # most rows: one regular expression instead of a look-up per character
        found = _CONTROL.search(value)
        return None if found is None else _named(found.group())
    return next((_named(c) for c in value if unicodedata.category(c) in _INVISIBLE), None)


def _named(character: str) -> str:
    """A character as a problem names it: U+2011 NON-BREAKING HYPHEN."""
    return f"U+{ord(character):04X} {unicodedata.name(character, 'a control character')}"  # controls have no name


def _shown(value: str, *, quoted: bool = True) -> str:
    """A field as a problem quotes it: a long one cut (a 5,000-character cell would fill the terminal)."""
    if len(value) <= 40:
        return repr(value) if quoted else value
    return f"{value[:37]!r}... ({len(value):,} characters)"

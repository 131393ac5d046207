"""People, their statuses and their visits, as the engine sees them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from doudi.core.codes import (
    CERTIFICATE_KINDS,
    EMPLOYMENTS,
    HOSPITAL_LEVELS,
    INPATIENT,
    ITEM_CLASSES,
    PHARMACY,
    REGISTRATION_KINDS,
    SCHEMES,
    STATUSES,
    TIERS,
    VISIT_TYPES,
)
from doudi.core.dates import add_years
from doudi.core.errors import InvalidInput
from doudi.core.identity import ResidentId
from doudi.core.money import MAX_BILL_FEN, MAX_ITEM_FEN, Fen

# An ICD-10 code as hospitals write it, upper-cased: C34, C34.1, C341, E11.900.
ICD10_CODE = re.compile(r"[A-Z]\d{2}(\.?[0-9A-Z]{1,8})?")
# A pooling region: a 6-digit administrative division code.
REGION_CODE = re.compile(r"\d{6}")


@dataclass(frozen=True, slots=True)
class StatusPeriod:
    """A status held from ``start`` to ``end`` (both inclusive; ``end`` None = open)."""

    code: str
    start: date
    end: date | None = None

    def holds_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def holds_within_years(self, day: date, years: int) -> bool:
        """Held on ``day`` and ``day`` falls before the ``years``-th anniversary of ``start``.

        脱贫 with ``start`` = exit date keeps poverty-only layers for a year:
        from the exit date up to the day before its first anniversary.
        """
        return self.holds_on(day) and day < add_years(self.start, years)


@dataclass(frozen=True, slots=True)
class Certificate:
    """An outpatient certificate (门诊慢特病): one disease of the pack's list, of one kind
    (``chronic`` or ``special``), valid from ``start`` to ``end`` (both inclusive)."""

    disease: str
    kind: str
    start: date
    end: date

    def valid_on(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration for care outside the home region (异地安置 ``relocated`` or 转诊备案
    ``referred``): treated in ``region`` from ``start`` to ``end`` (inclusive; None = open)."""

    kind: str
    region: str
    start: date
    end: date | None = None

    def valid_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Person:
    """An insured person as a calculation needs them (参保人)."""

    resident_id: ResidentId
    scheme: str
    employment: str | None = None
    tier: str | None = None
    statuses: tuple[StatusPeriod, ...] = ()
    certificates: tuple[Certificate, ...] | None = None
    """None: not known (a case that lists none), and a chronic or major-disease outpatient
    visit is paid as its type says; a tuple (the platform's, or a case's list): checked."""
    registrations: tuple[Registration, ...] | None = None
    """None: not known, and an out-of-area visit is referred when the hospital says so; a
    tuple: referred only with a registration for the visit's region valid on its date."""

    def check(self) -> None:
        if self.scheme not in SCHEMES:
            raise InvalidInput(
                "scheme", f"unknown scheme {self.scheme!r} (one of {_list(SCHEMES)})"
            )
        if self.employment is not None and self.employment not in EMPLOYMENTS:
            raise InvalidInput(
                "employment",
                f"unknown employment {self.employment!r} (one of {_list(EMPLOYMENTS)})",
            )
        if self.scheme == "employee" and self.employment is None:
            raise InvalidInput("employment", "required for employees (in_service or retired)")
        if self.tier is not None and self.tier not in TIERS:
            raise InvalidInput("tier", f"unknown tier {self.tier!r} (one of {_list(TIERS)})")
        for index, status in enumerate(self.statuses):
            where = f"statuses[{index}]"
            if status.code not in STATUSES:
                raise InvalidInput(f"{where}.code", f"unknown status {status.code!r}")
            if status.end is not None and status.end < status.start:
                raise InvalidInput(f"{where}.to", "ends before it starts")
        periods: list[tuple[str, str, str, Mapping[str, str], date, date | None]] = [
            (f"certificates[{i}]", "certificate", c.kind, CERTIFICATE_KINDS, c.start, c.end)
            for i, c in enumerate(self.certificates or ())
        ]
        periods += [
            (f"registrations[{i}]", "registration", r.kind, REGISTRATION_KINDS, r.start, r.end)
            for i, r in enumerate(self.registrations or ())
        ]
        for where, what, kind, kinds, start, end in periods:
            if kind not in kinds:
                raise InvalidInput(
                    f"{where}.kind", f"unknown {what} kind {kind!r} (one of {_list(kinds)})"
                )
            if end is not None and end < start:
                raise InvalidInput(f"{where}.to", "ends before it starts")
        for index, registration in enumerate(self.registrations or ()):
            if not REGION_CODE.fullmatch(registration.region):
                raise InvalidInput(
                    f"registrations[{index}].region",
                    f"a 6-digit administrative division code, got {registration.region!r}",
                )


class Item(NamedTuple):
    """A line item of a bill (费用明细), classed by the catalogue (a tuple: a long history
    has tens of thousands, made from a tuple by the case reader)."""

    code: str
    item_class: str
    amount_fen: Fen
    over_limit_fen: Fen = 0

    def check(self) -> None:
        if self.item_class not in ITEM_CLASSES:
            raise InvalidInput("class", f"unknown item class {self.item_class!r} (A, B or C)")
        for name, amount in (
            ("amount_fen", self.amount_fen),
            ("over_limit_fen", self.over_limit_fen),
        ):
            if amount < 0:
                raise InvalidInput(name, f"must not be negative, got {amount}")
            if amount > MAX_ITEM_FEN:
                raise InvalidInput(
                    name, f"at most {MAX_ITEM_FEN} fen (100 million yuan) an item, got {amount}"
                )
        if self.over_limit_fen > self.amount_fen:
            raise InvalidInput(
                "over_limit_fen",
                f"{self.over_limit_fen} is above the item's amount {self.amount_fen}",
            )


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit to settle (就诊): a stay, an outpatient visit or a pharmacy purchase.

    ``settles_on`` is the discharge date (outpatient and pharmacy: the visit
    date); statuses, pack and year are all taken on that day.
    """

    id: str
    visit_type: str
    settles_on: date
    items: tuple[Item, ...]
    hospital_level: int | None = None
    admitted: date | None = None
    out_of_area: bool = False
    referred: bool = False
    diagnoses: tuple[str, ...] = field(default=())
    region: str | None = None
    """The pooling region of the hospital (None: not said); a registration must name it."""
    reformed_hospital: bool = False
    """A level-2 hospital taking part in the public-hospital reform (Tianjin's resident
    general outpatient cover)."""

    @property
    def year(self) -> int:
        return self.settles_on.year

    def check(self) -> None:
        if self.visit_type not in VISIT_TYPES:
            raise InvalidInput("type", f"unknown visit type {self.visit_type!r}")
        if self.hospital_level is None:
            if self.visit_type != PHARMACY:
                raise InvalidInput("hospital_level", f"required for {self.visit_type} visits")
        elif self.hospital_level not in HOSPITAL_LEVELS:
            raise InvalidInput("hospital_level", f"must be 1, 2 or 3, got {self.hospital_level!r}")
        if self.visit_type == INPATIENT:
            if self.admitted is None:
                raise InvalidInput("admitted", "required for inpatient visits")
            if self.settles_on < self.admitted:
                raise InvalidInput(
                    "discharged",
                    f"discharge {self.settles_on.isoformat()} is before admission "
                    f"{self.admitted.isoformat()}",
                )
        for index, item in enumerate(self.items):
            try:
                item.check()
            except InvalidInput as error:
                raise error.under(f"items[{index}]") from None
        total = sum(item.amount_fen for item in self.items)
        if total > MAX_BILL_FEN:
            raise InvalidInput(
                "items", f"at most {MAX_BILL_FEN} fen (1 billion yuan) a bill, got {total}"
            )
        for index, code in enumerate(self.diagnoses):
            if not ICD10_CODE.fullmatch(code):
                raise InvalidInput(f"diagnoses[{index}]", f"not an ICD-10 code: {code!r}")
        if self.reformed_hospital and self.hospital_level != 2:
            raise InvalidInput(
                "reformed_hospital",
                "only a level-2 hospital takes part in the public-hospital reform "
                f"(this visit's level: {self.hospital_level})",
            )
        if self.region is not None and not REGION_CODE.fullmatch(self.region):
            raise InvalidInput(
                "region", f"a 6-digit administrative division code, got {self.region!r}"
            )


def _setters(cls: type, names: str) -> tuple[Callable[[object, Any], None], ...]:
    """The slots' own setters, which a frozen class's ``__setattr__`` does not guard."""
    return tuple(getattr(cls, name).__set__ for name in names.split())


_new = object.__new__
(
    _set_id,
    _set_type,
    _set_settles_on,
    _set_items,
    _set_level,
    _set_admitted,
    _set_out_of_area,
    _set_referred,
    _set_diagnoses,
    _set_region,
    _set_reformed,
) = _setters(
    Visit,
    "id visit_type settles_on items hospital_level admitted out_of_area referred diagnoses "
    "region reformed_hospital",
)


def new_visit(
    id: str,
    visit_type: str,
    settles_on: date,
    items: tuple[Item, ...],
    hospital_level: int | None,
    admitted: date | None,
    out_of_area: bool,
    referred: bool,
    diagnoses: tuple[str, ...],
    region: str | None = None,
    reformed_hospital: bool = False,
) -> Visit:
    """``Visit(...)`` of every field, made in a third of the time: a frozen class's
    ``__init__`` sets each field through ``object.__setattr__``, this through the slots' own
    setters."""
    visit = _new(Visit)
    _set_id(visit, id)
    _set_type(visit, visit_type)
    _set_settles_on(visit, settles_on)
    _set_items(visit, items)
    _set_level(visit, hospital_level)
    _set_admitted(visit, admitted)
    _set_out_of_area(visit, out_of_area)
    _set_referred(visit, referred)
    _set_diagnoses(visit, diagnoses)
    _set_region(visit, region)
    _set_reformed(visit, reformed_hospital)
    return visit


def _list(names: Iterable[object]) -> str:
    return ", ".join(str(name) for name in names)

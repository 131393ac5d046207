"""Subsidised enrolment (资助参保): the gap a roster comparison found, enrolled with the
premium the assistance fund pays for them.

The datashare hub compares the agencies' rosters with the register and lists
who is not insured (``services.datashare.comparison``); the server reads that
list a page at a time and :func:`enrol_page` enrols each page in one
transaction: the persons the register does not know are registered with the
roster's name and household, and each is enrolled in the resident scheme for
the year with the tier, premium and subsidy of the region's policy pack
(:func:`doudi.core.subsidy.subsidised_premium`). Inserts skip what exists, so
a second run, or two at once, enrol nobody twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from doudi.common import outbox
from doudi.core.identity import parse_resident_id
from doudi.core.packs import subsidy_categories
from doudi.core.policy import Pack
from doudi.core.subsidy import SubsidisedPremium, subsidised_premium
from services.enrollment.service import queue_for_subscribers
from services.enrollment.tables import enrolments, persons

ASSISTANCE_FUND = "assistance_fund"
PERSON = "person"


@dataclass(frozen=True, slots=True)
class GapPerson:
    """A person the comparison found not insured, as the roster has them."""

    person_id: str
    name: str
    household_id: str
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Total:
    category: str
    category_name: str
    person_count: int
    premium_fen: int
    assistance_fund_fen: int
    person_fen: int


@dataclass
class Outcome:
    """What a run did; ``totals`` by category, of the persons it enrolled."""

    enrolled: int = 0
    registered: int = 0
    already_enrolled: int = 0
    not_subsidised: int = 0
    enrolled_persons: list[str] = field(default_factory=list)
    totals: dict[str, list[int]] = field(default_factory=dict)  # category -> [n, premium, fund]

    def total_rows(self, pack: Pack) -> list[Total]:
        names = {category.id: category.name for category in subsidy_categories(pack)}
        return [
            Total(category, names[category], n, premium, fund, premium - fund)
            for category in names
            if category in self.totals
            for n, premium, fund in [self.totals[category]]
        ]


class Chooser:
    """The pack's subsidised premium for a set of statuses, each set worked out once."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self._chosen: dict[frozenset[str], SubsidisedPremium | None] = {}

    def __call__(self, statuses: Sequence[str]) -> SubsidisedPremium | None:
        key = frozenset(statuses)
        if key not in self._chosen:
            self._chosen[key] = subsidised_premium(self.pack, key)
        return self._chosen[key]


def enrol_page(
    *,
    connection: sqlalchemy.Connection,
    gap: Sequence[GapPerson],
    region: str,
    year: int,
    choose: Chooser,
    outcome: Outcome,
) -> None:
    """Enrol one page of the gap for ``year`` (the caller's write transaction)."""
    numbers = [parse_resident_id(person.person_id).number for person in gap]
    enrolled = set(
        connection.execute(
            select(enrolments.c.person_id).where(
                enrolments.c.person_id.in_(numbers), enrolments.c.year == year
            )
        ).scalars()
    )
    known = set(
        connection.execute(
            select(persons.c.person_id).where(persons.c.person_id.in_(numbers))
        ).scalars()
    )
    new_persons: list[dict[str, Any]] = []
    new_enrolments: list[dict[str, Any]] = []
    for number, person in zip(numbers, gap, strict=True):
        if number in enrolled:
            outcome.already_enrolled += 1
            continue
        chosen = choose(person.statuses)
        if chosen is None:
            outcome.not_subsidised += 1
            continue
        if number not in known:
            resident = parse_resident_id(number)
            new_persons.append(
                {
                    "person_id": number,
                    "name": person.name,
                    "birth_date": resident.birth_date,
                    "sex": resident.sex,
                    "household_id": person.household_id,
                    "region": region,
                }
            )
        new_enrolments.append(
            {
                "person_id": number,
                "year": year,
                "scheme": "resident",
                "employment": None,
                "tier": chosen.tier,
                "premium_fen": chosen.premium_fen,
                "premium_payer": ASSISTANCE_FUND if chosen.personal_fen == 0 else PERSON,
                "subsidy_fen": chosen.subsidy_fen,
                "subsidy_category": chosen.category,
            }
        )
    if not new_enrolments:
        return
    dialect = outbox.dialect_module(connection)
    registered = _inserted(connection, dialect.insert(persons), persons, new_persons)
    inserted = _inserted(connection, dialect.insert(enrolments), enrolments, new_enrolments)
    # Another run may have enrolled some of them since this one read: only those this
    # one inserted count, and are charged.
    for values in new_enrolments:
        if values["person_id"] not in inserted:
            outcome.already_enrolled += 1
            continue
        outcome.enrolled += 1
        outcome.enrolled_persons.append(values["person_id"])
        total = outcome.totals.setdefault(values["subsidy_category"], [0, 0, 0])
        total[0] += 1
        total[1] += values["premium_fen"]
        total[2] += values["subsidy_fen"]
    outcome.registered += len(registered)
    queue_for_subscribers(connection, sorted(inserted))


def _inserted(
    connection: sqlalchemy.Connection,
    statement: sqlalchemy.Insert,
    table: sqlalchemy.Table,
    rows: list[dict[str, Any]],
) -> set[str]:
    """Insert the rows that are not there yet; answer the persons of those inserted."""
    if not rows:
        return set()
    result = connection.execute(
        statement.on_conflict_do_nothing().returning(table.c.person_id),  # type: ignore[attr-defined]
        rows,
    )
    return set(result.scalars())


def summary(
    *, connection: sqlalchemy.Connection, region: str, year: int, pack: Pack
) -> list[Total]:
    """Subsidised enrolments of ``region`` for ``year`` by category, in the pack's order."""
    rows = {
        category: (int(n), int(premium), int(paid))
        for category, n, premium, paid in connection.execute(
            select(
                enrolments.c.subsidy_category,
                func.count(),
                func.sum(enrolments.c.premium_fen),
                func.sum(enrolments.c.subsidy_fen),
            )
            .select_from(enrolments.join(persons, persons.c.person_id == enrolments.c.person_id))
            .where(
                enrolments.c.year == year,
                persons.c.region == region,
                enrolments.c.subsidy_category.is_not(None),
            )
            .group_by(enrolments.c.subsidy_category)
        )
    }
    return [
        Total(category.id, category.name, n, premium, paid, premium - paid)
        for category in subsidy_categories(pack)
        if category.id in rows
        for n, premium, paid in [rows[category.id]]
    ]

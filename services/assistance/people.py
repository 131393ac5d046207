"""What assistance keeps of persons: the copies enrollment and the datashare hub send.

Enrollment sends each person's name, household and region (``RecordPersons``), the hub
each person's status periods (``RecordPersonStatuses``), through the platform's outbox
(doudi.common.outbox): each copy is stored at the highest version sent, so repeats and
crossed sends change nothing. Warnings add up a household's burden from the first and
choose their kind from the second; secondary assistance and screening read who held a
status on a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy
from sqlalchemy import select

from doudi.common.db import is_one_of
from doudi.common.outbox import store_newer, stored_periods
from doudi.core.statuses import EffectivePeriod
from services.assistance.tables import assistance_persons, assistance_statuses


@dataclass(frozen=True, slots=True)
class InsuredPerson:
    """A person as enrollment registered them."""

    person_id: str
    version: int
    name: str
    household_id: str
    region: str
    years: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HeldStatuses:
    """A person's status periods as the hub sent them."""

    person_id: str
    version: int
    periods: tuple[EffectivePeriod, ...]


def record_persons(
    *, connection: sqlalchemy.Connection, persons: Sequence[InsuredPerson], now: datetime
) -> list[int]:
    """Store each person unless a later version is stored; answers the versions stored."""
    return store_newer(
        connection,
        assistance_persons,
        [
            {
                "person_id": person.person_id,
                "version": person.version,
                "name": person.name,
                "household_id": person.household_id,
                "region": person.region,
                "years": sorted(set(person.years)),
                "updated_at": now,
            }
            for person in persons
        ],
    )


def record_statuses(
    *, connection: sqlalchemy.Connection, persons: Sequence[HeldStatuses], now: datetime
) -> list[int]:
    """Store each person's status periods unless a later version is stored; answers the
    versions stored."""
    return store_newer(
        connection,
        assistance_statuses,
        [
            {
                "person_id": person.person_id,
                "version": person.version,
                "periods": stored_periods(person.periods),
                "updated_at": now,
            }
            for person in persons
        ],
    )


def persons(
    connection: sqlalchemy.Connection, person_ids: Iterable[str]
) -> dict[str, InsuredPerson]:
    """The persons on record among ``person_ids``, by identity number."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    rows = connection.execute(
        select(assistance_persons).where(assistance_persons.c.person_id.in_(wanted))
    )
    return {row.person_id: _person(row) for row in rows}


def households_of(
    connection: sqlalchemy.Connection, person_ids: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """The household and region of each person on record among ``person_ids`` (the two
    columns alone: the intake asks it of every person a batch touches)."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    table = assistance_persons
    rows = connection.execute(
        select(table.c.person_id, table.c.household_id, table.c.region).where(
            is_one_of(connection, table.c.person_id, wanted)
        )
    )
    return {person: (household, region) for person, household, region in rows}


def household_members(
    connection: sqlalchemy.Connection, household_ids: Iterable[str]
) -> dict[str, list[InsuredPerson]]:
    """Each household's members on record, in identity-number order."""
    wanted = set(household_ids)
    members: dict[str, list[InsuredPerson]] = {household: [] for household in wanted}
    if not wanted:
        return members
    rows = connection.execute(
        select(assistance_persons)
        .where(is_one_of(connection, assistance_persons.c.household_id, wanted))
        .order_by(assistance_persons.c.person_id)
    )
    for row in rows:
        members[row.household_id].append(_person(row))
    return members


def status_periods(
    connection: sqlalchemy.Connection, person_ids: Iterable[str]
) -> dict[str, tuple[EffectivePeriod, ...]]:
    """Each person's status periods as the hub last sent them (none: not in the map); a
    region's persons are asked for :data:`CHUNK` at a time (SQLite takes at most 32,766
    bound values a statement; PostgreSQL gets each chunk as one array)."""
    wanted = sorted(set(person_ids))
    found: dict[str, tuple[EffectivePeriod, ...]] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = connection.execute(
            select(assistance_statuses.c.person_id, assistance_statuses.c.periods).where(
                is_one_of(
                    connection, assistance_statuses.c.person_id, wanted[start : start + CHUNK]
                )
            )
        )
        found.update((row.person_id, _periods(row.periods)) for row in rows)
    return found


CHUNK = 10_000
"""The most identity numbers one statement of :func:`status_periods` binds."""


def statuses_on(periods: Iterable[EffectivePeriod], day: date) -> frozenset[str]:
    """The statuses held on ``day``."""
    return frozenset(period.status for period in periods if period.holds_on(day))


def periods_in_year(periods: Iterable[EffectivePeriod], year: int) -> tuple[EffectivePeriod, ...]:
    """The periods that hold on some day of ``year``."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    return tuple(
        period
        for period in periods
        if period.valid_from <= last and (period.valid_to is None or period.valid_to >= first)
    )


def statuses_in_year(periods: Iterable[EffectivePeriod], year: int) -> frozenset[str]:
    """The statuses held on any day of ``year``."""
    return frozenset(period.status for period in periods_in_year(periods, year))


def _person(row: sqlalchemy.Row[tuple[object, ...]]) -> InsuredPerson:
    return InsuredPerson(
        person_id=row.person_id,
        version=row.version,
        name=row.name,
        household_id=row.household_id,
        region=row.region,
        years=tuple(int(year) for year in row.years),
    )


def _periods(stored: list[list[str | None]]) -> tuple[EffectivePeriod, ...]:
    return tuple(
        EffectivePeriod(
            status=str(status),
            valid_from=date.fromisoformat(str(valid_from)),
            valid_to=None if valid_to is None else date.fromisoformat(valid_to),
            agency=str(agency),
        )
        for status, valid_from, valid_to, agency in stored
    )

"""Everyone poor is insured: the agencies' rosters compared with the enrolment register.

The hub keeps a copy of the register (``register_persons`` and
``register_enrolments``), sent by the enrollment service as it changes
(:func:`record_register`; see :mod:`doudi.common.outbox`). :func:`compare`
takes every agency's current roster of a region, keeps the rows whose period
touches the year, and classes each certified person once:

* ``not_insured`` (the gap): not enrolled for the year, with why: not
  registered at all, or registered but not enrolled;
* ``insured_elsewhere``: enrolled for the year, registered in another region;
* ``name_differs``: enrolled here, but a roster's name differs from the
  registered one even after :func:`doudi.core.names.same_name` normalises
  both (full-width forms, spaces, middle dots, traditional characters): for a
  clerk to review;
* ``insured``: enrolled here under the roster's name.

A person on several agencies' rosters is one entry, marked ``duplicate``.
One SQL statement classes everyone; only the persons whose names differ byte
for byte are then read back and compared in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import (
    String,
    and_,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from doudi.common import outbox, paging
from doudi.common.db import analyze
from doudi.common.errors import NotFound
from doudi.core.dates import check_year
from doudi.core.names import same_name
from doudi.core.statuses import certifier, owned_statuses, owns
from services.datashare import service
from services.datashare.rosters import CURRENT, check_region
from services.datashare.tables import (
    NOTABLE,
    comparison_entries,
    comparison_submissions,
    comparisons,
    register_enrolments,
    register_persons,
    roster_rows,
    roster_submissions,
)

INSURED = "insured"
NOT_INSURED = "not_insured"
INSURED_ELSEWHERE = "insured_elsewhere"
NAME_DIFFERS = "name_differs"
CLASSES = (INSURED, NOT_INSURED, INSURED_ELSEWHERE, NAME_DIFFERS)
NOT_REGISTERED = "not_registered"
NOT_ENROLLED = "not_enrolled"
_NAME_CHECK = "name_check"  # stored for a moment: names differ byte for byte

_COMMA = literal(",", String)


@dataclass(frozen=True, slots=True)
class RegisteredPerson:
    """A person of the enrolment register as the enrollment service sent them."""

    person_id: str
    version: int
    name: str
    region: str
    years: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    comparison_id: int
    region: str
    year: int
    compared_at: datetime
    submission_ids: tuple[int, ...]
    person_count: int
    insured_count: int
    not_insured_count: int
    insured_elsewhere_count: int
    name_differs_count: int
    duplicate_count: int


@dataclass(frozen=True, slots=True)
class Entry:
    person_id: str
    klass: str
    gap_reason: str | None
    agencies: tuple[str, ...]
    statuses: tuple[str, ...]
    roster_name: str
    household_id: str
    registered_name: str | None
    registered_region: str | None
    duplicate: bool


# -- the register's copy ---------------------------------------------------------


def record_register(
    *, connection: sqlalchemy.Connection, persons: list[RegisteredPerson], now: datetime
) -> list[int]:
    """Store each person unless a later version is stored; answer the versions stored."""
    versions = outbox.store_newer(
        connection,
        register_persons,
        [
            {
                "person_id": person.person_id,
                "version": person.version,
                "name": person.name,
                "region": person.region,
                "updated_at": now,
            }
            for person in persons
        ],
    )
    # The years of the persons whose version is now the one sent (stored now, or sent
    # again): replaced by the years sent.
    current = {
        person.person_id: person
        for person, version in zip(persons, versions, strict=True)
        if version == person.version
    }
    if current:
        connection.execute(
            register_enrolments.delete().where(register_enrolments.c.person_id.in_(current))
        )
        years = [
            {"person_id": person_id, "year": year}
            for person_id, person in current.items()
            for year in sorted(set(person.years))
        ]
        if years:
            connection.execute(insert(register_enrolments), years)
    return versions


# -- comparing -------------------------------------------------------------------


def compare(
    *, connection: sqlalchemy.Connection, region: str, year: int, regions: frozenset[str]
) -> Comparison:
    """Class every person on the region's current rosters against the register for
    ``year`` and store the result, in the caller's write transaction."""
    check_region(region, regions, "region")
    check_year(year, "year")
    now = datetime.now(UTC)
    comparison_id = connection.execute(
        insert(comparisons)
        .values(region=region, year=year, compared_at=now)
        .returning(comparisons.c.comparison_id)
    ).scalar_one()
    connection.execute(
        insert(comparison_submissions).from_select(
            ["comparison_id", "submission_id", "agency"],
            select(
                literal(comparison_id),
                roster_submissions.c.submission_id,
                roster_submissions.c.agency,
            ).where(
                roster_submissions.c.region == region,
                roster_submissions.c.state == CURRENT,
            ),
        )
    )
    classing = _classing(connection, comparison_id, region, year)
    person_count = 0
    if classing is not None:
        person_count = connection.execute(
            classing, execution_options={"preserve_rowcount": True}
        ).rowcount
        analyze(connection, comparison_entries)
    _review_names(connection, comparison_id)
    counts = _whole_counts(connection, comparison_id, person_count)
    connection.execute(
        update(comparisons).where(comparisons.c.comparison_id == comparison_id).values(**counts)
    )
    return _comparison(connection, comparison_id, agency=None)


def _classing(
    connection: sqlalchemy.Connection, comparison_id: int, region: str, year: int
) -> sqlalchemy.Insert | None:
    """INSERT ... SELECT of one entry per certified person (names to review marked); None
    when the region has no roster."""
    aggregate = _string_aggregate(connection)
    submission_ids = sorted(
        connection.execute(
            select(comparison_submissions.c.submission_id).where(
                comparison_submissions.c.comparison_id == comparison_id
            )
        ).scalars()
    )
    if not submission_ids:  # no agency has a roster of the region
        return None
    # One group per person, read in the order of the persons; the agencies follow from
    # the statuses (each status has one certifying agency), and a person is on several
    # rosters when the rows come from several submissions.
    row = roster_rows.c
    certified = (
        select(
            row.person_id,
            aggregate(row.status).label("statuses"),
            func.min(row.name).label("first_name"),
            func.max(row.name).label("last_name"),
            func.min(row.household_id).label("household_id"),
            (func.min(row.submission_id) != func.max(row.submission_id)).label("duplicate"),
        )
        .where(
            row.submission_id.in_(submission_ids),
            row.valid_from <= date(year, 12, 31),
            row.valid_to.is_(None) | (row.valid_to >= date(year, 1, 1)),
        )
        .group_by(row.person_id)
        .subquery("certified")
    )
    person = register_persons
    enrolled = register_enrolments
    klass = case(
        (enrolled.c.person_id.is_(None), literal(NOT_INSURED)),
        (person.c.region != region, literal(INSURED_ELSEWHERE)),
        (
            (certified.c.first_name != person.c.name) | (certified.c.last_name != person.c.name),
            literal(_NAME_CHECK),
        ),
        else_=literal(INSURED),
    )
    gap_reason = case(
        (person.c.person_id.is_(None), literal(NOT_REGISTERED)),
        (enrolled.c.person_id.is_(None), literal(NOT_ENROLLED)),
        else_=literal(None),
    )
    rows = select(
        literal(comparison_id),
        certified.c.person_id,
        klass,
        gap_reason,
        _COMMA + certified.c.statuses + _COMMA,
        certified.c.first_name,
        certified.c.household_id,
        person.c.name,
        person.c.region,
        certified.c.duplicate,
    ).select_from(
        certified.outerjoin(person, person.c.person_id == certified.c.person_id).outerjoin(
            enrolled,
            and_(enrolled.c.person_id == certified.c.person_id, enrolled.c.year == year),
        )
    )
    return insert(comparison_entries).from_select(
        [
            "comparison_id",
            "person_id",
            "class",
            "gap_reason",
            "statuses",
            "roster_name",
            "household_id",
            "registered_name",
            "registered_region",
            "duplicate",
        ],
        rows,
    )


def _string_aggregate(connection: sqlalchemy.Connection) -> Any:
    """The values of a group, comma-separated."""
    if connection.dialect.name == "postgresql":
        return lambda column: func.string_agg(column, literal(","), type_=String)
    return lambda column: func.group_concat(column, literal(","), type_=String)


def _review_names(connection: sqlalchemy.Connection, comparison_id: int) -> None:
    """Class the entries whose roster and registered names differ byte for byte: the same
    name once normalised is insured, another name is for a clerk to review."""
    entries = comparison_entries
    notable = select(entries.c.person_id, entries.c.registered_name).where(
        entries.c.comparison_id == comparison_id, entries.c["class"] == _NAME_CHECK, NOTABLE
    )
    registered: dict[str, str] = dict(connection.execute(notable).tuples().all())
    compared = sorted(
        connection.execute(
            select(comparison_submissions.c.submission_id).where(
                comparison_submissions.c.comparison_id == comparison_id
            )
        ).scalars()
    )
    roster_names: dict[str, list[str]] = {}
    persons = sorted(registered)
    for start in range(0, len(persons), _PERSONS_PER_STATEMENT):
        for person_id, name in connection.execute(
            select(roster_rows.c.person_id, roster_rows.c.name).where(
                roster_rows.c.submission_id.in_(compared),
                roster_rows.c.person_id.in_(persons[start : start + _PERSONS_PER_STATEMENT]),
            )
        ):
            roster_names.setdefault(person_id, []).append(name)
    reviewed: dict[str, list[str]] = {INSURED: [], NAME_DIFFERS: []}
    for person_id, names in roster_names.items():
        same = all(same_name(name, registered[person_id]) for name in names)
        reviewed[INSURED if same else NAME_DIFFERS].append(person_id)
    for klass, classed in reviewed.items():
        for start in range(0, len(classed), _PERSONS_PER_STATEMENT):
            connection.execute(
                update(entries)
                .where(
                    entries.c.comparison_id == comparison_id,
                    entries.c.person_id.in_(classed[start : start + _PERSONS_PER_STATEMENT]),
                )
                .values({"class": klass})
            )


_PERSONS_PER_STATEMENT = 500
"""Persons read or classed by one statement: a statement per person cost PostgreSQL a
second for 9,000 persons."""


def _certified_by(agency: str) -> sqlalchemy.ColumnElement[bool]:
    """The entries with a status ``agency`` certifies: the persons on its roster."""
    return or_(
        false(),
        *(comparison_entries.c.statuses.like(f"%,{status},%") for status in owned_statuses(agency)),
    )


def _whole_counts(
    connection: sqlalchemy.Connection, comparison_id: int, person_count: int
) -> dict[str, int]:
    """How many of the comparison's ``person_count`` persons are in each class, and on
    several rosters, read from its notable entries: the others are insured."""
    entries = comparison_entries
    counts = {f"{klass}_count": 0 for klass in CLASSES}
    duplicates = 0
    for klass, count, duplicate in connection.execute(
        select(entries.c["class"], func.count(), func.sum(case((entries.c.duplicate, 1), else_=0)))
        .where(entries.c.comparison_id == comparison_id, NOTABLE)
        .group_by(entries.c["class"])
    ):
        duplicates += int(duplicate or 0)
        if klass != INSURED:
            counts[f"{klass}_count"] = int(count)
    counts[f"{INSURED}_count"] = person_count - sum(counts.values())
    return {**counts, "person_count": person_count, "duplicate_count": duplicates}


def _agency_counts(
    connection: sqlalchemy.Connection, comparison_id: int, agency: str
) -> dict[str, int]:
    """How many of the agency's persons are in each class (duplicates not told)."""
    entries = comparison_entries
    counts = {f"{klass}_count": 0 for klass in CLASSES}
    for klass, count in connection.execute(
        select(entries.c["class"], func.count())
        .where(entries.c.comparison_id == comparison_id, _certified_by(agency))
        .group_by(entries.c["class"])
    ):
        counts[f"{klass}_count"] = int(count)
    return {**counts, "person_count": sum(counts.values()), "duplicate_count": 0}


# -- reads ------------------------------------------------------------------------


def get(*, connection: sqlalchemy.Connection, comparison_id: int, agency: str | None) -> Comparison:
    """One comparison; for an agency, only of a region it submitted a roster of, with the
    counts of its own persons (the read is audited)."""
    comparison = _comparison(connection, comparison_id, agency=agency)
    service.record_subject_read(connection, agency, "GetComparison", f"comparison {comparison_id}")
    return comparison


def list_comparisons(
    *,
    connection: sqlalchemy.Connection,
    agency: str | None,
    region: str,
    page_size: int,
    page_token: str,
) -> tuple[list[Comparison], str]:
    """Comparisons newest first (an agency: those that compared one of its rosters)."""
    query = select(comparisons.c.comparison_id)
    if region:
        query = query.where(comparisons.c.region == region)
    if agency is not None:
        query = query.where(
            comparisons.c.comparison_id.in_(
                select(comparison_submissions.c.comparison_id).where(
                    comparison_submissions.c.agency == agency
                )
            )
        )
    rows, token = paging.keyset_page(
        connection, query, comparisons.c.comparison_id, page_size, page_token, newest_first=True
    )
    page = [_comparison(connection, row.comparison_id, agency) for row in rows]
    service.record_subject_read(
        connection, agency, "ListComparisons", "comparisons" + (f" of {region}" if region else "")
    )
    return page, token


def list_entries(
    *,
    connection: sqlalchemy.Connection,
    comparison_id: int,
    agency: str | None,
    klass: str | None,
    duplicates_only: bool,
    purpose: str,
    page_size: int,
    page_token: str,
) -> tuple[list[Entry], str]:
    """A page of a comparison's persons in identity-number order; an agency sees only the
    persons on its own roster, with its own statuses, and each person it sees is audited."""
    entries = comparison_entries
    query = select(entries).where(entries.c.comparison_id == comparison_id)
    if klass is not None:
        query = query.where(entries.c["class"] == klass)
    if duplicates_only:
        query = query.where(entries.c.duplicate.is_(True))
    if duplicates_only or (klass is not None and klass != INSURED):
        query = query.where(NOTABLE)  # only those entries: their index
    if agency is not None:
        why = service.checked_purpose(purpose)
        query = query.where(_certified_by(agency))
    _comparison(connection, comparison_id, agency)  # NOT_FOUND when not the agency's
    rows, token = paging.keyset_page(connection, query, entries.c.person_id, page_size, page_token)
    page = [_entry(row, agency) for row in rows]
    if agency is not None and page:
        service.record_reads(
            connection,
            agency=agency,
            method="ListComparisonEntries",
            purpose=why,
            person_ids=[entry.person_id for entry in page],
        )
    return page, token


def _comparison(
    connection: sqlalchemy.Connection, comparison_id: int, agency: str | None
) -> Comparison:
    row = connection.execute(
        select(comparisons).where(comparisons.c.comparison_id == comparison_id)
    ).one_or_none()
    compared = [
        (int(submission), str(agency))
        for submission, agency in connection.execute(
            select(comparison_submissions.c.submission_id, comparison_submissions.c.agency)
            .where(comparison_submissions.c.comparison_id == comparison_id)
            .order_by(comparison_submissions.c.submission_id)
        )
    ]
    if row is None or (agency is not None and agency not in {a for _, a in compared}):
        raise NotFound(f"no comparison {comparison_id}", field="comparison_id")
    values = row._asdict()
    if agency is not None:
        values.update(_agency_counts(connection, comparison_id, agency))
        compared = [(s, a) for s, a in compared if a == agency]
    return Comparison(
        **{
            **values,
            "compared_at": service.utc(row.compared_at),
            "submission_ids": tuple(submission for submission, _ in compared),
        }
    )


def _entry(row: sqlalchemy.Row[Any], agency: str | None) -> Entry:
    statuses = tuple(sorted(s for s in row.statuses.split(",") if s))
    agencies = tuple(sorted({certifier(status) for status in statuses}))
    if agency is not None:
        agencies = (agency,)
        statuses = tuple(status for status in statuses if owns(agency, status))
    return Entry(
        person_id=row.person_id,
        klass=row._mapping["class"],
        gap_reason=row.gap_reason,
        agencies=agencies,
        statuses=statuses,
        roster_name=row.roster_name,
        household_id=row.household_id,
        registered_name=row.registered_name,
        registered_region=row.registered_region,
        duplicate=bool(row.duplicate) and agency is None,
    )

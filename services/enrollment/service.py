"""The enrolment register's rules and storage, one function per RPC (no protobuf, no gRPC).

Each function works on one connection the caller opened: a write transaction
(``doudi.common.db.write_transaction``) for ``create_*``, a plain connection
for reads. Errors name the request field to blame (``person.name``,
``enrolment.year``); identity numbers appear in messages masked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Row, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from doudi.common import outbox
from doudi.common.errors import AlreadyExists, not_enrolled, person_not_found
from doudi.common.paging import decode_token, encode_token, page_size
from doudi.core import model
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.identity import ResidentId, mask, read_resident_id
from doudi.core.money import MAX_ITEM_FEN
from doudi.core.names import check_visible
from services.enrollment.tables import (
    certificates,
    coverage_deliveries,
    enrolments,
    persons,
    registrations,
)

MAX_TEXT = 64
"""The longest name or household id, in characters."""
PREMIUM_PAYERS = frozenset({"person", "assistance_fund", "employer"})


@dataclass(frozen=True, slots=True)
class NewPerson:
    """A person as a caller registers them; the identity number gives birth date and sex."""

    person_id: str
    name: str
    household_id: str
    region: str


@dataclass(frozen=True, slots=True)
class Person:
    """A registered person (参保人)."""

    person_id: str
    name: str
    birth_date: date
    sex: str
    household_id: str
    region: str


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A person's enrolment for one calendar year; codes as in doudi.core.codes."""

    person_id: str
    year: int
    scheme: str
    employment: str | None
    tier: str | None
    premium_fen: int
    premium_payer: str
    subsidy_fen: int = 0
    """The part of the premium the assistance fund paid (set by subsidised enrolment)."""
    subsidy_category: str | None = None
    """The policy pack's subsidy category it was paid under."""


R = TypeVar("R", Person, Enrolment)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a settlement needs: the person and their enrolment for the visit's year."""

    person: Person
    enrolment: Enrolment


@dataclass(frozen=True, slots=True)
class PersonPage:
    persons: tuple[Person, ...]
    next_page_token: str
    """Empty on the last page."""


def create_person(
    *, connection: sqlalchemy.Connection, person: NewPerson, regions: Collection[str]
) -> Person:
    """Register a person, or answer the stored one if it has the same data."""
    wanted = _checked_person(person, regions)
    stored = _store_once(
        connection,
        persons,
        wanted,
        lambda: _read_person(connection, wanted.person_id),
        conflict=f"person {mask(wanted.person_id)} is registered",
        field="person.person_id",
    )
    queue_for_subscribers(connection, [wanted.person_id])
    return stored


def get_person(*, connection: sqlalchemy.Connection, person_id: str) -> Person:
    """The person with this identity number."""
    resident_id = read_resident_id(person_id, "person_id")
    person = _read_person(connection, resident_id.number)
    if person is None:
        raise person_not_found(resident_id.number, "person_id")
    return person


def list_persons(
    *, connection: sqlalchemy.Connection, region: str, size: int, page_token: str
) -> PersonPage:
    """A page of ``size`` persons (0: the default), of ``region`` if given, in identity-number order."""
    limit = page_size(size)
    query = select(*_PERSON_COLUMNS).order_by(persons.c.person_id).limit(limit + 1)
    if region:
        query = query.where(persons.c.region == region)
    position = decode_token(page_token, 1)
    if position is not None:
        (after,) = position
        if not isinstance(after, str):
            raise InvalidInput("page_token", "not a page token this service made")
        query = query.where(persons.c.person_id > after)
    found = tuple(_record(Person, row) for row in connection.execute(query))
    page = found[:limit]
    more = len(found) > limit
    return PersonPage(page, encode_token([page[-1].person_id]) if more else "")


def create_enrolment(*, connection: sqlalchemy.Connection, enrolment: Enrolment) -> Enrolment:
    """Enrol a registered person for a year, or answer the stored enrolment if it is the same."""
    resident_id = _checked_enrolment(enrolment)
    wanted = replace(enrolment, person_id=resident_id.number)
    if _read_person(connection, wanted.person_id) is None:
        raise person_not_found(wanted.person_id, "enrolment.person_id")
    stored = _store_once(
        connection,
        enrolments,
        wanted,
        lambda: _read_enrolment(connection, wanted.person_id, wanted.year),
        conflict=f"person {mask(wanted.person_id)} is enrolled for {wanted.year}",
        field="enrolment.person_id",
    )
    queue_for_subscribers(connection, [wanted.person_id])
    return stored


def person_region(connection: sqlalchemy.Connection, number: str) -> str:
    """The registered person's region; NOT_FOUND (on ``person_id``) otherwise."""
    region = connection.execute(
        select(persons.c.region).where(persons.c.person_id == number)
    ).scalar_one_or_none()
    if region is None:
        raise person_not_found(number, "person_id")
    return str(region)


def get_enrolment(*, connection: sqlalchemy.Connection, person_id: str, year: int) -> Enrolment:
    """A person's enrolment for ``year``."""
    resident_id = read_resident_id(person_id, "person_id")
    check_year(year, "year")
    enrolment = _read_enrolment(connection, resident_id.number, year)
    if enrolment is None:
        raise not_enrolled(resident_id.number, year)
    return enrolment


def get_coverage(*, connection: sqlalchemy.Connection, person_id: str, day: date) -> Coverage:
    """The person and their enrolment for the year of ``day``, in one read."""
    number = read_resident_id(person_id, "person_id").number
    row = connection.execute(_COVERAGE, {"person_id": number, "year": day.year}).first()
    if row is None:
        raise person_not_found(number, "person_id")
    if row.year is None:
        raise not_enrolled(number, day.year)
    return Coverage(_record(Person, row), _record(Enrolment, row))


# The copies the settlement, datashare and assistance services keep (doudi.common.outbox)

SUBSCRIBERS = (outbox.SETTLEMENT, outbox.DATASHARE, outbox.ASSISTANCE)
"""Who keeps a copy of the register: settlement settles on it, datashare compares the
agencies' rosters with it, assistance adds a household's burdens together."""


@dataclass(frozen=True, slots=True)
class HeldCertificate:
    """An approved outpatient certificate as settlement keeps it."""

    disease: str
    kind: str
    valid_from: date
    valid_to: date


@dataclass(frozen=True, slots=True)
class HeldRegistration:
    """A registration (not cancelled) as settlement keeps it; ``valid_to`` None: open."""

    kind: str
    region: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class PersonCoverage:
    """What the subscribers keep of a person: name, household, region and every year's
    enrolment; settlement also the certificates and registrations."""

    person_id: str
    version: int
    name: str
    household_id: str
    region: str
    enrolments: tuple[Enrolment, ...]
    enrolled_at: tuple[datetime, ...] = ()
    """When each of ``enrolments`` was recorded (assistance's reports count it then)."""
    certificates: tuple[HeldCertificate, ...] = ()
    registrations: tuple[HeldRegistration, ...] = ()


def queue_for_subscribers(
    connection: sqlalchemy.Connection,
    numbers: Collection[str],
    subscribers: Collection[str] = SUBSCRIBERS,
) -> None:
    """Queue the persons' coverage for the subscribers (all, unless told), in the caller's
    transaction, at their versions (:func:`coverage_versions`)."""
    versions = coverage_versions(connection, numbers)
    outbox.queue_many(
        connection,
        coverage_deliveries,
        [(number, versions[number]) for number in numbers],
        datetime.now(UTC),
        subscribers,
    )


VERSION_BASE = 2
"""A person's coverage version counts their records, which are only ever added: 2 (the
person, and the coverage carrying certificates and registrations, which migration 0006
began sending: one above the 1 + enrolments sent before, so every subscriber took it) +
enrolments + certificates + registrations + registrations ended or cancelled (once each)."""


def coverage_versions(
    connection: sqlalchemy.Connection, numbers: Collection[str]
) -> dict[str, int]:
    """The version of each person's coverage now (:data:`VERSION_BASE`)."""
    counted = [
        select(table.c.person_id, func.count())
        .where(table.c.person_id.in_(numbers), *where)
        .group_by(table.c.person_id)
        for table, where in (
            (enrolments, ()),
            (certificates, ()),
            (registrations, ()),
            (registrations, (registrations.c.ended_at.is_not(None),)),
        )
    ]
    versions = dict.fromkeys(numbers, VERSION_BASE)
    for query in counted:
        for number, count in connection.execute(query):
            versions[number] += count
    return versions


def coverage_to_deliver(
    *, connection: sqlalchemy.Connection, person_ids: list[str]
) -> list[PersonCoverage]:
    """The persons as the subscribers keep them (persons not registered left out)."""
    registered = connection.execute(
        select(*_PERSON_COLUMNS)
        .where(persons.c.person_id.in_(person_ids))
        .order_by(persons.c.person_id)
    ).all()
    years: dict[str, list[Enrolment]] = {}
    recorded: dict[str, list[datetime]] = {}
    rows: sqlalchemy.Result[Any] = connection.execute(
        select(*_ENROLMENT_COLUMNS, enrolments.c.created_at)
        .where(enrolments.c.person_id.in_(person_ids))
        .order_by(enrolments.c.person_id, enrolments.c.year)
    )
    for row in rows:
        years.setdefault(row.person_id, []).append(_record(Enrolment, row))
        recorded.setdefault(row.person_id, []).append(row.created_at)
    held = _held_certificates(connection, person_ids)
    registered_out = _held_registrations(connection, person_ids)
    versions = coverage_versions(connection, [row.person_id for row in registered])
    return [
        PersonCoverage(
            row.person_id,
            versions[row.person_id],
            row.name,
            row.household_id,
            row.region,
            tuple(years.get(row.person_id, ())),
            tuple(recorded.get(row.person_id, ())),
            tuple(held.get(row.person_id, ())),
            tuple(registered_out.get(row.person_id, ())),
        )
        for row in registered
    ]


def _held_certificates(
    connection: sqlalchemy.Connection, person_ids: list[str]
) -> dict[str, list[HeldCertificate]]:
    """Each person's certificates (every one stored was approved by a batch)."""
    return _by_person(connection, certificates, HeldCertificate, person_ids)


def _held_registrations(
    connection: sqlalchemy.Connection, person_ids: list[str]
) -> dict[str, list[HeldRegistration]]:
    """Each person's registrations not cancelled."""
    return _by_person(
        connection,
        registrations,
        HeldRegistration,
        person_ids,
        registrations.c.cancelled.is_(False),
    )


H = TypeVar("H", HeldCertificate, HeldRegistration)


def _by_person(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    kind: type[H],
    person_ids: list[str],
    *where: sqlalchemy.ColumnElement[bool],
) -> dict[str, list[H]]:
    """The persons' rows of ``table`` as ``kind`` (its fields are columns), in id order."""
    names = [f.name for f in fields(kind)]
    found: dict[str, list[H]] = {}
    rows = connection.execute(
        select(table.c.person_id, *(table.c[name] for name in names))
        .where(table.c.person_id.in_(person_ids), *where)
        .order_by(table.c.person_id, *table.primary_key.columns)
    )
    for row in rows:
        found.setdefault(row.person_id, []).append(kind(*row[1:]))
    return found


# Rules


def _checked_person(person: NewPerson, regions: Collection[str]) -> Person:
    resident_id = read_resident_id(person.person_id, "person.person_id")
    check_text(person.name, "person.name")
    check_text(person.household_id, "person.household_id")
    if person.region not in regions:
        known = ", ".join(sorted(regions))
        raise InvalidInput(
            "person.region",
            f"required: one of {known}"
            if not person.region
            else f"unknown region {person.region!r} (one of {known})",
        )
    return Person(
        person_id=resident_id.number,
        name=person.name,
        birth_date=resident_id.birth_date,
        sex=resident_id.sex,
        household_id=person.household_id,
        region=person.region,
    )


def check_text(value: str, field: str) -> None:
    """A name, household id or health centre: required, at most 64 visible characters."""
    if not value.strip():
        raise InvalidInput(field, "required")
    if len(value) > MAX_TEXT:
        raise InvalidInput(field, f"at most {MAX_TEXT} characters, got {len(value)}")
    check_visible(value, field)


def _checked_enrolment(enrolment: Enrolment) -> ResidentId:
    resident_id = read_resident_id(enrolment.person_id, "enrolment.person_id")
    check_year(enrolment.year, "enrolment.year")
    insured = model.Person(
        resident_id, enrolment.scheme, employment=enrolment.employment, tier=enrolment.tier
    )
    try:
        insured.check()
    except InvalidInput as error:
        raise error.under("enrolment") from None
    if enrolment.premium_fen < 0:
        raise InvalidInput(
            "enrolment.premium_fen", f"must not be negative, got {enrolment.premium_fen}"
        )
    if enrolment.premium_fen > MAX_ITEM_FEN:
        # Also what keeps a region's sums of premiums (subsidised.summary) inside 64 bits.
        raise InvalidInput(
            "enrolment.premium_fen",
            f"at most {MAX_ITEM_FEN} fen (100 million yuan), got {enrolment.premium_fen}",
        )
    if enrolment.premium_payer not in PREMIUM_PAYERS:
        raise InvalidInput(
            "enrolment.premium_payer",
            f"unknown payer {enrolment.premium_payer!r} (one of {', '.join(sorted(PREMIUM_PAYERS))})",
        )
    return resident_id


# Storage


def _store_once(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    wanted: R,
    read: Callable[[], R | None],
    *,
    conflict: str,
    field: str,
) -> R:
    """Insert ``wanted`` unless its key is stored; the same record stored answers it, another
    is ALREADY_EXISTS (``conflict`` says what is stored, ``field`` is to blame).

    A concurrent request may insert the same key between our read and our
    insert; its row then makes ours fail, in a savepoint, and we read its row.
    """
    stored = read()
    if stored is None:
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values(**asdict(wanted)))
        except IntegrityError:
            stored = read()
            if stored is None:
                raise
    if stored is None or stored == wanted:
        return wanted
    differing = [
        f.name for f in fields(wanted) if getattr(stored, f.name) != getattr(wanted, f.name)
    ]
    raise AlreadyExists(f"{conflict} with another {', '.join(differing)}", field=field)


_PERSON_COLUMNS = tuple(persons.c[f.name] for f in fields(Person))
_ENROLMENT_COLUMNS = tuple(enrolments.c[f.name] for f in fields(Enrolment))
# Built once: every settlement asks for coverage, and building a statement costs more
# than running it.
_COVERAGE = (
    select(*_PERSON_COLUMNS, *_ENROLMENT_COLUMNS[1:])
    .select_from(
        persons.outerjoin(
            enrolments,
            and_(
                enrolments.c.person_id == persons.c.person_id,
                enrolments.c.year == bindparam("year"),
            ),
        )
    )
    .where(persons.c.person_id == bindparam("person_id"))
)
"""The columns of each record, in field order (``person_id`` first)."""


def _read_person(connection: sqlalchemy.Connection, number: str) -> Person | None:
    row = connection.execute(select(*_PERSON_COLUMNS).where(persons.c.person_id == number)).first()
    return None if row is None else _record(Person, row)


def _read_enrolment(connection: sqlalchemy.Connection, number: str, year: int) -> Enrolment | None:
    row = connection.execute(
        select(*_ENROLMENT_COLUMNS).where(
            enrolments.c.person_id == number, enrolments.c.year == year
        )
    ).first()
    return None if row is None else _record(Enrolment, row)


def _record(kind: type[R], row: Row[Any]) -> R:
    """The record of ``kind`` in a row that has (at least) its columns."""
    columns = row._mapping
    return kind(**{f.name: columns[f.name] for f in fields(kind)})

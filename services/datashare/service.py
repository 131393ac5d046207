"""The status registry's handlers: plain functions on a database connection.

No protobuf or gRPC here: ``server.py`` translates requests into these calls and
their answers back, and runs each in a worker thread on a connection from
:func:`doudi.common.db.read_in_thread` or :func:`~doudi.common.db.write_in_thread`.
A reader is an agency (by its code) or the platform itself (``agency=None``):
agencies must say why they read, see only their own statuses and records, and
every read of theirs is audited in the transaction that reads, so the servicer
runs an agency's read in a write transaction (``DatashareServicer._agency_read``).
"""

from __future__ import annotations

import contextvars
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from doudi.common import outbox, paging
from doudi.common.errors import AlreadyExists, PermissionDenied
from doudi.core.errors import InvalidInput
from doudi.core.identity import parse_resident_id
from doudi.core.names import check_visible
from doudi.core.statuses import (
    ASSERT,
    KINDS,
    EffectivePeriod,
    StatusRecord,
    check_period,
    effective_periods,
    owned_statuses,
    owns,
)
from services.datashare.tables import audit_events, status_assertions, status_deliveries

MAX_TEXT_LENGTH = 64  # reference, household_id, a roster's names
MAX_PURPOSE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Assertion:
    """One record of the registry, as stored (never changed once recorded)."""

    assertion_id: int
    kind: str
    person_id: str
    household_id: str | None  # None on revocations
    status: str
    agency: str
    valid_from: date
    valid_to: date | None
    reference: str
    recorded_at: datetime
    # The roster whose difference recorded it (None: AssertStatus or RevokeStatus).
    submission_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_id: int
    caller: str
    method: str
    person_id: str | None  # None: the read was of no one person's data
    subject: str | None  # what was read then (a roster submission, a comparison)
    purpose: str
    event_time: datetime


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_page_token: str


# -- writes ---------------------------------------------------------------------


def record_status(
    *,
    connection: sqlalchemy.Connection,
    kind: str,
    agency: str,
    person_id: str,
    household_id: str | None,
    status: str,
    valid_from: date,
    valid_to: date | None,
    reference: str,
) -> Assertion:
    """Record that ``agency`` asserts (``kind`` assert, for ``household_id``) or revokes
    ``status`` of a person from ``valid_from`` to ``valid_to``; idempotent on ``reference``.

    A concurrent request may store the same reference between our read and our insert
    (PostgreSQL; SQLite's write lock serialises the two): its row then makes our insert
    fail, in a savepoint, and we answer as if we had read it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if not owns(agency, status):
        raise PermissionDenied(f"{agency} may not assert or revoke {status}", field="status")
    check_period(valid_from, valid_to)
    values: dict[str, Any] = {
        "kind": kind,
        "person_id": _person_id(person_id),
        # Assertions name the household (poverty is certified per household); revocations none.
        "household_id": text_field(household_id or "", "household_id") if kind == ASSERT else None,
        "status": status,
        "agency": agency,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "reference": text_field(reference, "reference"),
    }
    stored = _by_reference(connection, agency, values["reference"])
    if stored is None:
        recorded_at = datetime.now(UTC)
        try:
            with connection.begin_nested():
                assertion_id = connection.execute(
                    insert(status_assertions)
                    .values(**values, recorded_at=recorded_at)
                    .returning(status_assertions.c.assertion_id)
                ).scalar_one()
        except IntegrityError:
            stored = _by_reference(connection, agency, values["reference"])
            if stored is None:
                raise
        else:
            outbox.queue_many(
                connection,
                status_deliveries,
                [(values["person_id"], assertion_id)],
                recorded_at,
                SUBSCRIBERS,
            )
            return Assertion(assertion_id=assertion_id, recorded_at=recorded_at, **values)
    if any(getattr(stored, name) != value for name, value in values.items()):
        raise AlreadyExists(
            f"reference {values['reference']!r} of {agency} is already recorded with other content",
            field="reference",
        )
    return stored


def _by_reference(
    connection: sqlalchemy.Connection, agency: str, reference: str
) -> Assertion | None:
    row = connection.execute(
        select(status_assertions).where(
            status_assertions.c.agency == agency,
            status_assertions.c.reference == reference,
            status_assertions.c.submission_id.is_(None),
        )
    ).one_or_none()
    return None if row is None else _assertion(row)


# -- deliveries to the settlement service ---------------------------------------


SUBSCRIBERS = (outbox.SETTLEMENT, outbox.ASSISTANCE)
"""Who keeps a copy of the persons' statuses: settlement settles on it, assistance reads
who held what status in a year."""


@dataclass(frozen=True, slots=True)
class PersonStatuses:
    """A person's statuses as a subscriber keeps them: every period, and the latest record."""

    person_id: str
    version: int
    periods: tuple[EffectivePeriod, ...]


# A record's columns in StatusRecord's order: only what the periods need, read as plain
# tuples (the sender reads every person a roster changed, a million; a whole Assertion
# costs twice the read).
_RECORD_COLUMNS = (
    status_assertions.c.kind,
    status_assertions.c.status,
    status_assertions.c.agency,
    status_assertions.c.valid_from,
    status_assertions.c.valid_to,
    status_assertions.c.assertion_id,
)


def statuses_to_deliver(
    *, connection: sqlalchemy.Connection, person_ids: list[str]
) -> list[PersonStatuses]:
    """Everything the settlement service keeps of each person (persons with nothing on
    record left out)."""
    records = status_assertions.c
    rows = (
        connection.execute(
            select(records.person_id, *_RECORD_COLUMNS)
            .where(records.person_id.in_(person_ids))
            .order_by(records.person_id, records.assertion_id)
        )
        .tuples()
        .all()
    )
    delivered = []
    for person_id, history in itertools.groupby(rows, key=operator.itemgetter(0)):
        held = [StatusRecord(*row[1:]) for row in history]
        delivered.append(PersonStatuses(person_id, held[-1].order, effective_periods(held)))
    return delivered


# -- reads ----------------------------------------------------------------------


# Built once: the settlement service asks for a person's statuses on every settlement.
_PERSON_HISTORY = (
    select(*_RECORD_COLUMNS)
    .where(status_assertions.c.person_id == bindparam("person_id"))
    .order_by(status_assertions.c.assertion_id)
)


def person_statuses(
    *,
    connection: sqlalchemy.Connection,
    agency: str | None,
    person_id: str,
    on_date: date | None,
    purpose: str,
) -> tuple[EffectivePeriod, ...]:
    """The periods in which the person holds each status (only ``agency``'s own statuses).

    For the platform (``agency=None``) it is one indexed read and no write: the
    settlement service asks on every settlement.
    """
    number = _person_id(person_id)
    query = _PERSON_HISTORY
    if agency is not None:
        query = query.where(status_assertions.c.status.in_(sorted(owned_statuses(agency))))
    _audit_person_read(connection, agency, "GetPersonStatuses", number, purpose)
    records = [
        StatusRecord(*row) for row in connection.execute(query, {"person_id": number}).tuples()
    ]
    periods = effective_periods(records)
    if on_date is None:
        return periods
    return tuple(period for period in periods if period.holds_on(on_date))


def list_assertions(
    *,
    connection: sqlalchemy.Connection,
    agency: str | None,
    person_id: str,
    purpose: str,
    page_size: int,
    page_token: str,
) -> Page[Assertion]:
    """The person's records oldest first (only ``agency``'s own)."""
    number = _person_id(person_id)
    query = select(status_assertions).where(status_assertions.c.person_id == number)
    if agency is not None:
        query = query.where(status_assertions.c.agency == agency)
    _audit_person_read(connection, agency, "ListStatusAssertions", number, purpose)
    rows, token = paging.keyset_page(
        connection, query, status_assertions.c.assertion_id, page_size, page_token
    )
    return Page(tuple(_assertion(row) for row in rows), token)


def list_audit_events(
    *, connection: sqlalchemy.Connection, person_id: str, page_size: int, page_token: str
) -> Page[AuditEvent]:
    """The audited reads oldest first, of one person's data when ``person_id`` is given."""
    query = select(audit_events)
    if person_id:
        query = query.where(audit_events.c.person_id == _person_id(person_id))
    rows, token = paging.keyset_page(
        connection, query, audit_events.c.event_id, page_size, page_token
    )
    return Page(
        tuple(AuditEvent(**{**row._asdict(), "event_time": utc(row.event_time)}) for row in rows),
        token,
    )


def record_subject_read(
    connection: sqlalchemy.Connection, agency: str | None, method: str, subject: str
) -> None:
    """An agency's read of no one person's data (a roster submission, a comparison: the
    ``subject``) recorded in the transaction that reads; nothing for the platform."""
    if agency is not None:
        record_reads(connection, agency=agency, method=method, purpose="", subject=subject)


def _audit_person_read(
    connection: sqlalchemy.Connection, agency: str | None, method: str, person_id: str, purpose: str
) -> None:
    """An agency's read of a person's data: why (required) recorded in the transaction that
    reads; nothing for the platform."""
    if agency is not None:
        record_reads(
            connection,
            agency=agency,
            method=method,
            purpose=checked_purpose(purpose),
            person_ids=[person_id],
        )


def checked_purpose(
    purpose: str, required: str = "required: agencies say why they read a person's data"
) -> str:
    """Why an agency reads personal data: ``required``, and short."""
    why = purpose.strip()
    if not why:
        raise InvalidInput("purpose", required)
    if len(why) > MAX_PURPOSE_LENGTH:
        raise InvalidInput("purpose", f"at most {MAX_PURPOSE_LENGTH} characters, got {len(why)}")
    return why


def record_reads(
    connection: sqlalchemy.Connection,
    *,
    agency: str,
    method: str,
    purpose: str,
    person_ids: Sequence[str | None] = (),
    subject: str | None = None,
) -> None:
    """Audit an agency's read, in the transaction that reads: one row per person whose
    data it saw, or one row naming the ``subject`` when it saw no person's. A read by an
    agency clerk through the console (:func:`acting_for_console`) has its purpose
    prefixed ``console <username>: ``."""
    purpose = _through_console(purpose)
    now = datetime.now(UTC)
    rows = [
        {
            "caller": agency,
            "method": method,
            "person_id": person_id,
            "subject": subject,
            "purpose": purpose,
            "event_time": now,
        }
        for person_id in (list(person_ids) if person_ids else [None])
    ]
    connection.execute(insert(audit_events), rows)


_console_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "console_user", default=None
)


def acting_for_console(username: str) -> None:
    """The servicer's note, for the call: it is an agency clerk's, made through the console
    by ``username`` (``doudi-console-user``); the agency's reads are audited with the
    username in their purpose."""
    _console_user.set(username)


def _through_console(purpose: str) -> str:
    username = _console_user.get()
    if username is None:
        return purpose
    prefix = f"console {username}: "
    if len(prefix) + len(purpose) > MAX_PURPOSE_LENGTH:
        raise InvalidInput(
            "purpose",
            f"at most {MAX_PURPOSE_LENGTH - len(prefix)} characters through the console, "
            f"got {len(purpose)}",
        )
    return prefix + purpose


# -- values ---------------------------------------------------------------------


def _person_id(text: str) -> str:
    """The validated identity number (upper-case X), or InvalidInput on ``person_id``."""
    try:
        return parse_resident_id(text).number
    except ValueError as error:
        raise InvalidInput("person_id", str(error)) from None


def text_field(value: str, field: str) -> str:
    """The text stripped, or InvalidInput when empty or longer than the registry keeps."""
    text = value.strip()
    if not text:
        raise InvalidInput(field, "required")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(field, f"at most {MAX_TEXT_LENGTH} characters, got {len(text)}")
    check_visible(text, field)
    return text


def _assertion(row: sqlalchemy.Row[Any]) -> Assertion:
    return Assertion(**{**row._asdict(), "recorded_at": utc(row.recorded_at)})


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every one the service stores is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

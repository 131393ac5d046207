"""Registrations for care outside the person's region (异地安置 relocated, 转诊备案
referred): a region and a validity.

Settlement takes an out-of-area visit as referred only with a registration valid on the
visit's day for the hospital's region (doudi.core.engine.settled_as), so each change
queues the person for settlement in its transaction. A registration is ended once
(``ended_at``): on a day, or cancelled as recorded in error (never valid, no longer sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from doudi.common import outbox
from doudi.common.errors import AlreadyExists, FailedPrecondition, NotFound
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.model import REGION_CODE
from services.enrollment.certificates import check_request_id
from services.enrollment.service import person_region, queue_for_subscribers
from services.enrollment.tables import registrations


@dataclass(frozen=True, slots=True)
class NewRegistration:
    request_id: str
    person_id: str
    kind: str
    region: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class Registration:
    registration_id: int
    request_id: str
    person_id: str
    kind: str
    region: str
    valid_from: date
    valid_to: date | None
    recorded_at: datetime
    ended: bool
    cancelled: bool


def record(*, connection: sqlalchemy.Connection, registration: NewRegistration) -> Registration:
    """Record a registration, or answer the one its request id recorded."""
    check_request_id(registration.request_id)
    number = read_resident_id(registration.person_id, "person_id").number
    if not REGION_CODE.fullmatch(registration.region):
        raise InvalidInput(
            "region", f"a 6-digit administrative division code, got {registration.region!r}"
        )
    if registration.valid_to is not None and registration.valid_to < registration.valid_from:
        raise InvalidInput("valid_to", "is before valid_from")
    stored = _by_request(connection, registration.request_id)
    if stored is not None:
        return _replayed(stored, registration, number)
    home = person_region(connection, number)
    if registration.region == home:
        raise InvalidInput("region", f"{home} is the person's own region")
    try:
        with connection.begin_nested():
            registration_id = connection.execute(
                insert(registrations)
                .values(
                    request_id=registration.request_id,
                    person_id=number,
                    kind=registration.kind,
                    region=registration.region,
                    valid_from=registration.valid_from,
                    valid_to=registration.valid_to,
                )
                .returning(registrations.c.registration_id)
            ).scalar_one()
    except IntegrityError:
        stored = _by_request(connection, registration.request_id)
        if stored is None:
            raise
        return _replayed(stored, registration, number)
    queue_for_subscribers(connection, [number], (outbox.SETTLEMENT,))
    return _read(connection, registration_id)


def end(
    *,
    connection: sqlalchemy.Connection,
    registration_id: int,
    valid_to: date | None,
    cancel: bool,
) -> Registration:
    """End the registration on ``valid_to`` or cancel it, once; the same end again answers
    it, another is FAILED_PRECONDITION."""
    if registration_id < 1:
        raise InvalidInput("registration_id", "required: a registration's id")
    if cancel and valid_to is not None:
        raise InvalidInput("valid_to", "must be unset when cancelling")
    if not cancel and valid_to is None:
        raise InvalidInput("valid_to", "required: the last day it is valid (or cancel)")
    stored = _read(connection, registration_id, lock=True)
    if stored.ended:
        if stored.cancelled == cancel and (cancel or stored.valid_to == valid_to):
            return stored
        raise FailedPrecondition(
            f"registration {registration_id} was "
            + ("cancelled" if stored.cancelled else f"ended on {stored.valid_to}"),
            reason="REGISTRATION_ENDED",
            field="registration_id",
        )
    if valid_to is not None:
        if valid_to < stored.valid_from:
            raise InvalidInput(
                "valid_to", f"is before its valid_from, {stored.valid_from.isoformat()}"
            )
        if stored.valid_to is not None and valid_to > stored.valid_to:
            raise InvalidInput("valid_to", f"is after its valid_to, {stored.valid_to.isoformat()}")
    changes: dict[str, Any] = {"ended_at": datetime.now(UTC), "cancelled": cancel}
    if valid_to is not None:
        changes["valid_to"] = valid_to
    connection.execute(
        update(registrations)
        .where(
            registrations.c.registration_id == registration_id,
            registrations.c.ended_at.is_(None),
        )
        .values(**changes)
    )
    queue_for_subscribers(connection, [stored.person_id], (outbox.SETTLEMENT,))
    return _read(connection, registration_id)


def list_registrations(*, connection: sqlalchemy.Connection, person_id: str) -> list[Registration]:
    """The person's registrations, the newest first."""
    number = read_resident_id(person_id, "person_id").number
    person_region(connection, number)  # NOT_FOUND for a person not registered
    rows = connection.execute(
        select(registrations)
        .where(registrations.c.person_id == number)
        .order_by(registrations.c.registration_id.desc())
    ).all()
    return [_registration(row) for row in rows]


def _by_request(connection: sqlalchemy.Connection, request_id: str) -> Registration | None:
    row = connection.execute(
        select(registrations).where(registrations.c.request_id == request_id)
    ).first()
    return None if row is None else _registration(row)


def _replayed(stored: Registration, wanted: NewRegistration, number: str) -> Registration:
    same = (
        stored.person_id == number
        and stored.kind == wanted.kind
        and stored.region == wanted.region
        and stored.valid_from == wanted.valid_from
        and (stored.ended or stored.valid_to == wanted.valid_to)
    )
    if not same:
        raise AlreadyExists(
            f"request {wanted.request_id!r} recorded registration {stored.registration_id} "
            "with other content",
            field="request_id",
        )
    return stored


def _read(
    connection: sqlalchemy.Connection, registration_id: int, *, lock: bool = False
) -> Registration:
    query = select(registrations).where(registrations.c.registration_id == registration_id)
    if lock:
        # Ended once: two ends at once take turns (PostgreSQL; SQLite has one writer).
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no registration {registration_id}", field="registration_id")
    return _registration(row)


def _registration(row: sqlalchemy.Row[Any]) -> Registration:
    return Registration(
        registration_id=row.registration_id,
        request_id=row.request_id,
        person_id=row.person_id,
        kind=row.kind,
        region=row.region,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        recorded_at=row.recorded_at,
        ended=row.ended_at is not None,
        cancelled=row.cancelled,
    )

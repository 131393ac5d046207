"""Outpatient certificates (门诊慢特病): applications, the monthly batch, certificates.

A person applies at a township health centre for at most the pack's number of diseases
at once (Xixia: two); the centre's clerk enters the paper application. Applications wait
for their region's monthly batch, which approves every pending one applied on or before
the month's last day unless the batch names it rejected; an approved application becomes
a certificate per disease, valid from the batch's day for the pack's ``validity_years``.
Each new certificate queues the person for settlement (``queue_for_subscribers``), which
pays a chronic or major-disease outpatient visit as such only for a diagnosis a
certificate valid on the visit's day covers (doudi.core.engine.settled_as).

Decisions of the bureau's engineer, where the sources are silent (docs/domain.md
section 5): one application pending at a time per person (that is what "two diseases at
once" means at the window); a disease may be applied for again only in the last 90 days
of a certificate for it (assumed: renewal near the end, so that the new certificate
follows the old); a batch may be decided only after its month is over, on a day after
the month's last day and not in the future.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from doudi.common import outbox
from doudi.common.errors import AlreadyExists, FailedPrecondition, not_enrolled, person_not_found
from doudi.common.paging import keyset_page
from doudi.core.dates import add_years
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask, read_resident_id
from doudi.core.model import ICD10_CODE
from doudi.core.names import check_visible
from doudi.core.packs import PackRegistry
from doudi.core.policy import CertificateRules
from services.enrollment.service import check_text, person_region, queue_for_subscribers
from services.enrollment.tables import (
    certificate_applications,
    certificate_batches,
    certificates,
    enrolments,
    persons,
)

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
RENEWAL_DAYS = 90
"""A disease is applied for again only when its certificate has at most this many days
left (assumed: the sources say nothing of renewal)."""
BATCH_PAGE = 1000
"""Pending applications a batch reads and decides at a time."""
MAX_REQUEST_ID = 64
MAX_REASON = 200
MAX_DIAGNOSES = 20
"""Codes an application may give (stored as JSON in 512 characters: each at most 12)."""


@dataclass(frozen=True, slots=True)
class NewApplication:
    """An application as the clerk enters it (``kind``: a core code)."""

    request_id: str
    person_id: str
    kind: str
    diagnoses: tuple[str, ...]
    applied_on: date
    health_centre: str


@dataclass(frozen=True, slots=True)
class Application:
    application_id: int
    request_id: str
    person_id: str
    region: str
    kind: str
    diagnoses: tuple[str, ...]
    diseases: tuple[str, ...]
    health_centre: str
    applied_on: date
    state: str
    batch_month: str
    reason: str


@dataclass(frozen=True, slots=True)
class Certificate:
    certificate_id: int
    person_id: str
    disease: str
    kind: str
    valid_from: date
    valid_to: date
    application_id: int
    disease_name: str


@dataclass(frozen=True, slots=True)
class Batch:
    region: str
    month: str
    decided_on: date
    approved_count: int
    rejected_count: int
    certificate_count: int
    decided_at: Any


def check_request_id(request_id: str) -> None:
    """A caller's request id: required, at most 64 printable characters."""
    if not request_id.strip():
        raise InvalidInput("request_id", "required: the caller's id of this request")
    if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidInput(
            "request_id", f"at most {MAX_REQUEST_ID} printable characters (no control ones)"
        )


# --- applying ---------------------------------------------------------------------------


def apply(
    *,
    connection: sqlalchemy.Connection,
    application: NewApplication,
    packs: PackRegistry,
    today: date,
) -> Application:
    """Record an application, or answer the one its request id recorded; see the module."""
    codes = _checked_application(application, today)
    number = read_resident_id(application.person_id, "person_id").number
    stored = _by_request(connection, application.request_id)
    if stored is not None:
        return _replayed(stored, application, number, codes)
    region = _enrolled_region(connection, number, application.applied_on)
    rules = certificate_rules(packs, region, application.applied_on, application.kind)
    diseases = _diseases(rules, application.kind, codes)
    pending = _pending_application(connection, number)
    if pending is not None:
        # A concurrent retry's, committed since the read above (PostgreSQL), is answered.
        if pending.request_id == application.request_id:
            return _replayed(pending, application, number, codes)
        raise _pending(number)
    _check_renewal(connection, number, diseases, application.applied_on)
    try:
        with connection.begin_nested():
            application_id = connection.execute(
                insert(certificate_applications)
                .values(
                    request_id=application.request_id,
                    person_id=number,
                    region=region,
                    kind=application.kind,
                    diseases=json.dumps(list(diseases)),
                    diagnoses=json.dumps(codes),
                    health_centre=application.health_centre,
                    applied_on=application.applied_on,
                    state=PENDING,
                )
                .returning(certificate_applications.c.application_id)
            ).scalar_one()
    except IntegrityError:
        # A concurrent retry stored the request id first, or another application of the
        # person is pending now (the partial unique index).
        stored = _by_request(connection, application.request_id)
        if stored is None:
            raise _pending(number) from None
        return _replayed(stored, application, number, codes)
    return get_application(connection, application_id)


def certificate_rules(packs: PackRegistry, region: str, day: date, kind: str) -> CertificateRules:
    """The certificate rules of the pack in force in ``region`` on ``day``, which must list
    diseases of ``kind``; FAILED_PRECONDITION otherwise."""
    pack = packs.in_force(region, day)
    rules = None if pack is None else pack.certificates
    if rules is None or kind not in rules.kinds:
        raise FailedPrecondition(
            f"the policy pack of region {region} in force on {day.isoformat()} certifies no "
            f"{kind} outpatient disease",
            reason="NO_CERTIFIED_DISEASES",
            field="kind",
        )
    return rules


def _checked_application(application: NewApplication, today: date) -> list[str]:
    """The application's ICD-10 codes, upper-cased; InvalidInput names the field at fault."""
    check_request_id(application.request_id)
    read_resident_id(application.person_id, "person_id")
    if application.applied_on > today:
        raise InvalidInput(
            "applied_on",
            f"{application.applied_on.isoformat()} is in the future (today is {today.isoformat()})",
        )
    check_text(application.health_centre, "health_centre")
    if not application.diagnoses:
        raise InvalidInput("diagnoses", "required: at least one ICD-10 code")
    if len(application.diagnoses) > MAX_DIAGNOSES:
        raise InvalidInput("diagnoses", f"at most {MAX_DIAGNOSES} codes")
    codes = []
    for index, given in enumerate(application.diagnoses):
        code = given.strip().upper()
        if not ICD10_CODE.fullmatch(code):
            raise InvalidInput(f"diagnoses[{index}]", f"not an ICD-10 code: {given!r}")
        codes.append(code)
    return codes


def _enrolled_region(connection: sqlalchemy.Connection, number: str, day: date) -> str:
    """The person's region; NOT_FOUND unless registered and enrolled in ``day``'s year."""
    row = connection.execute(
        select(persons.c.region, enrolments.c.year)
        .select_from(
            persons.outerjoin(
                enrolments,
                (enrolments.c.person_id == persons.c.person_id) & (enrolments.c.year == day.year),
            )
        )
        .where(persons.c.person_id == number)
    ).first()
    if row is None:
        raise person_not_found(number, "person_id")
    if row.year is None:
        raise not_enrolled(number, day.year)
    return str(row.region)


def _diseases(rules: CertificateRules, kind: str, codes: list[str]) -> dict[str, int]:
    """The pack's diseases the codes name, each once, in the order given, with the index of
    the first code naming each."""
    diseases: dict[str, int] = {}
    for index, code in enumerate(codes):
        disease = rules.disease_of(kind, code)
        if disease is None:
            raise InvalidInput(
                f"diagnoses[{index}]", f"{code} is no {kind} outpatient disease of the pack"
            )
        diseases.setdefault(disease.id, index)
    most = rules.max_diseases_per_application
    if len(diseases) > most:
        raise InvalidInput(
            "diagnoses",
            f"at most {most} diseases at once, got {len(diseases)} ({', '.join(diseases)})",
        )
    return diseases


def _check_renewal(
    connection: sqlalchemy.Connection, number: str, diseases: dict[str, int], applied_on: date
) -> None:
    """FAILED_PRECONDITION when a certificate for one of the diseases is valid for more
    than ``RENEWAL_DAYS`` after the application's day."""
    horizon = applied_on + timedelta(days=RENEWAL_DAYS)
    held = connection.execute(
        select(certificates.c.disease, func.max(certificates.c.valid_to))
        .where(certificates.c.person_id == number, certificates.c.disease.in_(list(diseases)))
        .group_by(certificates.c.disease)
    ).all()
    for disease, valid_to in held:
        if valid_to > horizon:
            raise FailedPrecondition(
                f"person {mask(number)} holds a certificate for {disease} valid to "
                f"{valid_to.isoformat()}: it is renewed in its last {RENEWAL_DAYS} days",
                reason="CERTIFICATE_STILL_VALID",
                field=f"diagnoses[{diseases[disease]}]",
            )


def _pending_application(connection: sqlalchemy.Connection, number: str) -> Application | None:
    row = connection.execute(
        _APPLICATIONS.where(
            certificate_applications.c.person_id == number,
            certificate_applications.c.state == PENDING,
        )
    ).first()
    return None if row is None else _application(row)


def _pending(number: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"person {mask(number)} has an application pending: one at a time",
        reason="APPLICATION_PENDING",
        field="person_id",
    )


def _by_request(connection: sqlalchemy.Connection, request_id: str) -> Application | None:
    row = connection.execute(
        _APPLICATIONS.where(certificate_applications.c.request_id == request_id)
    ).first()
    return None if row is None else _application(row)


def _replayed(
    stored: Application, application: NewApplication, number: str, codes: list[str]
) -> Application:
    """The stored application of a repeated request id; ALREADY_EXISTS if it differs."""
    same = (
        stored.person_id == number
        and stored.kind == application.kind
        and list(stored.diagnoses) == codes
        and stored.applied_on == application.applied_on
        and stored.health_centre == application.health_centre
    )
    if not same:
        raise AlreadyExists(
            f"request {application.request_id!r} recorded application {stored.application_id} "
            "with other content",
            field="request_id",
        )
    return stored


def get_application(connection: sqlalchemy.Connection, application_id: int) -> Application:
    row = connection.execute(
        _APPLICATIONS.where(certificate_applications.c.application_id == application_id)
    ).one()
    return _application(row)


def list_applications(
    *,
    connection: sqlalchemy.Connection,
    region: str,
    state: str | None,
    month: str,
    size: int,
    page_token: str,
) -> tuple[list[Application], str]:
    """A page of the region's applications in id order (optionally of a state, applied in a
    month)."""
    query = _APPLICATIONS.where(certificate_applications.c.region == region)
    if state is not None:
        query = query.where(certificate_applications.c.state == state)
    if month:
        first, last = month_days(month, "month")
        query = query.where(certificate_applications.c.applied_on.between(first, last))
    rows, token = keyset_page(
        connection, query, certificate_applications.c.application_id, size, page_token
    )
    return [_application(row) for row in rows], token


_APPLICATIONS = select(certificate_applications, certificate_batches.c.month).select_from(
    certificate_applications.outerjoin(
        certificate_batches,
        certificate_batches.c.batch_id == certificate_applications.c.batch_id,
    )
)


def _application(row: sqlalchemy.Row[Any]) -> Application:
    return Application(
        application_id=row.application_id,
        request_id=row.request_id,
        person_id=row.person_id,
        region=row.region,
        kind=row.kind,
        diagnoses=tuple(json.loads(row.diagnoses)),
        diseases=tuple(json.loads(row.diseases)),
        health_centre=row.health_centre,
        applied_on=row.applied_on,
        state=row.state,
        batch_month=row.month or "",
        reason=row.reason,
    )


# --- the monthly batch ------------------------------------------------------------------


def month_days(month: str, field: str) -> tuple[date, date]:
    """The first and last day of ``month`` ("2026-11"); InvalidInput otherwise."""
    try:
        year_text, month_text = month.split("-")
        if len(year_text) != 4 or len(month_text) != 2:
            raise ValueError(month)
        first = date(int(year_text), int(month_text), 1)
    except ValueError:
        raise InvalidInput(field, f"a month as YYYY-MM, got {month!r}") from None
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def decide_batch(
    *,
    connection: sqlalchemy.Connection,
    region: str,
    month: str,
    decided_on: date | None,
    rejections: Sequence[tuple[int, str]],
    packs: PackRegistry,
    today: date,
) -> tuple[Batch, bool, list[str]]:
    """Decide the region's batch of ``month``: the batch, whether it had been decided
    before (nothing decided now), and the persons given certificates."""
    if region not in packs.regions:
        raise InvalidInput("region", f"unknown region {region!r}")
    _, last = month_days(month, "month")
    day = decided_on or today
    _check_rejections(rejections)
    stored = _batch(connection, region, month)
    if stored is not None:
        return stored, True, []
    if last >= today:
        raise FailedPrecondition(
            f"the month {month} is not over (today is {today.isoformat()})",
            reason="MONTH_NOT_OVER",
            field="month",
        )
    if day <= last:
        raise InvalidInput("decided_on", f"must be after the month's last day, {last.isoformat()}")
    if day > today:
        raise InvalidInput("decided_on", f"{day.isoformat()} is in the future")
    pack = packs.in_force(region, day)
    rules = None if pack is None else pack.certificates
    if rules is None:
        raise FailedPrecondition(
            f"the policy pack of region {region} in force on {day.isoformat()} certifies no "
            "outpatient disease",
            reason="NO_CERTIFIED_DISEASES",
            field="region",
        )
    try:
        with connection.begin_nested():
            batch_id = connection.execute(
                insert(certificate_batches)
                .values(
                    region=region,
                    month=month,
                    decided_on=day,
                    approved_count=0,
                    rejected_count=0,
                    certificate_count=0,
                )
                .returning(certificate_batches.c.batch_id)
            ).scalar_one()
    except IntegrityError:
        # Decided by a concurrent call meanwhile: answer it.
        stored = _batch(connection, region, month)
        if stored is None:
            raise
        return stored, True, []
    valid_to = add_years(day, rules.validity_years) - timedelta(days=1)
    reasons = dict(rejections)
    found: set[int] = set()
    approved: list[tuple[int, str, str, list[str]]] = []
    after = 0
    while True:
        page = connection.execute(
            select(
                certificate_applications.c.application_id,
                certificate_applications.c.person_id,
                certificate_applications.c.kind,
                certificate_applications.c.diseases,
            )
            .where(
                certificate_applications.c.region == region,
                certificate_applications.c.state == PENDING,
                certificate_applications.c.applied_on <= last,
                certificate_applications.c.application_id > after,
            )
            .order_by(certificate_applications.c.application_id)
            .limit(BATCH_PAGE)
            .with_for_update()
        ).all()
        if not page:
            break
        after = page[-1].application_id
        for row in page:
            if row.application_id in reasons:
                found.add(row.application_id)
            else:
                approved.append(
                    (row.application_id, row.person_id, row.kind, json.loads(row.diseases))
                )
        _decide_page(connection, batch_id, page, reasons)
    for index, (application_id, _) in enumerate(rejections):
        if application_id not in found:
            raise InvalidInput(
                f"rejections[{index}].application_id",
                f"application {application_id} is no pending application of {region}'s "
                f"batch of {month}",
            )
    if approved:
        connection.execute(
            insert(certificates),
            [
                {
                    "person_id": person_id,
                    "disease": disease,
                    "kind": kind,
                    "valid_from": day,
                    "valid_to": valid_to,
                    "application_id": application_id,
                }
                for application_id, person_id, kind, diseases in approved
                for disease in diseases
            ],
        )
    issued = sum(len(diseases) for _, _, _, diseases in approved)
    connection.execute(
        update(certificate_batches)
        .where(certificate_batches.c.batch_id == batch_id)
        .values(approved_count=len(approved), rejected_count=len(found), certificate_count=issued)
    )
    given = sorted({person_id for _, person_id, _, _ in approved})
    queue_for_subscribers(connection, given, (outbox.SETTLEMENT,))
    batch = _batch(connection, region, month)
    assert batch is not None
    return batch, False, given


def _check_rejections(rejections: Sequence[tuple[int, str]]) -> None:
    seen: set[int] = set()
    for index, (application_id, reason) in enumerate(rejections):
        where = f"rejections[{index}]"
        if application_id < 1:
            raise InvalidInput(f"{where}.application_id", "required: an application's id")
        if application_id in seen:
            raise InvalidInput(f"{where}.application_id", f"{application_id} is given twice")
        seen.add(application_id)
        if not reason.strip():
            raise InvalidInput(f"{where}.reason", "required: why it is rejected")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"{where}.reason", f"at most {MAX_REASON} characters")
        check_visible(reason, f"{where}.reason")


def _decide_page(
    connection: sqlalchemy.Connection,
    batch_id: int,
    page: Sequence[Any],
    reasons: dict[int, str],
) -> None:
    """Approve the page's applications, reject those ``reasons`` names (two statements)."""
    approved = [row.application_id for row in page if row.application_id not in reasons]
    if approved:
        connection.execute(
            update(certificate_applications)
            .where(certificate_applications.c.application_id.in_(approved))
            .values(state=APPROVED, batch_id=batch_id)
        )
    for row in page:
        if row.application_id in reasons:
            connection.execute(
                update(certificate_applications)
                .where(certificate_applications.c.application_id == row.application_id)
                .values(state=REJECTED, batch_id=batch_id, reason=reasons[row.application_id])
            )


def _batch(connection: sqlalchemy.Connection, region: str, month: str) -> Batch | None:
    row = connection.execute(
        select(certificate_batches).where(
            certificate_batches.c.region == region, certificate_batches.c.month == month
        )
    ).first()
    if row is None:
        return None
    return Batch(
        region=row.region,
        month=row.month,
        decided_on=row.decided_on,
        approved_count=row.approved_count,
        rejected_count=row.rejected_count,
        certificate_count=row.certificate_count,
        decided_at=row.created_at,
    )


# --- certificates -----------------------------------------------------------------------


def list_certificates(
    *, connection: sqlalchemy.Connection, person_id: str, packs: PackRegistry
) -> list[Certificate]:
    """The person's certificates, the newest first (one batch's in the application's order),
    with each disease's name."""
    number = read_resident_id(person_id, "person_id").number
    region = person_region(connection, number)
    rows = connection.execute(
        select(certificates)
        .where(certificates.c.person_id == number)
        .order_by(certificates.c.valid_from.desc(), certificates.c.certificate_id)
    ).all()
    return [
        Certificate(
            certificate_id=row.certificate_id,
            person_id=row.person_id,
            disease=row.disease,
            kind=row.kind,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            application_id=row.application_id,
            disease_name=_disease_name(packs, region, row.valid_from, row.disease),
        )
        for row in rows
    ]


def _disease_name(packs: PackRegistry, region: str, day: date, disease: str) -> str:
    pack = packs.in_force(region, day)
    rules = None if pack is None else pack.certificates
    found = None if rules is None else rules.diseases.get(disease)
    return "" if found is None else found.name

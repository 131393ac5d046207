"""Assistance on application (依申请救助, docs/domain.md section 7): plain functions on a
connection, which the servicer runs through ``read_in_thread`` / ``write_in_thread``.

One window accepts an application with the documents received, those missing and the
date by which each is to come (容缺受理), and the proofs a signed commitment replaces
(承诺制). It is decided within 30 working days of acceptance on the Chinese working
calendar (:mod:`doudi.core.workdays`); a deadline counted in a year the calendar does
not know yet is provisional and counted again at each start of the service
(:func:`recount_provisional`), once the bureau's table knows the year. An undecided
application past its deadline is overdue.

Approving an expenditure_hardship (支出型重病) application, in one transaction: the
status's period (12 months from the decision) is set, the person is queued in
``assertion_deliveries`` for the hub (the sender asserts the status on behalf of civil
affairs, idempotently by the application's reference, until the hub has it), and a
screening of the person's year is requested (``screening_requests``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import sqlalchemy
from sqlalchemy import func, insert, select, update

from doudi.common import outbox, paging
from doudi.common.errors import AlreadyExists, FailedPrecondition, NotFound
from doudi.core.dates import add_years
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.core.monitoring import APPLICATION_KIND_NAMES
from doudi.core.workdays import WorkingCalendar
from services.assistance.tables import (
    application_documents,
    applications,
    assertion_deliveries,
    screening_requests,
)

DECISION_WORKING_DAYS: Final = 30
"""From acceptance to decision, at most (docs/domain.md section 7; it was 60)."""
STATUS_MONTHS: Final = 12
"""How long an expenditure_hardship status certified on approval lasts."""
MAX_ONE_OFF_FEN: Final = 10_000_000
"""The largest one-off amount a decision may approve: 100,000 yuan (assumed, a guard
against a mistyped amount; a region may need it higher)."""

EXPENDITURE_HARDSHIP: Final = "expenditure_hardship"
KINDS: Final = frozenset(APPLICATION_KIND_NAMES)
ACCEPTED: Final = "accepted"
UNDER_REVIEW: Final = "under_review"
APPROVED: Final = "approved"
REFUSED: Final = "refused"
UNDECIDED: Final = (ACCEPTED, UNDER_REVIEW)
SCREENING_REASON: Final = "expenditure_hardship_certified"


@dataclass(frozen=True, slots=True)
class NewApplication:
    """An application as the window accepts it, checked (the servicer reads it)."""

    request_id: str
    person_id: str
    household_id: str
    region: str
    kind: str
    accepted_on: date
    documents_received: tuple[str, ...]
    missing_documents: tuple[tuple[str, date], ...]
    """(name, due_on)."""
    commitments: tuple[str, ...]
    case_worker: str


@dataclass(frozen=True, slots=True)
class MissingDocument:
    name: str
    due_on: date
    supplied_on: date | None


@dataclass(frozen=True, slots=True)
class Application:
    application_id: int
    request_id: str
    person_id: str
    household_id: str
    region: str
    kind: str
    accepted_on: date
    documents_received: tuple[str, ...]
    missing_documents: tuple[MissingDocument, ...]
    commitments: tuple[str, ...]
    case_worker: str
    state: str
    deadline: date
    deadline_provisional: bool
    working_days_left: int
    overdue: bool
    decided_on: date | None
    decision_reason: str | None
    approved_amount_fen: int
    status_valid_from: date | None
    status_valid_to: date | None
    status_certified: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """A case worker's decision, checked."""

    approve: bool
    reason: str
    decided_on: date
    approved_amount_fen: int
    case_worker: str


@dataclass(frozen=True, slots=True)
class Certification:
    """An approved expenditure_hardship status for the hub to record."""

    application_id: int
    person_id: str
    household_id: str
    valid_from: date
    valid_to: date

    @property
    def reference(self) -> str:
        """The hub's reference of the assertion: the same at every send."""
        return f"assistance-application-{self.application_id}"


@dataclass(frozen=True, slots=True)
class Today:
    """What the reading of an application needs: the calendar and the bureau's today."""

    calendar: WorkingCalendar
    day: date


def accept(
    *, connection: sqlalchemy.Connection, application: NewApplication, today: Today
) -> tuple[Application, bool]:
    """Record the application, or answer the one its request id recorded before (True:
    replayed); AlreadyExists when that one differs."""
    stored = _by_request(connection, application.request_id)
    if stored is not None:
        return _replayed(connection, stored, application, today), True
    deadline = today.calendar.add_working_days(application.accepted_on, DECISION_WORKING_DAYS)
    try:
        with connection.begin_nested():
            application_id = connection.execute(
                insert(applications)
                .values(
                    request_id=application.request_id,
                    person_id=application.person_id,
                    household_id=application.household_id,
                    region=application.region,
                    kind=application.kind,
                    accepted_on=application.accepted_on,
                    documents_received=json.dumps(application.documents_received),
                    commitments=json.dumps(application.commitments),
                    case_worker=application.case_worker,
                    state=ACCEPTED if application.missing_documents else UNDER_REVIEW,
                    deadline=deadline.day,
                    deadline_provisional=deadline.provisional,
                    approved_amount_fen=0,
                )
                .returning(applications.c.application_id)
            ).scalar_one()
    except sqlalchemy.exc.IntegrityError:
        # A concurrent retry stored the request id first (PostgreSQL).
        stored = _by_request(connection, application.request_id)
        if stored is None:
            raise
        return _replayed(connection, stored, application, today), True
    if application.missing_documents:
        connection.execute(
            insert(application_documents),
            [
                {"application_id": application_id, "name": name, "due_on": due_on}
                for name, due_on in application.missing_documents
            ],
        )
    return get(connection=connection, application_id=application_id, today=today), False


def get(*, connection: sqlalchemy.Connection, application_id: int, today: Today) -> Application:
    row = connection.execute(
        select(applications).where(applications.c.application_id == application_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no application {application_id}", field="application_id")
    return _application(row, _documents(connection, [application_id])[application_id], today)


def list_applications(
    *,
    connection: sqlalchemy.Connection,
    region: str | None,
    person_id: str | None,
    state: str | None,
    kind: str | None,
    overdue_only: bool,
    page_size: int,
    page_token: str,
    today: Today,
) -> tuple[list[Application], str]:
    """A page of applications (of the region and the person given), oldest first, and the
    next page's token. A person's are read by ``ix_applications_person``."""
    query = select(applications)
    if region is not None:
        query = query.where(applications.c.region == region)
    if person_id is not None:
        query = query.where(applications.c.person_id == person_id)
    if state is not None:
        query = query.where(applications.c.state == state)
    if kind is not None:
        query = query.where(applications.c.kind == kind)
    if overdue_only:
        query = query.where(
            applications.c.state.in_(UNDECIDED), applications.c.deadline < today.day
        )
    rows, token = paging.keyset_page(
        connection, query, applications.c.application_id, page_size, page_token
    )
    documents = _documents(connection, [row.application_id for row in rows])
    return [_application(row, documents[row.application_id], today) for row in rows], token


def decide(
    *,
    connection: sqlalchemy.Connection,
    application_id: int,
    decision: Decision,
    today: Today,
) -> Application:
    """Approve or refuse, once. Approving expenditure_hardship also sets the status's
    period, queues it for the hub and requests screening of the person's year."""
    row = _locked(connection, application_id)
    if row.state not in UNDECIDED:
        raise FailedPrecondition(
            f"application {application_id} is already {row.state} (on {row.decided_on}): "
            "a decision is taken once",
            reason="ALREADY_DECIDED",
            field="application_id",
        )
    if decision.decided_on < row.accepted_on:
        raise InvalidInput(
            "decided_on",
            f"{decision.decided_on.isoformat()} is before the application was accepted "
            f"({row.accepted_on.isoformat()})",
        )
    one_off = row.kind != EXPENDITURE_HARDSHIP
    if decision.approve and one_off and decision.approved_amount_fen == 0:
        raise InvalidInput("approved_amount_fen", f"required to approve {row.kind} assistance")
    if decision.approved_amount_fen and not (decision.approve and one_off):
        raise InvalidInput(
            "approved_amount_fen",
            "only an approval of one-off (temporary or out-of-area) assistance has an amount",
        )
    values: dict[str, Any] = {
        "state": APPROVED if decision.approve else REFUSED,
        "decided_on": decision.decided_on,
        "decided_by": decision.case_worker,
        "decision_reason": decision.reason,
        "approved_amount_fen": decision.approved_amount_fen,
    }
    if decision.approve:
        missing = connection.execute(
            select(application_documents.c.name)
            .where(
                application_documents.c.application_id == application_id,
                application_documents.c.supplied_on.is_(None),
            )
            .order_by(application_documents.c.name)
        ).scalars()
        outstanding = list(missing)
        if outstanding:
            raise FailedPrecondition(
                f"application {application_id} still misses {', '.join(outstanding)}: "
                "approve it once they are supplied, or refuse it",
                reason="DOCUMENTS_MISSING",
                field="application_id",
            )
    if decision.approve and not one_off:
        values["status_valid_from"] = decision.decided_on
        values["status_valid_to"] = status_valid_to(decision.decided_on)
        now = datetime.now(UTC)
        outbox.queue_many(
            connection,
            assertion_deliveries,
            [(row.person_id, application_id)],
            now,
            [outbox.DATASHARE],
        )
        connection.execute(
            insert(screening_requests).values(
                person_id=row.person_id,
                year=decision.decided_on.year,
                reason=SCREENING_REASON,
                source=f"application {application_id}",
                requested_at=now,
            )
        )
    connection.execute(
        update(applications).where(applications.c.application_id == application_id).values(values)
    )
    return get(connection=connection, application_id=application_id, today=today)


def supply(
    *,
    connection: sqlalchemy.Connection,
    application_id: int,
    name: str,
    supplied_on: date,
    today: Today,
) -> Application:
    """Record that a missing document came; the last one puts the application under
    review. Supplying it again on the same day changes nothing."""
    row = _locked(connection, application_id)
    document = connection.execute(
        select(application_documents).where(
            application_documents.c.application_id == application_id,
            application_documents.c.name == name,
        )
    ).one_or_none()
    if document is None:
        raise NotFound(
            f"application {application_id} was not accepted without {name!r}", field="name"
        )
    if document.supplied_on == supplied_on:
        return get(connection=connection, application_id=application_id, today=today)
    if row.state not in UNDECIDED:
        raise FailedPrecondition(
            f"application {application_id} is already {row.state}", field="application_id"
        )
    if document.supplied_on is not None:
        raise FailedPrecondition(
            f"{name!r} was supplied on {document.supplied_on.isoformat()} already", field="name"
        )
    if supplied_on < row.accepted_on:
        raise InvalidInput(
            "supplied_on",
            f"{supplied_on.isoformat()} is before the application was accepted "
            f"({row.accepted_on.isoformat()})",
        )
    connection.execute(
        update(application_documents)
        .where(
            application_documents.c.application_id == application_id,
            application_documents.c.name == name,
        )
        .values(supplied_on=supplied_on)
    )
    still_missing = connection.execute(
        select(func.count())
        .select_from(application_documents)
        .where(
            application_documents.c.application_id == application_id,
            application_documents.c.supplied_on.is_(None),
        )
    ).scalar_one()
    if not still_missing:
        connection.execute(
            update(applications)
            .where(applications.c.application_id == application_id)
            .values(state=UNDER_REVIEW)
        )
    return get(connection=connection, application_id=application_id, today=today)


def recount_provisional(*, connection: sqlalchemy.Connection, calendar: WorkingCalendar) -> int:
    """Count again the provisional deadlines (the calendar may know their year now);
    answer how many changed."""
    rows = connection.execute(
        select(applications.c.application_id, applications.c.accepted_on).where(
            applications.c.deadline_provisional
        )
    ).all()
    changed = 0
    for application_id, accepted_on in rows:
        deadline = calendar.add_working_days(accepted_on, DECISION_WORKING_DAYS)
        if not deadline.provisional:
            changed += 1
        connection.execute(
            update(applications)
            .where(applications.c.application_id == application_id)
            .values(deadline=deadline.day, deadline_provisional=deadline.provisional)
        )
    return changed


def status_valid_to(decided_on: date) -> date:
    """The last day of a status certified on ``decided_on`` for 12 months."""
    return add_years(decided_on, STATUS_MONTHS // 12) - timedelta(days=1)


# --- the hub's copy ------------------------------------------------------------------------


def certifications(
    *, connection: sqlalchemy.Connection, person_ids: Sequence[str]
) -> list[Certification]:
    """The approved expenditure_hardship statuses of the persons, oldest first (all of
    them: the hub records each once, by its reference)."""
    rows = connection.execute(
        select(applications)
        .where(
            applications.c.person_id.in_(person_ids),
            applications.c.kind == EXPENDITURE_HARDSHIP,
            applications.c.state == APPROVED,
        )
        .order_by(applications.c.application_id)
    ).all()
    return [
        Certification(
            application_id=row.application_id,
            person_id=row.person_id,
            household_id=row.household_id,
            valid_from=row.status_valid_from,
            valid_to=row.status_valid_to,
        )
        for row in rows
    ]


def record_certified(
    *, connection: sqlalchemy.Connection, recorded: Sequence[tuple[int, int]]
) -> None:
    """The hub recorded each (application, assertion id)."""
    for application_id, assertion_id in recorded:
        connection.execute(
            update(applications)
            .where(applications.c.application_id == application_id)
            .values(status_assertion_id=assertion_id)
        )


# --- reading -------------------------------------------------------------------------------


def _by_request(connection: sqlalchemy.Connection, request_id: str) -> sqlalchemy.Row[Any] | None:
    return connection.execute(
        select(applications).where(applications.c.request_id == request_id)
    ).one_or_none()


def _replayed(
    connection: sqlalchemy.Connection,
    stored: sqlalchemy.Row[Any],
    application: NewApplication,
    today: Today,
) -> Application:
    same = (
        stored.person_id == application.person_id
        and stored.kind == application.kind
        and stored.accepted_on == application.accepted_on
        and stored.region == application.region
    )
    if not same:
        raise AlreadyExists(
            f"request {application.request_id!r} already accepted application "
            f"{stored.application_id} of {mask(stored.person_id)} with other content",
            field="request_id",
        )
    return get(connection=connection, application_id=stored.application_id, today=today)


def _locked(connection: sqlalchemy.Connection, application_id: int) -> sqlalchemy.Row[Any]:
    """The application's row, locked for the decision (PostgreSQL; SQLite's write lock
    serialises writers anyway)."""
    row = connection.execute(
        select(applications)
        .where(applications.c.application_id == application_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no application {application_id}", field="application_id")
    return row


def _documents(
    connection: sqlalchemy.Connection, application_ids: Sequence[int]
) -> dict[int, list[MissingDocument]]:
    found: dict[int, list[MissingDocument]] = {key: [] for key in application_ids}
    if application_ids:
        for row in connection.execute(
            select(application_documents)
            .where(application_documents.c.application_id.in_(application_ids))
            .order_by(application_documents.c.application_id, application_documents.c.due_on)
        ):
            found[row.application_id].append(MissingDocument(row.name, row.due_on, row.supplied_on))
    return found


def _application(
    row: sqlalchemy.Row[Any], documents: list[MissingDocument], today: Today
) -> Application:
    undecided = row.state in UNDECIDED
    left = today.calendar.working_days_between(today.day, row.deadline) if undecided else 0
    return Application(
        application_id=row.application_id,
        request_id=row.request_id,
        person_id=row.person_id,
        household_id=row.household_id,
        region=row.region,
        kind=row.kind,
        accepted_on=row.accepted_on,
        documents_received=tuple(json.loads(row.documents_received)),
        missing_documents=tuple(documents),
        commitments=tuple(json.loads(row.commitments)),
        case_worker=row.case_worker,
        state=row.state,
        deadline=row.deadline,
        deadline_provisional=bool(row.deadline_provisional),
        working_days_left=left,
        overdue=undecided and today.day > row.deadline,
        decided_on=row.decided_on,
        decision_reason=row.decision_reason,
        approved_amount_fen=row.approved_amount_fen,
        status_valid_from=row.status_valid_from,
        status_valid_to=row.status_valid_to,
        status_certified=row.status_assertion_id is not None,
    )

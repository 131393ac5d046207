"""Agencies' rosters: a full roster replaces the agency's previous one of the region, and
the difference becomes assertions and revocations in the registry.

A submission arrives in batches (:func:`begin`, :func:`add_rows`, :func:`finish`):
rows are checked one by one (a bad row is reported by its line and not stored;
the others count), accepted rows wait in ``roster_rows`` under the receiving
submission, and :func:`finish` records the difference in one transaction:

* a person's status new on the roster: an assertion from the row's valid-from;
* its period or household changed: a new assertion (the later record decides);
* a person's status no longer on the roster: a revocation from the roster's date;
* the same roster again (same rows, same date): nothing; the stored submission
  is answered.

The superseded roster's rows are then dropped: the registry keeps the history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import and_, exists, func, insert, literal, select

from doudi.common import outbox, paging
from doudi.common.db import bulk_insert, write_transaction
from doudi.common.errors import NotFound, PermissionDenied
from doudi.core.errors import InvalidInput
from doudi.core.identity import parse_resident_id
from doudi.core.statuses import ASSERT, REVOKE, check_period, owns
from services.datashare import service
from services.datashare.tables import (
    roster_rows,
    roster_submissions,
    status_assertions,
    status_deliveries,
)

MAX_ROWS_PER_MESSAGE = 10_000

RECEIVING = "receiving"
CURRENT = "current"
SUPERSEDED = "superseded"
ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class RosterRow:
    """A row as received; ``status`` None when the status is not one the hub knows, and
    ``problem`` set when a value could not even be read (an impossible date)."""

    line: int
    person_id: str
    name: str
    household_id: str
    status: str | None
    valid_from: date | None
    valid_to: date | None
    reference: str
    problem: InvalidInput | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str
    reason: str
    code: str = "INVALID_ARGUMENT"
    """As a call recording the row alone would be refused (``PERMISSION_DENIED``...)."""


@dataclass(frozen=True, slots=True)
class Submission:
    submission_id: int
    agency: str
    region: str
    as_of: date
    state: str
    row_count: int
    accepted_count: int
    rejected_count: int
    asserted_count: int
    changed_count: int
    revoked_count: int
    unchanged_count: int
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class Finished:
    submission: Submission
    replayed: bool
    """The same roster again: nothing recorded."""
    first_persons: list[str]
    """The first persons whose statuses changed (a batch to send before answering)."""


@dataclass
class Receiving:
    """What the server keeps of a submission while its rows arrive."""

    submission_id: int
    agency: str
    seen: set[str]
    digest: int = 0
    row_count: int = 0
    accepted_count: int = 0


def check_region(region: str, regions: frozenset[str], field: str = "header.region") -> None:
    if region not in regions:
        raise InvalidInput(
            field,
            f"{region!r} is not a pooling region with a policy pack "
            f"(known: {', '.join(sorted(regions))})",
        )


def begin(engine: sqlalchemy.Engine, *, agency: str, region: str, as_of: date) -> Receiving:
    """Open a submission whose rows are about to arrive."""
    with write_transaction(engine) as connection:
        submission_id = connection.execute(
            insert(roster_submissions)
            .values(
                agency=agency,
                region=region,
                as_of=as_of,
                state=RECEIVING,
                submitted_at=datetime.now(UTC),
            )
            .returning(roster_submissions.c.submission_id)
        ).scalar_one()
    return Receiving(submission_id, agency, set())


def add_rows(
    engine: sqlalchemy.Engine, receiving: Receiving, rows: list[RosterRow]
) -> list[Rejection]:
    """Check a batch of rows and store those accepted; answer the rejections."""
    if len(rows) > MAX_ROWS_PER_MESSAGE:
        raise InvalidInput("rows", f"at most {MAX_ROWS_PER_MESSAGE} rows per message")
    rejections: list[Rejection] = []
    accepted: list[dict[str, Any]] = []
    for row in rows:
        receiving.row_count += 1
        try:
            values = _checked(row, receiving.agency)
        except InvalidInput as error:
            rejections.append(Rejection(row.line, error.field, error.message))
            continue
        except PermissionDenied as error:
            rejections.append(Rejection(row.line, error.field, error.message, error.reason))
            continue
        key = f"{values['person_id']}/{values['status']}"
        if key in receiving.seen:
            rejections.append(
                Rejection(row.line, "person_id", "this person's status is on an earlier row")
            )
            continue
        receiving.seen.add(key)
        receiving.digest = (receiving.digest + _row_hash(values)) % (1 << 128)
        accepted.append(values)
    if accepted:
        with write_transaction(engine) as connection:
            bulk_insert(
                connection,
                roster_rows,
                [{**values, "submission_id": receiving.submission_id} for values in accepted],
            )
    receiving.accepted_count += len(accepted)
    return rejections


def abandon(engine: sqlalchemy.Engine, submission_id: int) -> None:
    """The stream broke off: drop the rows received, keep the submission as abandoned."""
    with write_transaction(engine) as connection:
        connection.execute(roster_rows.delete().where(roster_rows.c.submission_id == submission_id))
        connection.execute(
            roster_submissions.update()
            .where(roster_submissions.c.submission_id == submission_id)
            .values(state=ABANDONED)
        )


def finish(engine: sqlalchemy.Engine, receiving: Receiving) -> Finished:
    """Record the difference from the agency's current roster of the region."""
    new_id = receiving.submission_id
    digest = f"{receiving.digest:032x}"
    now = datetime.now(UTC)
    with write_transaction(engine) as connection:
        submission = _submission(connection, new_id, None)
        previous = connection.execute(
            select(roster_submissions).where(
                roster_submissions.c.agency == submission.agency,
                roster_submissions.c.region == submission.region,
                roster_submissions.c.state == CURRENT,
            )
        ).one_or_none()
        if (
            previous is not None
            and previous.digest == digest
            and previous.as_of == submission.as_of
        ):
            connection.execute(roster_rows.delete().where(roster_rows.c.submission_id == new_id))
            connection.execute(
                roster_submissions.delete().where(roster_submissions.c.submission_id == new_id)
            )
            return Finished(_submission(connection, previous.submission_id, None), True, [])
        previous_id = None if previous is None else previous.submission_id
        asserted = _assert_new(connection, submission, previous_id, now, changed=False)
        changed = _assert_new(connection, submission, previous_id, now, changed=True)
        revoked = _revoke_gone(connection, submission, previous_id, now)
        # Every person whose records changed goes to settlement, versioned by the latest.
        changed_persons = (
            select(status_assertions.c.person_id, func.max(status_assertions.c.assertion_id))
            .where(status_assertions.c.submission_id == new_id)
            .group_by(status_assertions.c.person_id)
        )
        outbox.queue_selected(
            connection, status_deliveries, changed_persons, now, service.SUBSCRIBERS
        )
        first = connection.execute(
            select(status_assertions.c.person_id)
            .where(status_assertions.c.submission_id == new_id)
            .distinct()
            .limit(outbox.BATCH)
        ).scalars()
        first_persons = list(first)
        if previous_id is not None:
            connection.execute(
                roster_rows.delete().where(roster_rows.c.submission_id == previous_id)
            )
            connection.execute(
                roster_submissions.update()
                .where(roster_submissions.c.submission_id == previous_id)
                .values(state=SUPERSEDED)
            )
        connection.execute(
            roster_submissions.update()
            .where(roster_submissions.c.submission_id == new_id)
            .values(
                state=CURRENT,
                digest=digest,
                row_count=receiving.row_count,
                accepted_count=receiving.accepted_count,
                rejected_count=receiving.row_count - receiving.accepted_count,
                asserted_count=asserted,
                changed_count=changed,
                revoked_count=revoked,
                unchanged_count=receiving.accepted_count - asserted - changed,
            )
        )
        return Finished(
            _submission(connection, new_id, None),
            False,
            first_persons,
        )


def _assert_new(
    connection: sqlalchemy.Connection,
    submission: Submission,
    previous_id: int | None,
    now: datetime,
    *,
    changed: bool,
) -> int:
    """Assertions for the rows new on the roster (or, ``changed``, whose period or
    household differ from the previous roster's row); answers how many."""
    new = roster_rows.alias("new")
    old = roster_rows.alias("old")
    joined = new.outerjoin(
        old,
        and_(
            old.c.submission_id == (previous_id if previous_id is not None else -1),
            old.c.person_id == new.c.person_id,
            old.c.status == new.c.status,
        ),
    )
    if changed:
        which = and_(
            old.c.person_id.is_not(None),
            (old.c.valid_from != new.c.valid_from)
            | old.c.valid_to.is_distinct_from(new.c.valid_to)
            | (old.c.household_id != new.c.household_id),
        )
    else:
        which = old.c.person_id.is_(None)
    rows = (
        select(
            literal(ASSERT),
            new.c.person_id,
            new.c.household_id,
            new.c.status,
            literal(submission.agency),
            new.c.valid_from,
            new.c.valid_to,
            new.c.reference,
            literal(now, status_assertions.c.recorded_at.type),
            literal(submission.submission_id),
        )
        .select_from(joined)
        .where(new.c.submission_id == submission.submission_id, which)
        .order_by(new.c.line)
    )
    return _recorded(connection, submission.submission_id, rows)


def _revoke_gone(
    connection: sqlalchemy.Connection,
    submission: Submission,
    previous_id: int | None,
    now: datetime,
) -> int:
    """Revocations, from the roster's date, of the previous roster's rows not on this one."""
    if previous_id is None:
        return 0
    old = roster_rows.alias("old")
    new = roster_rows.alias("new")
    still = exists().where(
        new.c.submission_id == submission.submission_id,
        new.c.person_id == old.c.person_id,
        new.c.status == old.c.status,
    )
    rows = (
        select(
            literal(REVOKE),
            old.c.person_id,
            literal(None, old.c.household_id.type),
            old.c.status,
            literal(submission.agency),
            literal(submission.as_of, old.c.valid_from.type),
            literal(None, old.c.valid_to.type),
            old.c.reference,
            literal(now, status_assertions.c.recorded_at.type),
            literal(submission.submission_id),
        )
        .where(old.c.submission_id == previous_id, ~still)
        .order_by(old.c.line)
    )
    return _recorded(connection, submission.submission_id, rows)


def _recorded(
    connection: sqlalchemy.Connection, submission_id: int, rows: sqlalchemy.Select[Any]
) -> int:
    """Insert the records ``rows`` selects; answer how many (counted, because drivers do
    not all report the row count of an INSERT ... SELECT)."""
    count = select(func.count()).where(status_assertions.c.submission_id == submission_id)
    before = connection.execute(count).scalar_one()
    connection.execute(insert(status_assertions).from_select(_RECORD_COLUMNS, rows))
    return int(connection.execute(count).scalar_one() - before)


_RECORD_COLUMNS = [
    "kind",
    "person_id",
    "household_id",
    "status",
    "agency",
    "valid_from",
    "valid_to",
    "reference",
    "recorded_at",
    "submission_id",
]


# -- reads ----------------------------------------------------------------------


def get(engine: sqlalchemy.Engine, *, submission_id: int, agency: str | None) -> Submission:
    """One submission; another agency's answers NOT_FOUND, as an unknown id does. An
    agency's read is audited."""
    with service.agency_read(engine, agency) as connection:
        submission = _submission(connection, submission_id, agency)
        if agency is None:
            return submission
        service.record_reads(
            connection,
            agency=agency,
            method="GetRosterSubmission",
            purpose="",
            subject=f"roster submission {submission_id}",
        )
        return submission


def list_submissions(
    engine: sqlalchemy.Engine,
    *,
    agency: str | None,
    region: str,
    page_size: int,
    page_token: str,
) -> tuple[list[Submission], str]:
    """Submissions newest first (``agency``'s own, or all for the platform)."""
    query = select(roster_submissions).where(roster_submissions.c.state != RECEIVING)
    if agency is not None:
        query = query.where(roster_submissions.c.agency == agency)
    if region:
        query = query.where(roster_submissions.c.region == region)
    with service.agency_read(engine, agency) as connection:
        rows, token = paging.keyset_page(
            connection,
            query,
            roster_submissions.c.submission_id,
            page_size,
            page_token,
            newest_first=True,
        )
        if agency is not None:
            service.record_reads(
                connection,
                agency=agency,
                method="ListRosterSubmissions",
                purpose="",
                subject="roster submissions" + (f" of {region}" if region else ""),
            )
    return [_from_row(row) for row in rows], token


def _submission(
    connection: sqlalchemy.Connection, submission_id: int, agency: str | None
) -> Submission:
    query = select(roster_submissions).where(roster_submissions.c.submission_id == submission_id)
    if agency is not None:
        query = query.where(roster_submissions.c.agency == agency)
    row = connection.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"no roster submission {submission_id}", field="submission_id")
    return _from_row(row)


def _from_row(row: sqlalchemy.Row[Any]) -> Submission:
    values = row._asdict()
    values.pop("digest")
    return Submission(**{**values, "submitted_at": service.utc(row.submitted_at)})


# -- rows -----------------------------------------------------------------------


def _checked(row: RosterRow, agency: str) -> dict[str, Any]:
    """The row's values to store, or InvalidInput naming the field at fault."""
    if row.problem is not None:
        raise row.problem
    try:
        person_id = parse_resident_id(row.person_id).number
    except ValueError as error:
        raise InvalidInput("person_id", str(error)) from None
    if row.status is None:
        raise InvalidInput("status", "required: a status the hub knows")
    if not owns(agency, row.status):
        raise PermissionDenied(f"{agency} may not certify {row.status}", field="status")
    if row.valid_from is None:
        raise InvalidInput("valid_from", "required")
    check_period(row.valid_from, row.valid_to)
    return {
        "person_id": person_id,
        "status": row.status,
        "line": row.line,
        "name": service.text_field(row.name, "name"),
        "household_id": service.text_field(row.household_id, "household_id"),
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "reference": service.text_field(row.reference, "reference"),
    }


def _row_hash(values: dict[str, Any]) -> int:
    """A row's contribution to the roster's digest (a sum, so row order does not matter)."""
    text = "\x1f".join(
        str(values[name])
        for name in (
            "person_id",
            "status",
            "name",
            "household_id",
            "valid_from",
            "valid_to",
            "reference",
        )
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")

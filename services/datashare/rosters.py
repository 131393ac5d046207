"""Agencies' rosters: a full roster replaces the agency's previous one of the region, and
the difference becomes assertions and revocations in the registry.

A submission arrives in batches, each step a handler on a connection of its own
transaction, which the servicer runs as the stream goes (:func:`begin`, then
:func:`checked_rows` and :func:`store_rows` for each message, :func:`finish`, or
:func:`abandon` when the stream breaks): rows are checked one by one (a bad row is
reported by its line and not stored; the others count), accepted rows wait in
``received_rows`` as they came, and :func:`finish` moves them into ``roster_rows``
in key order and records the difference in one transaction:

* a person's status new on the roster: an assertion from the row's valid-from;
* its period or household changed: a new assertion (the later record decides);
* a person's status no longer on the roster: a revocation from the roster's date;
* the same roster again (same rows, same date): nothing; the stored submission
  is answered.

The superseded roster's rows are then dropped: the registry keeps the history.

All or nothing: the roster becomes current only in :func:`finish`'s transaction, which
the servicer runs once the stream's end has arrived and matches the rows received; a
stream that breaks off is abandoned and leaves the current roster as it was. A roster
that would revoke more than ``revocation_limit_percent`` of the agency's current roster
of the region, or that has no accepted row, is refused (and so rolled back) unless the
clerk confirmed exactly the number of revocations it makes; a preview does all of it in
a savepoint that is rolled back, and answers what would have changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import sqlalchemy
from sqlalchemy import and_, exists, func, insert, literal, select

from doudi.common import outbox, paging
from doudi.common.db import bulk_insert
from doudi.common.errors import Aborted, FailedPrecondition, NotFound, PermissionDenied
from doudi.common.roster_stream import RowsDigest
from doudi.core.errors import InvalidInput
from doudi.core.identity import resident_id_number
from doudi.core.statuses import ASSERT, REVOKE, check_period, owned_statuses
from services.datashare import service
from services.datashare.tables import (
    received_rows,
    roster_deliveries,
    roster_rows,
    roster_submissions,
    status_assertions,
)

MAX_ROWS_PER_MESSAGE = 10_000

RECEIVING = "receiving"
CURRENT = "current"
SUPERSEDED = "superseded"
ABANDONED = "abandoned"
PREVIEWED = "previewed"
"""A preview's answer only: a previewed submission is not kept."""


class RosterRow(NamedTuple):
    """A row as received; ``status`` None when the status is not one the hub knows, and
    ``problem`` set when a value could not even be read (an impossible date). A tuple:
    a roster brings a million."""

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
    records_from: int | None = None
    records_to: int | None = None
    """The range of assertion ids its records have (see ``roster_submissions``)."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """A status the roster revokes: the previous roster's row of it."""

    person_id: str
    name: str
    status: str
    reference: str
    previous_line: int
    previous_submission_id: int


@dataclass(frozen=True, slots=True)
class Finished:
    submission: Submission
    replayed: bool
    """The same roster again: nothing recorded."""
    first_persons: list[str]
    """The first persons whose statuses changed (a batch to send before answering)."""
    first_until: str | None = None
    """The position in the walk of the roster's persons after ``first_persons`` (None: they
    are all of them; see :func:`changed_persons`)."""
    revocations: list[Revocation] = field(default_factory=list)
    """Every status the roster revoked (or, previewed, would revoke), by person."""


@dataclass
class Receiving:
    """What the server keeps of a submission while its rows arrive."""

    submission_id: int
    agency: str
    owned: frozenset[str]
    """The statuses the agency certifies."""
    preview: bool = False
    """Answer what the roster would change and store nothing."""
    confirmed_revocations: int | None = None
    """The number of revocations the clerk accepts (None: not given)."""
    revocation_limit_percent: int = 5
    """More revocations than this share of the current roster need the clerk's
    confirmation."""
    seen: set[str] = field(default_factory=set)
    """The person and status of each accepted row (a second row of them is rejected)."""
    digest: RowsDigest = field(default_factory=RowsDigest)
    """The count and digest of every row received, for the stream's end to match."""
    row_count: int = 0
    accepted_count: int = 0


def check_region(region: str, regions: frozenset[str], field: str = "header.region") -> None:
    if region not in regions:
        raise InvalidInput(
            field,
            f"{region!r} is not a pooling region with a policy pack "
            f"(known: {', '.join(sorted(regions))})",
        )


def begin(
    *,
    connection: sqlalchemy.Connection,
    agency: str,
    region: str,
    as_of: date,
    preview: bool = False,
    confirmed_revocations: int | None = None,
    revocation_limit_percent: int = 5,
) -> Receiving:
    """Open a submission whose rows are about to arrive."""
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
    return Receiving(
        submission_id,
        agency,
        owned_statuses(agency),
        preview=preview,
        confirmed_revocations=confirmed_revocations,
        revocation_limit_percent=revocation_limit_percent,
    )


def checked_rows(
    receiving: Receiving, rows: list[RosterRow]
) -> tuple[list[tuple[Any, ...]], list[Rejection]]:
    """Check a batch of rows (no database: outside any transaction, so that a writer
    waits for none of it): the accepted rows' values for :func:`store_rows`, and the
    rejections. The submission's counts include the batch."""
    if len(rows) > MAX_ROWS_PER_MESSAGE:
        raise InvalidInput("rows", f"at most {MAX_ROWS_PER_MESSAGE} rows per message")
    rejections: list[Rejection] = []
    accepted: list[tuple[Any, ...]] = []
    seen = receiving.seen
    for row in rows:
        try:
            values = _checked(row, receiving)
        except InvalidInput as error:
            rejections.append(Rejection(row.line, error.field, error.message))
            continue
        except PermissionDenied as error:
            rejections.append(Rejection(row.line, error.field, error.message, error.reason))
            continue
        key = values[1] + values[2]  # the person, then the status
        if key in seen:
            rejections.append(
                Rejection(row.line, "person_id", "this person's status is on an earlier row")
            )
            continue
        seen.add(key)
        accepted.append(values)
    receiving.row_count += len(rows)
    receiving.accepted_count += len(accepted)
    return accepted, rejections


def store_rows(*, connection: sqlalchemy.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Append accepted rows (:func:`checked_rows`) to ``received_rows``."""
    bulk_insert(connection, received_rows, _STORED_COLUMNS, rows)


def abandon(*, connection: sqlalchemy.Connection, submission_id: int) -> None:
    """The stream broke off: drop the rows received, keep the submission as abandoned."""
    connection.execute(received_rows.delete().where(received_rows.c.submission_id == submission_id))
    connection.execute(
        roster_submissions.update()
        .where(roster_submissions.c.submission_id == submission_id)
        .values(state=ABANDONED)
    )


def abandon_stale(*, connection: sqlalchemy.Connection, opened_before: datetime) -> int:
    """Abandon the submissions opened before ``opened_before`` that are still receiving
    rows (streams cut by a killed process, or left open), and drop the received rows of
    every submission no longer receiving; answer how many were abandoned."""
    abandoned = connection.execute(
        roster_submissions.update()
        .where(
            roster_submissions.c.state == RECEIVING,
            roster_submissions.c.submitted_at < opened_before,
        )
        .values(state=ABANDONED)
    ).rowcount
    # Rows still arriving for an abandoned submission are dropped at the next round.
    connection.execute(
        received_rows.delete().where(
            received_rows.c.submission_id.not_in(
                select(roster_submissions.c.submission_id).where(
                    roster_submissions.c.state == RECEIVING
                )
            )
        )
    )
    return int(abandoned)


def finish(*, connection: sqlalchemy.Connection, receiving: Receiving) -> Finished:
    """Record the difference from the agency's current roster of the region, in the
    caller's write transaction; a preview does it all in a savepoint rolled back at the
    end, and drops the submission and its rows."""
    new_id = receiving.submission_id
    # Locked (on PostgreSQL) against abandon_stale until this transaction ends.
    submission = _from_row(
        connection.execute(
            select(roster_submissions)
            .where(roster_submissions.c.submission_id == new_id)
            .with_for_update()
        ).one()
    )
    if submission.state != RECEIVING:
        raise Aborted(
            f"roster submission {new_id} was abandoned while its rows were arriving: "
            "the stream stayed open longer than the hub allows; submit the roster again",
            reason="ROSTER_ABANDONED",
        )
    if not receiving.preview:
        return _record(connection, receiving, submission)
    savepoint = connection.begin_nested()
    finished = _record(connection, receiving, submission)
    savepoint.rollback()
    connection.execute(received_rows.delete().where(received_rows.c.submission_id == new_id))
    connection.execute(
        roster_submissions.delete().where(roster_submissions.c.submission_id == new_id)
    )
    if finished.replayed:
        return finished
    previewed = replace(finished.submission, submission_id=0, state=PREVIEWED)
    return Finished(previewed, False, [], None, finished.revocations)


def _record(
    connection: sqlalchemy.Connection, receiving: Receiving, submission: Submission
) -> Finished:
    new_id = receiving.submission_id
    now = datetime.now(UTC)
    _move_received(connection, new_id)
    previous = connection.execute(
        select(roster_submissions).where(
            roster_submissions.c.agency == submission.agency,
            roster_submissions.c.region == submission.region,
            roster_submissions.c.state == CURRENT,
        )
    ).one_or_none()
    if previous is not None and _same_roster(
        connection, previous, new_id, submission.as_of, receiving.accepted_count
    ):
        connection.execute(roster_rows.delete().where(roster_rows.c.submission_id == new_id))
        connection.execute(
            roster_submissions.delete().where(roster_submissions.c.submission_id == new_id)
        )
        return Finished(_submission(connection, previous.submission_id, None), True, [])
    previous_id = None if previous is None else previous.submission_id
    records_from = _last_record(connection) + 1
    revocations: list[Revocation] = []
    if previous_id is None:  # the agency's first roster of the region: all new
        asserted, changed, revoked = _assert_all(connection, submission, now), 0, 0
    else:
        asserted = _assert_new(connection, submission, previous_id, now, changed=False)
        changed = _assert_new(connection, submission, previous_id, now, changed=True)
        before_revocations = _last_record(connection)
        revoked = _revoke_gone(connection, submission, previous_id, now)
        if revoked:
            revocations = _revocations(connection, new_id, before_revocations, previous_id)
    _check_revocations(receiving, 0 if previous is None else previous.accepted_count, revoked)
    records_to = _last_record(connection)
    if previous_id is not None:
        connection.execute(roster_rows.delete().where(roster_rows.c.submission_id == previous_id))
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
            records_from=records_from,
            records_to=records_to,
            row_count=receiving.row_count,
            accepted_count=receiving.accepted_count,
            rejected_count=receiving.row_count - receiving.accepted_count,
            asserted_count=asserted,
            changed_count=changed,
            revoked_count=revoked,
            unchanged_count=receiving.accepted_count - asserted - changed,
        )
    )
    if receiving.preview:  # rolled back: nothing to send
        return Finished(_submission(connection, new_id, None), False, [], None, revocations)
    # Every person the roster changed goes to settlement: one row queues them all.
    outbox.queue_set(connection, roster_deliveries, new_id, now, service.SUBSCRIBERS)
    first_persons, first_until = changed_persons(connection, new_id, "", outbox.BATCH)
    return Finished(
        _submission(connection, new_id, None), False, first_persons, first_until, revocations
    )


def _check_revocations(receiving: Receiving, current_rows: int, revoked: int) -> None:
    """Refuse (FailedPrecondition) a roster that revokes more than the limit's share of
    the ``current_rows`` of the agency's current roster, or has no accepted row, unless
    the clerk confirmed exactly its number of revocations; and any roster whose number
    of revocations is not the one confirmed. A preview is never refused."""
    if receiving.preview:
        return
    confirmed = receiving.confirmed_revocations
    counts = {"revocations": str(revoked), "current_rows": str(current_rows)}
    if confirmed is not None:
        if confirmed != revoked:
            raise FailedPrecondition(
                f"the roster revokes {revoked:,} statuses, not the {confirmed:,} confirmed: "
                "nothing was stored; preview it to see whose",
                reason="REVOCATIONS_NOT_AS_CONFIRMED",
                field="header.confirmed_revocations",
                metadata=counts,
            )
        return
    if receiving.accepted_count == 0:
        raise FailedPrecondition(
            f"the roster has no accepted row: it would revoke every status on the agency's "
            f"current roster of the region ({revoked:,}); nothing was stored. If that is "
            f"meant, confirm {revoked:,} revocations",
            reason="NO_ACCEPTED_ROWS",
            metadata=counts,
        )
    limit = receiving.revocation_limit_percent
    if revoked * 100 > limit * current_rows:
        tenths = (revoked * 1000 + current_rows // 2) // current_rows
        raise FailedPrecondition(
            f"the roster would revoke {revoked:,} of the {current_rows:,} statuses on the "
            f"agency's current roster of the region ({tenths // 10}.{tenths % 10}%), more "
            f"than the {limit}% the hub takes unconfirmed; nothing was stored. Preview it "
            f"to see whose, and confirm {revoked:,} revocations if that is meant",
            reason="MASS_REVOCATION",
            metadata={**counts, "limit_percent": str(limit)},
        )


def _revocations(
    connection: sqlalchemy.Connection, new_id: int, after: int, previous_id: int
) -> list[Revocation]:
    """The revocations roster ``new_id`` just recorded (assertion ids above ``after``: the
    range keeps the lookup to the primary key), each with the
    previous roster's row it ends (its name and line): looked up by key, not found again
    by comparing the two rosters."""
    records = status_assertions.c
    old = roster_rows.alias("old")
    rows = connection.execute(
        select(old.c.person_id, old.c.name, old.c.status, old.c.reference, old.c.line)
        .select_from(
            status_assertions.join(
                old,
                and_(
                    old.c.submission_id == previous_id,
                    old.c.person_id == records.person_id,
                    old.c.status == records.status,
                ),
            )
        )
        .where(
            records.assertion_id > after,
            records.submission_id == new_id,
            records.kind == REVOKE,
        )
        .order_by(records.assertion_id)
    )
    return [Revocation(*row, previous_id) for row in rows]


def changed_persons(
    connection: sqlalchemy.Connection, submission_id: int, after: str, limit: int
) -> tuple[list[str], str | None]:
    """The persons of the roster's next ``limit`` records after position ``after`` ("": from
    the first), and the position after them (None: the roster's records end there): the
    set of persons ``roster_deliveries`` queues (see :class:`doudi.common.outbox.Sets`).
    Records are walked in recording order through the roster's range of assertion ids; a
    person with several records may come in two batches."""
    span = connection.execute(
        select(roster_submissions.c.records_from, roster_submissions.c.records_to).where(
            roster_submissions.c.submission_id == submission_id
        )
    ).one_or_none()
    if span is None or span.records_from is None:
        return [], None
    records = status_assertions.c
    rows = connection.execute(
        select(records.assertion_id, records.person_id)
        .where(
            records.assertion_id > (int(after) if after else span.records_from - 1),
            records.assertion_id <= span.records_to,
            records.submission_id == submission_id,
        )
        .order_by(records.assertion_id)
        .limit(limit)
    ).all()
    persons = list(dict.fromkeys(row.person_id for row in rows))
    return persons, (str(rows[-1].assertion_id) if len(rows) == limit else None)


def _last_record(connection: sqlalchemy.Connection) -> int:
    """The highest assertion id recorded (0 before the first): a roster's records, drawn
    from the sequence after it, all lie above."""
    return int(
        connection.execute(
            select(func.coalesce(func.max(status_assertions.c.assertion_id), 0))
        ).scalar_one()
    )


def _move_received(connection: sqlalchemy.Connection, submission_id: int) -> None:
    """The roster's rows from received_rows into roster_rows, in roster_rows' key order
    (each page of the key written once)."""
    received = received_rows.c
    connection.execute(
        insert(roster_rows).from_select(
            _STORED_COLUMNS,
            select(*(received[name] for name in _STORED_COLUMNS))
            .where(received.submission_id == submission_id)
            .order_by(received.person_id, received.status),
        )
    )
    connection.execute(received_rows.delete().where(received.submission_id == submission_id))


def _same_roster(
    connection: sqlalchemy.Connection,
    previous: sqlalchemy.Row[Any],
    new_id: int,
    as_of: date,
    accepted: int,
) -> bool:
    """Whether the rows received are the previous roster's, in whatever order, as of the
    same date: the same roster again."""
    if previous.as_of != as_of or previous.accepted_count != accepted:
        return False
    new = roster_rows.alias("new")
    old = roster_rows.alias("old")
    same = new.join(
        old,
        and_(
            old.c.submission_id == previous.submission_id,
            old.c.person_id == new.c.person_id,
            old.c.status == new.c.status,
            old.c.name == new.c.name,
            old.c.household_id == new.c.household_id,
            old.c.valid_from == new.c.valid_from,
            old.c.valid_to.is_not_distinct_from(new.c.valid_to),
            old.c.reference == new.c.reference,
        ),
    )
    matching = connection.execute(
        select(func.count()).select_from(same).where(new.c.submission_id == new_id)
    ).scalar_one()
    # Persons and statuses are unique on a roster: as many matches as rows is every row.
    return bool(matching == accepted)


def _assert_all(connection: sqlalchemy.Connection, submission: Submission, now: datetime) -> int:
    """An assertion for every row (the roster replaces none); answers how many. Records
    are written in the order of the roster's key (each person's, front to back in the
    index of persons' records), not of its lines."""
    rows = (
        select(*_record_values(roster_rows, submission, now))
        .where(roster_rows.c.submission_id == submission.submission_id)
        .order_by(roster_rows.c.person_id, roster_rows.c.status)
    )
    return _recorded(connection, rows)


def _assert_new(
    connection: sqlalchemy.Connection,
    submission: Submission,
    previous_id: int,
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
            old.c.submission_id == previous_id,
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
        select(*_record_values(new, submission, now))
        .select_from(joined)
        .where(new.c.submission_id == submission.submission_id, which)
        .order_by(new.c.person_id, new.c.status)
    )
    return _recorded(connection, rows)


def _record_values(new: sqlalchemy.FromClause, submission: Submission, now: datetime) -> list[Any]:
    """The values of the assertion of a roster row (``_RECORD_COLUMNS``)."""
    return [
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
    ]


def _revoke_gone(
    connection: sqlalchemy.Connection,
    submission: Submission,
    previous_id: int,
    now: datetime,
) -> int:
    """Revocations, from the roster's date, of the previous roster's rows not on this one."""
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
        .order_by(old.c.person_id, old.c.status)
    )
    return _recorded(connection, rows)


def _recorded(connection: sqlalchemy.Connection, rows: sqlalchemy.Select[Any]) -> int:
    """Insert the records ``rows`` selects; answer how many."""
    inserted = connection.execute(
        insert(status_assertions).from_select(_RECORD_COLUMNS, rows),
        execution_options={"preserve_rowcount": True},
    )
    return int(inserted.rowcount)


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


def get(*, connection: sqlalchemy.Connection, submission_id: int, agency: str | None) -> Submission:
    """One submission; another agency's answers NOT_FOUND, as an unknown id does. An
    agency's read is audited."""
    submission = _submission(connection, submission_id, agency)
    service.record_subject_read(
        connection, agency, "GetRosterSubmission", f"roster submission {submission_id}"
    )
    return submission


def list_submissions(
    *,
    connection: sqlalchemy.Connection,
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
    rows, token = paging.keyset_page(
        connection,
        query,
        roster_submissions.c.submission_id,
        page_size,
        page_token,
        newest_first=True,
    )
    service.record_subject_read(
        connection,
        agency,
        "ListRosterSubmissions",
        "roster submissions" + (f" of {region}" if region else ""),
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
    return Submission(**{**row._asdict(), "submitted_at": service.utc(row.submitted_at)})


# -- rows -----------------------------------------------------------------------

_STORED_COLUMNS = (
    "submission_id",
    "person_id",
    "status",
    "line",
    "name",
    "household_id",
    "valid_from",
    "valid_to",
    "reference",
)


def _checked(row: RosterRow, receiving: Receiving) -> tuple[Any, ...]:
    """The row's values to store (in ``_STORED_COLUMNS`` order), or InvalidInput naming the
    field at fault (PermissionDenied for a status the agency does not certify)."""
    if row.problem is not None:
        raise row.problem
    try:
        person_id = resident_id_number(row.person_id)
    except ValueError as error:
        raise InvalidInput("person_id", str(error)) from None
    status = row.status
    if status is None:
        raise InvalidInput("status", "required: a status the hub knows")
    if status not in receiving.owned:
        raise PermissionDenied(f"{receiving.agency} may not certify {status}", field="status")
    if row.valid_from is None:
        raise InvalidInput("valid_from", "required")
    check_period(row.valid_from, row.valid_to)
    return (
        receiving.submission_id,
        person_id,
        status,
        row.line,
        service.text_field(row.name, "name"),
        service.text_field(row.household_id, "household_id"),
        row.valid_from,
        row.valid_to,
        service.text_field(row.reference, "reference"),
    )

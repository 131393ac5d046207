"""The settlement service's handlers: plain functions on a database connection.

No gRPC here: ``server.py`` checks each request (the calling hospital, the visit)
and runs these in a worker thread on a connection from
:func:`doudi.common.db.read_in_thread` or :func:`~doudi.common.db.write_in_thread`.

A settlement is one transaction: lock the person's ledger row (reading, in the
same statement, the person's statuses as the datashare hub last sent them),
settle with the engine on the accumulators read under that lock, insert the
settlement, one clearing record per paying fund and its event for the assistance
service (``event_outbox``, see delivery.py), write the ledger back. A reversal
queues its event in its own transaction the same way. Two
settlements of the same person therefore run one after the other, and a yearly
cap holds however many arrive at once; different persons never wait for each
other.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

import orjson
import sqlalchemy
from sqlalchemy import JSON, BigInteger, Integer, String, bindparam, column, func, select
from sqlalchemy.dialects import postgresql, sqlite

from doudi.common import keys, paging
from doudi.common.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    NotFound,
    ServiceError,
    not_enrolled,
    person_not_found,
)
from doudi.common.outbox import store_newer, stored_periods
from doudi.common.protos import INT64_MAX, INT64_MIN, to_timestamp
from doudi.core.codes import INPATIENT
from doudi.core.engine import (
    LayerPayment,
    LedgerView,
    Payout,
    PersonLedger,
    VisitSettlement,
    carried_quota,
    settle_visit,
    visit_context,
)
from doudi.core.errors import InvalidInput
from doudi.core.identity import ResidentId
from doudi.core.model import Certificate, Person, Registration, StatusPeriod, Visit, new_visit
from doudi.core.packs import PackRegistry
from doudi.core.policy import Layer, Pack, VisitContext
from doudi.core.statuses import EffectivePeriod
from services.settlement import accounts
from services.settlement.tables import (
    admissions,
    clearing_records,
    event_outbox,
    hospital_keys,
    hospitals,
    ledgers,
    person_coverage,
    person_reads,
    person_statuses,
    settlements,
)

Row = Any  # a result row; SQLAlchemy's Row generics add nothing for Core queries

SETTLED = "settled"
REVERSED = "reversed"
PREVIEW = "preview"
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Hospital:
    """A registered hospital (定点医疗机构); level 0 is a pharmacy."""

    hospital_id: str
    name: str
    region: str
    level: int
    reformed: bool = False
    """A level-2 hospital of the public-hospital reform (公立医院改革二级医院)."""


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    """A settlement as stored (or, for a preview, as it would be stored)."""

    settlement_id: str
    state: str
    hospital_id: str
    person_id: str
    visit_id: str
    visit_type: str
    settles_on: date
    policy: str
    total_fen: int
    class_c_fen: int
    over_limit_fen: int
    pre_self_pay_fen: int
    in_scope_fen: int
    layers: tuple[LayerPayment, ...]
    fund_paid_fen: int
    self_pay_fen: int
    payouts: tuple[Payout, ...]
    settled_at: datetime | None = None
    reversed_at: datetime | None = None
    personal_account_paid_fen: int = 0
    admission_id: str | None = None
    """The admission the stay was settled against, if any."""
    """What the employee's personal account paid of ``self_pay_fen`` (accounts.py)."""

    @property
    def out_of_scope_fen(self) -> int:
        return self.class_c_fen + self.over_limit_fen + self.pre_self_pay_fen

    @property
    def cash_pay_fen(self) -> int:
        """What the patient pays in cash: the self-pay less the account's part."""
        return self.self_pay_fen - self.personal_account_paid_fen


@dataclass(frozen=True, slots=True)
class SettleCommand:
    """A settlement as asked for, checked by the caller. Who the person is (region,
    enrolment, statuses) is read in the settlement's transaction."""

    hospital: Hospital
    request_id: str
    request_sha256: str
    resident_id: ResidentId
    visit: Visit
    packs: PackRegistry
    pay_from_personal_account: bool = False
    """The employee agrees that their personal account pays the self-pay: settled alone,
    never in a batch (:func:`settle_batch`)."""
    admission_id: str = ""
    """The admission to settle the stay against ("" none): such a command is settled alone,
    never in a batch's one statement (:func:`settle_batch`)."""


@dataclass(frozen=True, slots=True)
class FundTotal:
    fund: str
    settled_fen: int
    reversed_fen: int
    record_count: int

    @property
    def net_fen(self) -> int:
        return self.settled_fen - self.reversed_fen


# --- hospitals ---------------------------------------------------------------------------


def create_hospital(
    *, connection: sqlalchemy.Connection, hospital: Hospital, api_key_sha256: str, now: datetime
) -> Hospital:
    """Register a hospital with its first API key (its digest); the same registration with
    one of the hospital's keys again answers it, any other ALREADY_EXISTS."""
    row = connection.execute(
        select(hospitals).where(hospitals.c.hospital_id == hospital.hospital_id)
    ).one_or_none()
    owner = connection.execute(
        select(hospital_keys.c.hospital_id).where(hospital_keys.c.key_sha256 == api_key_sha256)
    ).scalar_one_or_none()
    if row is not None:
        if _hospital(row) != hospital or owner != hospital.hospital_id:
            raise AlreadyExists(
                f"hospital {hospital.hospital_id!r} is registered with other data",
                field="hospital.hospital_id",
            )
        return hospital
    if owner is not None:
        raise AlreadyExists("this API key belongs to another hospital", field="api_key")
    connection.execute(
        hospitals.insert().values(
            hospital_id=hospital.hospital_id,
            name=hospital.name,
            region=hospital.region,
            level=hospital.level,
            reformed=hospital.reformed,
            created_at=now,
        )
    )
    keys.add_key(
        connection, hospital_keys, {"hospital_id": hospital.hospital_id}, api_key_sha256, now
    )
    return hospital


def rotate_hospital_key(
    *,
    connection: sqlalchemy.Connection,
    hospital_id: str,
    api_key_sha256: str,
    now: datetime,
    overlap: timedelta,
) -> tuple[Hospital, datetime]:
    """Give the hospital a new key; its older keys retire ``overlap`` from now. Answers the
    hospital and when the older keys retire."""
    hospital = _locked_hospital(connection, hospital_id)
    owner = {"hospital_id": hospital_id}
    retires = keys.rotate(connection, hospital_keys, owner, api_key_sha256, now, overlap)
    return hospital, retires


def end_hospital_key_rotation(
    *, connection: sqlalchemy.Connection, hospital_id: str, now: datetime
) -> tuple[Hospital, int]:
    """Retire now every key of the hospital but its newest; answers how many retired."""
    hospital = _locked_hospital(connection, hospital_id)
    return hospital, keys.end_rotation(connection, hospital_keys, {"hospital_id": hospital_id}, now)


def hospital_keys_of(
    *, connection: sqlalchemy.Connection, hospital_id: str, now: datetime
) -> list[keys.StoredKey]:
    """The hospital's keys alive now (their fingerprints and times, never a key)."""
    return keys.stored_keys(connection, hospital_keys, {"hospital_id": hospital_id}, now)


def _locked_hospital(connection: sqlalchemy.Connection, hospital_id: str) -> Hospital:
    """The hospital, its row locked (PostgreSQL) so that rotations of it take turns."""
    row = connection.execute(
        select(hospitals).where(hospitals.c.hospital_id == hospital_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no hospital {hospital_id!r}", field="hospital_id")
    return _hospital(row)


def get_hospital(*, connection: sqlalchemy.Connection, hospital_id: str) -> Hospital | None:
    """The hospital with this id, if registered."""
    row = connection.execute(
        select(hospitals).where(hospitals.c.hospital_id == hospital_id)
    ).one_or_none()
    return None if row is None else _hospital(row)


def hospital_by_key(
    *, connection: sqlalchemy.Connection, api_key_sha256: str
) -> tuple[Hospital, datetime | None] | None:
    """The hospital whose key has this digest and when the key retires, if the key is
    alive."""
    row = connection.execute(
        select(hospitals, hospital_keys.c.retires_at)
        .join(hospital_keys, hospital_keys.c.hospital_id == hospitals.c.hospital_id)
        .where(hospital_keys.c.key_sha256 == api_key_sha256)
    ).one_or_none()
    if row is None or not keys.alive(row.retires_at, datetime.now(UTC)):
        return None
    return _hospital(row), row.retires_at


def list_hospitals(
    *, connection: sqlalchemy.Connection, region: str | None, page_size: int, page_token: str
) -> tuple[list[Hospital], str]:
    """A page of the registered hospitals (of ``region`` if given) in id order, and the
    next page's token ("" at the end). Never their keys' digests."""
    query = select(
        hospitals.c.hospital_id,
        hospitals.c.name,
        hospitals.c.region,
        hospitals.c.level,
        hospitals.c.reformed,
    )
    if region is not None:
        query = query.where(hospitals.c.region == region)
    rows, token = paging.keyset_page(
        connection, query, hospitals.c.hospital_id, page_size, page_token
    )
    return [_hospital(row) for row in rows], token


def _hospital(row: Row) -> Hospital:
    return Hospital(row.hospital_id, row.name, row.region, row.level, bool(row.reformed))


def set_hospital_reformed(
    *, connection: sqlalchemy.Connection, hospital_id: str, reformed: bool
) -> Hospital:
    """Mark a level-2 hospital as taking part in the public-hospital reform, or no longer;
    another level is INVALID_ARGUMENT (only level 2 has the distinction)."""
    hospital = _locked_hospital(connection, hospital_id)
    if reformed and hospital.level != 2:
        raise InvalidInput(
            "reformed",
            f"only a level-2 hospital takes part in the reform; {hospital_id} is "
            f"level {hospital.level}",
        )
    connection.execute(
        hospitals.update().where(hospitals.c.hospital_id == hospital_id).values(reformed=reformed)
    )
    return dataclasses.replace(hospital, reformed=reformed)


# --- settling ----------------------------------------------------------------------------


def preview(*, connection: sqlalchemy.Connection, command: SettleCommand) -> SettlementRecord:
    """What settling the visit would pay now; reads, writes nothing."""
    person_id = command.resident_id.number
    known = connection.execute(_READ_PERSON, {"person_of": person_id}).one()
    pack, person, visit = _insured(command, known.coverage, known.statuses)
    row = connection.execute(_READ_LEDGER, {"person_id": person_id}).first()
    ledger = PersonLedger() if row is None else _ledger(row)
    result = settle_visit(pack, person, visit, ledger.view(visit.settles_on.year))
    record = _record(result, "", PREVIEW, command.hospital, pack, person, visit, None)
    if command.pay_from_personal_account and person.scheme == accounts.EMPLOYEE:
        paid = accounts.window_share(connection, person_id, record.self_pay_fen)
        record = dataclasses.replace(record, personal_account_paid_fen=paid)
    return record


def find_by_request(
    *, connection: sqlalchemy.Connection, hospital_id: str, request_id: str
) -> tuple[SettlementRecord, str] | None:
    """The settlement a hospital made with this idempotency key, and its request's digest."""
    row = connection.execute(
        select(settlements).where(
            settlements.c.hospital_id == hospital_id, settlements.c.request_id == request_id
        )
    ).one_or_none()
    return None if row is None else (stored_record(row), row.request_sha256)


def settle(
    *, connection: sqlalchemy.Connection, command: SettleCommand, now: datetime, day: date
) -> SettlementRecord:
    """Settle and store, inside the caller's write transaction (see the module docstring).

    ``day`` is the business day the settlement is cleared on. A second standing
    settlement of the same hospital visit, or a reused idempotency key, breaks a
    unique constraint: the caller rolls back and asks :func:`replay`.
    """
    ledger, version, known = _lock_ledger(connection, command.resident_id.number, now)
    if command.admission_id:
        check_admission(connection, command)
    record, stored = _settled(command, ledger, known.coverage, known.statuses, now)
    if command.pay_from_personal_account:
        record = _paid_from_account(connection, record, known.coverage, now)
        stored["personal_account_paid_fen"] = record.personal_account_paid_fen
    stored.update(state=SETTLED, settled_at=now, settled_on=day)
    _store_settlement(connection, stored, record, ledger, version, now)
    if command.admission_id:
        _discharge(connection, command.admission_id, record.settlement_id)
    return record


def _paid_from_account(
    connection: sqlalchemy.Connection,
    record: SettlementRecord,
    coverage: dict[str, Any],
    now: datetime,
) -> SettlementRecord:
    """The settlement with what the employee's personal account paid of its self-pay, in
    the settlement's transaction (the ledger row locked first, then the account's)."""
    year = record.settles_on.year
    paid = accounts.pay_at_window(
        connection,
        person_id=record.person_id,
        scheme=coverage["years"][str(year)][0],
        settlement_id=record.settlement_id,
        year=year,
        self_pay_fen=record.self_pay_fen,
        now=now,
    )
    return dataclasses.replace(record, personal_account_paid_fen=paid)


def _settled(
    command: SettleCommand,
    ledger: PersonLedger,
    coverage: dict[str, Any] | None,
    statuses: Any,
    now: datetime,
) -> tuple[SettlementRecord, dict[str, Any]]:
    """The command settled by the engine on ``ledger`` (its increments added to it): the
    settlement and its row as stored, but for ``state``, ``settled_at`` and
    ``settled_on``."""
    pack, person, visit = _insured(command, coverage, statuses)
    result = ledger.settle(pack, person, visit)
    record = _record(result, str(uuid.uuid4()), SETTLED, command.hospital, pack, person, visit, now)
    if command.admission_id:
        record = dataclasses.replace(record, admission_id=command.admission_id)
    return record, {
        "settlement_id": record.settlement_id,
        "hospital_id": record.hospital_id,
        "request_id": command.request_id,
        "request_sha256": command.request_sha256,
        "person_id": record.person_id,
        "visit_id": record.visit_id,
        "visit_type": record.visit_type,
        "settles_on": record.settles_on,
        "year": result.year,
        "policy": record.policy,
        "total_fen": record.total_fen,
        "class_c_fen": record.class_c_fen,
        "over_limit_fen": record.over_limit_fen,
        "pre_self_pay_fen": record.pre_self_pay_fen,
        "in_scope_fen": record.in_scope_fen,
        "fund_paid_fen": record.fund_paid_fen,
        "self_pay_fen": record.self_pay_fen,
        "layers": [[layer.layer, layer.fund, layer.paid_fen] for layer in record.layers],
        "payouts": [list(payout) for payout in record.payouts],
        "deltas": dict(result.deltas),
        "visit": visit_document(visit),
        "region": pack.region_code,
        "statuses": sorted(
            {period.code for period in person.statuses if period.holds_on(visit.settles_on)}
        ),
        "personal_account_paid_fen": 0,
        "admission_id": command.admission_id or None,
    }


def replay(*, connection: sqlalchemy.Connection, command: SettleCommand) -> SettlementRecord:
    """After :func:`settle` broke a unique constraint (its transaction rolled back): the
    settlement made with the same key and the same request, a retry to answer again.
    The same key with another request is FAILED_PRECONDITION (IDEMPOTENCY_KEY_REUSED);
    another key for a visit that already has a standing settlement, FAILED_PRECONDITION
    (VISIT_ALREADY_SETTLED)."""
    found = find_by_request(
        connection=connection,
        hospital_id=command.hospital.hospital_id,
        request_id=command.request_id,
    )
    if found is not None:
        record, request_sha256 = found
        if request_sha256 != command.request_sha256:
            raise FailedPrecondition(
                "this idempotency key was used for a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                field="request_id",
            )
        return record
    standing = connection.execute(
        select(settlements.c.settlement_id).where(
            settlements.c.hospital_id == command.hospital.hospital_id,
            settlements.c.visit_id == command.visit.id,
            settlements.c.state == SETTLED,
        )
    ).scalar_one_or_none()
    raise FailedPrecondition(
        f"visit {command.visit.id!r} already has a standing settlement {standing}; "
        "reverse it before settling the visit again",
        reason="VISIT_ALREADY_SETTLED",
        field="visit.id",
    )


class Settled(NamedTuple):
    """A command of a batch answered: its settlement, made now or (``replayed``) before."""

    record: SettlementRecord
    replayed: bool


Outcome = Settled | ServiceError | InvalidInput | None
"""What became of one command of a batch (:func:`settle_batch`): settled or answered again,
refused (the error its caller answers), or None: to settle alone after the batch, by
:func:`settle` (and :func:`replay`)."""


def settle_batch(
    *,
    connection: sqlalchemy.Connection,
    commands: Sequence[SettleCommand],
    now: datetime,
    day: date,
) -> list[Outcome]:
    """Settle ``commands`` in the caller's one write transaction, each as :func:`settle`
    would, in their order: two of one person's settle one after the other on the same
    accumulators. Answers each command's outcome, in order.

    A command whose personal account pays (``pay_from_personal_account``) or that is settled
    against an admission (``admission_id``) is answered None: settled alone afterwards by
    :func:`settle`, which locks the account or checks and discharges the admission too, so
    the batch's statements stay those of plain settlements.

    A command the engine refuses (no coverage, no pack in force...) is refused alone, and
    nothing of it is written. A command whose idempotency key or visit is already stored is
    answered by :func:`replay`. A second command of a visit settled earlier in the batch
    is left to settle alone after it (None), and so answered as it would be then. A
    statement that fails (a key or visit stored meanwhile by another process breaks a
    unique constraint) fails the whole batch: the caller rolls back and settles each
    command alone.

    PostgreSQL: one statement locks every ledger of the batch, persons in order, so that
    two processes' batches never wait for each other in a circle, and reads their coverage
    and statuses and which keys and visits are already stored; one statement stores every
    settlement, clearing record, event and ledger (:data:`_LOCK_BATCH`,
    :data:`_STORE_BATCH`). SQLite, whose writes take turns anyway: each command as
    :func:`settle` does, in a savepoint of its own.
    """
    if connection.dialect.name != "postgresql":
        return [
            None
            if command.pay_from_personal_account or command.admission_id
            else _settle_in_savepoint(connection, command, now, day)
            for command in commands
        ]
    asked = [
        {
            "i": index,
            "hospital_id": command.hospital.hospital_id,
            "request_id": command.request_id,
            "visit_id": command.visit.id,
        }
        for index, command in enumerate(commands)
    ]
    rows = connection.exec_driver_sql(
        _LOCK_BATCH,
        {
            "asked": _json(asked),
            "persons": sorted({command.resident_id.number for command in commands}),
            "now": now,
        },
    ).all()
    known = {row.person_id: row for row in rows}
    seen = set(rows[0].seen or ()) if rows else set()
    held: dict[str, tuple[PersonLedger, int]] = {}
    visits: set[tuple[str, str]] = set()
    made: list[tuple[SettlementRecord, dict[str, Any]]] = []
    outcomes: list[Outcome] = []
    for index, command in enumerate(commands):
        if command.admission_id or command.pay_from_personal_account:
            outcomes.append(None)  # settled alone, after the batch
            continue
        visit = (command.hospital.hospital_id, command.visit.id)
        if index in seen:
            outcomes.append(_replayed(connection, command))
            continue
        if visit in visits:
            outcomes.append(None)
            continue
        person_id = command.resident_id.number
        row = known.get(person_id)
        try:
            if row is None:
                raise person_not_found(person_id, "person_id")
            ledger = held.get(person_id)
            if ledger is None:
                ledger = held[person_id] = (_ledger(row), row.version)
            record, stored = _settled(command, ledger[0], row.coverage, row.statuses, now)
        except (ServiceError, InvalidInput) as error:
            outcomes.append(error)
            continue
        visits.add(visit)
        made.append((record, stored))
        outcomes.append(Settled(record, False))
    if made:
        changed = {record.person_id for record, _stored in made}
        connection.exec_driver_sql(
            _STORE_BATCH,
            {
                "settlements": _json([stored for _record, stored in made]),
                "clearing": _json(
                    [
                        {
                            "settlement_id": record.settlement_id,
                            "hospital_id": record.hospital_id,
                            "fund": fund,
                            "amount_fen": amount,
                        }
                        for record, _stored in made
                        for fund, amount in _owed(record, 1).items()
                    ]
                ),
                "ledgers": _json(
                    [
                        {"person_id": person_id, **ledger.to_document(), "version": version + 1}
                        for person_id, (ledger, version) in held.items()
                        if person_id in changed
                    ]
                ),
                "now": now,
                "day": day,
            },
        )
    return outcomes


def _settle_in_savepoint(
    connection: sqlalchemy.Connection, command: SettleCommand, now: datetime, day: date
) -> Outcome:
    """:func:`settle` inside a savepoint of the caller's transaction: a refusal or a unique
    constraint broken takes back only this command's writes."""
    try:
        with connection.begin_nested():
            return Settled(settle(connection=connection, command=command, now=now, day=day), False)
    except sqlalchemy.exc.IntegrityError:
        return _replayed(connection, command)
    except (ServiceError, InvalidInput) as error:
        return error


def _replayed(connection: sqlalchemy.Connection, command: SettleCommand) -> Outcome:
    try:
        return Settled(replay(connection=connection, command=command), True)
    except FailedPrecondition as error:
        return error


def _json(value: Any) -> str:
    """A statement's rows as JSON text (orjson: dates as ISO dates), read by the statement
    with ``json_to_recordset``: one value to bind however many rows."""
    return orjson.dumps(value).decode()


def reverse(
    *,
    connection: sqlalchemy.Connection,
    settlement_id: str,
    hospital_id: str | None,
    request_id: str,
    now: datetime,
    day: date,
) -> tuple[SettlementRecord, bool]:
    """Reverse a settlement (冲正): remove its increments from the person's ledger and
    record negative clearing records. Answers the settlement and whether it had been
    reversed before (a retry). ``hospital_id`` None: any hospital's (internal callers).

    Later settlements of the same year keep what they paid: the hospital was paid
    them, and their own increments stay in the ledger, so yearly caps go on
    counting real payments.
    """
    reused = connection.execute(
        select(settlements.c.settlement_id).where(
            settlements.c.reversal_request_id == request_id,
            settlements.c.settlement_id != settlement_id,
            *([] if hospital_id is None else [settlements.c.hospital_id == hospital_id]),
        )
    ).first()
    if reused is not None:
        raise FailedPrecondition(
            "this idempotency key already reversed another settlement",
            reason="IDEMPOTENCY_KEY_REUSED",
            field="request_id",
        )
    row = _settlement_row(connection, settlement_id, hospital_id)
    if row.state == REVERSED:
        return _reversed_before(row, request_id), True
    ledger, version, _known = _lock_ledger(connection, row.person_id, now)
    # Re-read under the ledger lock: a concurrent reversal of the same settlement
    # may have committed while we waited for it.
    row = _settlement_row(connection, settlement_id, hospital_id)
    if row.state == REVERSED:
        return _reversed_before(row, request_id), True
    check_amounts(stored_record(row))  # before its negative clearing records are written
    if row.personal_account_paid_fen:
        accounts.refund_at_window(connection, settlement_id, now)
    ledger.apply_increments(
        row.year,
        {str(key): int(amount) for key, amount in row.deltas.items()},
        [Payout(*payout).ledger_key for payout in row.payouts],
        sign=-1,
    )
    connection.execute(
        settlements.update()
        .where(settlements.c.settlement_id == settlement_id)
        .values(state=REVERSED, reversal_request_id=request_id, reversed_at=now)
    )
    record = dataclasses.replace(stored_record(row), state=REVERSED, reversed_at=now)
    _clear(connection, record, kind=REVERSED, sign=-1, now=now, day=day)
    _queue_event(connection, settlement_id, REVERSED, now)
    _save_ledger(connection, row.person_id, ledger, version, now)
    if row.admission_id is not None:
        _reopen(connection, row.admission_id, settlement_id)
    return record, False


def _reversed_before(row: Row, request_id: str) -> SettlementRecord:
    """A settlement already reversed: the same reversal asked again (same key) answers it;
    another key is another reversal, refused with the first one's key and time."""
    if row.reversal_request_id != request_id:
        reverse_time = to_timestamp(row.reversed_at).ToJsonString()
        raise FailedPrecondition(
            f"settlement {row.settlement_id} was already reversed at {reverse_time} by the "
            f"request with idempotency key {row.reversal_request_id!r}",
            reason="ALREADY_REVERSED",
            metadata={
                "settlement_id": row.settlement_id,
                "reversal_request_id": row.reversal_request_id,
                "reverse_time": reverse_time,
            },
        )
    return stored_record(row)


def get(
    *, connection: sqlalchemy.Connection, settlement_id: str, hospital_id: str | None
) -> SettlementRecord:
    """One settlement; another hospital's answers NOT_FOUND, as an unknown id does."""
    return stored_record(_settlement_row(connection, settlement_id, hospital_id))


def list_settlements(
    *,
    connection: sqlalchemy.Connection,
    hospital_id: str | None,
    person_id: str | None,
    start: date,
    end: date,
    page_size: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[SettlementRecord], tuple[datetime, str] | None]:
    """Settlements made from ``start`` to ``end`` (business days), of a hospital (None:
    every hospital) and of a person (None: everyone), oldest first, a page at a time;
    answers the page and the position after its last row (None on the last page)."""
    query = select(settlements).where(
        settlements.c.settled_on >= start,
        settlements.c.settled_on <= end,
        *_made_around(start, end),
    )
    if hospital_id is not None:
        query = query.where(settlements.c.hospital_id == hospital_id)
    if person_id is not None:
        query = query.where(settlements.c.person_id == person_id)
    if after is not None:
        query = query.where(
            sqlalchemy.tuple_(settlements.c.settled_at, settlements.c.settlement_id)
            > sqlalchemy.tuple_(sqlalchemy.literal(after[0]), sqlalchemy.literal(after[1]))
        )
    query = query.order_by(settlements.c.settled_at, settlements.c.settlement_id).limit(
        page_size + 1
    )
    rows = connection.execute(query).all()
    page = [stored_record(row) for row in rows[:page_size]]
    if len(rows) <= page_size:
        return page, None
    last = rows[page_size - 1]
    return page, (last.settled_at, last.settlement_id)


def _made_around(start: date, end: date) -> tuple[Any, Any]:
    """The days from ``start`` to ``end`` as moments, a day wider on each side than any
    time zone's business days: the days decide which settlements are listed, and the
    moments let every hospital's (or a person's) be read in order from an index of the
    moments (``ix_settlements_made``, ``ix_settlements_person_made``)."""
    low = max(start, date.min + _DAY) - _DAY
    high = min(end, date.max - 2 * _DAY) + 2 * _DAY
    return (
        settlements.c.settled_at >= datetime.combine(low, time.min, UTC),
        settlements.c.settled_at < datetime.combine(high, time.min, UTC),
    )


def daily_clearing(
    *, connection: sqlalchemy.Connection, hospital_id: str | None, day: date
) -> list[FundTotal]:
    """Per fund, what settlements and reversals made on ``day`` left owing the hospital
    (对账), or every hospital together (``hospital_id`` None).

    The sums are exact whatever the records hold (:func:`_exact_sums`); a total outside
    64 bits, which only records written past the amount limits can make, is DATA_LOSS
    naming the fund."""
    settled = sqlalchemy.case(
        (clearing_records.c.kind == SETTLED, clearing_records.c.amount_fen), else_=0
    )
    reversed_ = sqlalchemy.case(
        (clearing_records.c.kind == REVERSED, -clearing_records.c.amount_fen), else_=0
    )
    query = select(
        clearing_records.c.fund, *_exact_sums(settled), *_exact_sums(reversed_), func.count()
    ).where(clearing_records.c.clearing_date == day)
    if hospital_id is not None:
        query = query.where(clearing_records.c.hospital_id == hospital_id)
    rows = connection.execute(
        query.group_by(clearing_records.c.fund).order_by(clearing_records.c.fund)
    ).all()
    where = "every hospital" if hospital_id is None else hospital_id
    totals = [
        FundTotal(
            fund, _exact_total(paid_high, paid_low), _exact_total(back_high, back_low), int(count)
        )
        for fund, paid_high, paid_low, back_high, back_low, count in rows
    ]
    for total in totals:
        if not all(
            _fits(amount) for amount in (total.settled_fen, total.reversed_fen, total.net_fen)
        ):
            raise stored_out_of_range(
                f"the clearing of fund {total.fund} on {day.isoformat()} at {where}"
            )
    if not _fits(sum(total.net_fen for total in totals)):
        raise stored_out_of_range(f"the clearing of {day.isoformat()} at {where}")
    return totals


# Each amount is summed as two parts, ``amount // 2^32`` and ``amount % 2^32`` (both
# truncated toward zero, as SQLite and PostgreSQL divide integers): each part of a
# record is below 2^32, so the sums stay inside 64 bits for 2^31 records of one fund on
# one day, whatever amounts the records hold, and no stored record can make the SQL sum
# overflow (SQLite's SUM fails on overflow).
_SPLIT = 2**32


def _exact_sums(amount: Any) -> tuple[Any, Any]:
    return (
        func.coalesce(func.sum(amount // _SPLIT), 0),
        func.coalesce(func.sum(amount % _SPLIT), 0),
    )


def _exact_total(high: Any, low: Any) -> int:
    return int(high) * _SPLIT + int(low)


def _fits(amount: int) -> bool:
    return INT64_MIN <= amount <= INT64_MAX


def check_amounts(record: SettlementRecord) -> None:
    """DATA_LOSS unless every amount of a stored settlement fits the API's int64 fields."""
    amounts = (
        record.total_fen,
        record.class_c_fen,
        record.over_limit_fen,
        record.pre_self_pay_fen,
        record.in_scope_fen,
        record.fund_paid_fen,
        record.self_pay_fen,
        record.personal_account_paid_fen,
        *(layer.paid_fen for layer in record.layers),
        *(payout.paid_fen for payout in record.payouts),
    )
    if not all(isinstance(amount, int) and _fits(amount) for amount in amounts) or not _fits(
        record.out_of_scope_fen
    ):
        raise stored_out_of_range(f"settlement {record.settlement_id}")


def stored_out_of_range(what: str) -> DataLoss:
    """A stored amount, or a sum of stored amounts, that the API's 64-bit fields cannot
    carry: only records written past the amount limits make one."""
    return DataLoss(
        f"{what} holds an amount beyond 64 bits, outside the platform's limits; "
        "the bureau must correct the stored records",
        reason="STORED_AMOUNT_OUT_OF_RANGE",
    )


# --- statuses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldStatuses:
    """A person's statuses as the datashare hub sent them."""

    person_id: str
    version: int
    periods: tuple[EffectivePeriod, ...]


@dataclass(frozen=True, slots=True)
class HeldCoverage:
    """A person's region and enrolments (year -> scheme, employment, tier) as the
    enrollment service sent them."""

    person_id: str
    version: int
    region: str
    years: dict[int, tuple[str, str | None, str | None]]
    certificates: tuple[Certificate, ...] = ()
    """Stored always (an empty list too): a person sent with it is checked."""
    registrations: tuple[Registration, ...] = ()


def record_statuses(
    *, connection: sqlalchemy.Connection, persons: list[HeldStatuses], now: datetime
) -> list[int]:
    """Store each person's statuses unless a later version is stored already; answers the
    versions now stored."""
    return store_newer(
        connection,
        person_statuses,
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


def record_coverage(
    *, connection: sqlalchemy.Connection, persons: list[HeldCoverage], now: datetime
) -> list[int]:
    """Store each person's region, enrolments, certificates and registrations unless a later
    version is stored; answers the versions now stored."""
    return store_newer(
        connection,
        person_coverage,
        [
            {
                "person_id": person.person_id,
                "version": person.version,
                "coverage": {
                    "region": person.region,
                    "years": {
                        str(year): list(enrolment)
                        for year, enrolment in sorted(person.years.items())
                    },
                    # What coverage_certificates / coverage_registrations read.
                    "certificates": [
                        [c.disease, c.kind, c.start.isoformat(), c.end.isoformat()]
                        for c in person.certificates
                    ],
                    "registrations": [
                        [
                            r.kind,
                            r.region,
                            r.start.isoformat(),
                            None if r.end is None else r.end.isoformat(),
                        ]
                        for r in person.registrations
                    ],
                },
                "updated_at": now,
            }
            for person in persons
        ],
    )


def _insured(
    command: SettleCommand, coverage: dict[str, Any] | None, statuses: Any
) -> tuple[Pack, Person, Visit]:
    """The pack in force, the insured person as the engine needs them, and the visit as the
    platform sees it (out of area when the hospital is in another region)."""
    number = command.resident_id.number
    visit = command.visit
    if coverage is None:
        raise person_not_found(number, "person_id")
    enrolment = coverage["years"].get(str(visit.settles_on.year))
    if enrolment is None:
        raise not_enrolled(number, visit.settles_on.year)
    region = coverage["region"]
    pack = command.packs.in_force(region, visit.settles_on)
    if pack is None:
        raise FailedPrecondition(
            f"no policy pack of region {region!r} is in force on {visit.settles_on.isoformat()}",
            reason="NO_POLICY_IN_FORCE",
            field="visit.discharged" if visit.admitted is not None else "visit.date",
        )
    if command.hospital.region != region and (not visit.out_of_area or visit.region is None):
        # Out of area, at a hospital of its region (a registration must name it).
        visit = dataclasses.replace(visit, out_of_area=True, region=command.hospital.region)
    if command.hospital.reformed:
        # The reform is the hospital's registration, never the request's.
        visit = dataclasses.replace(visit, reformed_hospital=True)
    scheme, employment, tier = enrolment
    person = Person(
        command.resident_id,
        scheme,
        employment,
        tier,
        status_periods(statuses),
        coverage_certificates(coverage),
        coverage_registrations(coverage),
    )
    return pack, person, visit


def coverage_certificates(coverage: Mapping[str, Any]) -> tuple[Certificate, ...] | None:
    """The person's outpatient certificates as enrollment sent them with the coverage:
    ``"certificates": [[disease, kind, valid_from, valid_to], ...]`` (ISO dates). None
    when the copy holds none (sent before enrollment kept certificates): not checked."""
    stored = coverage.get("certificates")
    if stored is None:
        return None
    return tuple(
        Certificate(disease, kind, date.fromisoformat(start), date.fromisoformat(end))
        for disease, kind, start, end in stored
    )


def coverage_registrations(coverage: Mapping[str, Any]) -> tuple[Registration, ...] | None:
    """The person's registrations for care outside the region, as enrollment sent them:
    ``"registrations": [[kind, region, valid_from, valid_to or null], ...]``. None when the
    copy holds none: the hospital's ``referred`` flag is taken."""
    stored = coverage.get("registrations")
    if stored is None:
        return None
    return tuple(
        Registration(
            kind,
            region,
            date.fromisoformat(start),
            None if end is None else date.fromisoformat(end),
        )
        for kind, region, start, end in stored
    )


def status_periods(stored: list[list[str | None]] | None) -> tuple[StatusPeriod, ...]:
    """The engine's periods from the stored projection (None: the hub sent nothing)."""
    if not stored:
        return ()
    return tuple(
        StatusPeriod(
            str(status),
            date.fromisoformat(str(start)),
            None if end is None else date.fromisoformat(end),
        )
        for status, start, end, *_agency in stored
    )


# --- the admission desk (入院登记) ----------------------------------------------------------

ADMITTED = "admitted"
DISCHARGED = "discharged"
CANCELLED = "cancelled"
PLATFORM_READER = "platform"
"""Who a read of the internal token is recorded as (a hospital's is its id)."""


@dataclass(frozen=True, slots=True)
class CapLeft:
    """A yearly cap of a layer for the person at the asking hospital, and its use so far."""

    cap: str
    limit_fen: int
    carried_over_quota_fen: int
    used_fen: int

    @property
    def left_fen(self) -> int:
        left = self.limit_fen - self.used_fen
        return left if left > 0 else 0


@dataclass(frozen=True, slots=True)
class LayerLeft:
    layer: str
    name: str
    eligible: bool
    caps: tuple[CapLeft, ...]


@dataclass(frozen=True, slots=True)
class HeldStatus:
    """A status period in force on the day asked, with the agency that certified it."""

    status: str
    valid_from: date
    valid_to: date | None
    agency: str | None


@dataclass(frozen=True, slots=True)
class Eligible:
    """What the admission desk is told of a person on a day (GetEligibility)."""

    person_id: str
    day: date
    hospital_id: str
    region: str
    policy: str
    enrolment: tuple[str, str | None, str | None] | None
    """Scheme, employment, tier of the day's year; None: not enrolled."""
    statuses: tuple[HeldStatus, ...]
    out_of_area: bool
    referred: bool
    no_deposit_rule: str | None
    no_deposit_reason: str | None
    certificates: tuple[tuple[Certificate, str], ...]
    """Each certificate valid on the day, with its disease's name in the pack."""
    registrations: tuple[Registration, ...]
    layers: tuple[LayerLeft, ...]
    notes: tuple[str, ...]
    personal_account_fen: int | None = None
    """An employee's personal account balance; None: no account."""


@dataclass(frozen=True, slots=True)
class AdmissionRecord:
    admission_id: str
    hospital_id: str
    person_id: str
    admitted_on: date
    referred: bool
    out_of_area: bool
    policy: str
    no_deposit_rule: str | None
    no_deposit_reason: str | None
    state: str
    settlement_id: str | None
    created_at: datetime


def eligibility(
    *,
    connection: sqlalchemy.Connection,
    hospital: Hospital,
    resident_id: ResidentId,
    day: date,
    referred: bool,
    packs: PackRegistry,
    reader: str,
    now: datetime,
) -> Eligible:
    """The admission desk's answer, recorded as a read of the person in the same
    transaction (the caller's write transaction)."""
    answer = _eligible(connection, hospital, resident_id, day, referred, packs)
    answer = dataclasses.replace(
        answer, personal_account_fen=accounts.balance(connection, answer.person_id)
    )
    _record_read(connection, answer.person_id, reader, "GetEligibility", now)
    return answer


def _eligible(
    connection: sqlalchemy.Connection,
    hospital: Hospital,
    resident_id: ResidentId,
    day: date,
    referred: bool,
    packs: PackRegistry,
) -> Eligible:
    """The answer for an inpatient stay at ``hospital`` admitted on ``day``: level and region
    from the hospital, out of area when its region is not the person's, referred when the
    hospital says so or a registration valid on the day names its region. Reads only."""
    number = resident_id.number
    known = connection.execute(_READ_PERSON, {"person_of": number}).one()
    coverage = known.coverage
    if coverage is None:
        raise person_not_found(number, "person_id")
    region = coverage["region"]
    pack = packs.in_force(region, day)
    if pack is None:
        raise FailedPrecondition(
            f"no policy pack of region {region!r} is in force on {day.isoformat()}",
            reason="NO_POLICY_IN_FORCE",
            field="date",
        )
    enrolment = coverage["years"].get(str(day.year))
    certificates = tuple(c for c in coverage_certificates(coverage) or () if c.valid_on(day))
    registrations = tuple(r for r in coverage_registrations(coverage) or () if r.valid_on(day))
    out_of_area = hospital.region != region
    notes: list[str] = []
    if out_of_area:
        notes.append(
            f"out of area: the hospital is in {hospital.region}, the person's region is {region}"
        )
    registered = [r for r in registrations if r.region == hospital.region]
    if registered:
        notes.append(f"referred: {registered[0].kind} registration for {hospital.region}")
    elif referred:
        notes.append("referred: the hospital holds a primary-care referral slip")
    referred = referred or bool(registered)
    names = pack.certificates.diseases if pack.certificates is not None else {}
    answer = Eligible(
        person_id=number,
        day=day,
        hospital_id=hospital.hospital_id,
        region=region,
        policy=pack.id,
        enrolment=None if enrolment is None else tuple(enrolment),
        statuses=_held_statuses(known.statuses, day),
        out_of_area=out_of_area,
        referred=referred,
        no_deposit_rule=None,
        no_deposit_reason=None,
        certificates=tuple(
            (c, names[c.disease].name if c.disease in names else "") for c in certificates
        ),
        registrations=registrations,
        layers=(),
        notes=(),
    )
    if enrolment is None:
        notes.append(f"not enrolled for {day.year}: no layer pays, a deposit as for anyone")
        return dataclasses.replace(answer, notes=tuple(notes))
    scheme, employment, tier = enrolment
    person = Person(
        resident_id,
        scheme,
        employment,
        tier,
        status_periods(known.statuses),
        certificates,
        registrations,
    )
    stay = new_visit(
        "admission",
        INPATIENT,
        day,
        (),
        hospital.level,
        day,
        out_of_area,
        referred,
        (),
        hospital.region if out_of_area else None,
        hospital.reformed,
    )
    row = connection.execute(_READ_LEDGER, {"person_id": number}).first()
    view = (PersonLedger() if row is None else _ledger(row)).view(day.year)
    ctx = visit_context(person, stay, view, INPATIENT, referred)
    rule = next((rule for rule in pack.no_deposit if rule.when.test(ctx)), None)
    return dataclasses.replace(
        answer,
        no_deposit_rule=None if rule is None else rule.id,
        no_deposit_reason=None if rule is None else rule.reason,
        layers=tuple(_layer_left(pack, layer, ctx, view) for layer in pack.layers),
        notes=tuple(notes),
    )


def _held_statuses(stored: list[list[str | None]] | None, day: date) -> tuple[HeldStatus, ...]:
    """The stored periods in force on ``day``, with their agency (None in a period stored
    before the hub sent agencies)."""
    agencies = [entry[3] if len(entry) > 3 else None for entry in stored or ()]
    return tuple(
        HeldStatus(period.code, period.start, period.end, agency)
        for period, agency in zip(status_periods(stored), agencies, strict=True)
        if period.holds_on(day)
    )


def _layer_left(pack: Pack, layer: Layer, ctx: VisitContext, view: LedgerView) -> LayerLeft:
    """A layer's yearly caps for the context (each once, in the order its rules name them),
    with what the layer paid against each this year."""
    caps: dict[str, CapLeft] = {}
    for rule in layer.rules:
        for cap in rule.caps:
            if not cap.per_year or cap.id in caps:
                continue
            carried = carried_quota(pack, ctx) if cap.plus_carried_quota else 0
            caps[cap.id] = CapLeft(
                cap.id, cap.amount(ctx) + carried, carried, view.year_totals.get(cap.accumulator, 0)
            )
    eligible = (layer.in_force_from is None or ctx.day >= layer.in_force_from) and (
        layer.eligible is None or layer.eligible.test(ctx)
    )
    return LayerLeft(layer.id, layer.name, eligible, tuple(caps.values()))


def admit(
    *,
    connection: sqlalchemy.Connection,
    hospital: Hospital,
    request_id: str,
    request_sha256: str,
    resident_id: ResidentId,
    day: date,
    referred: bool,
    packs: PackRegistry,
    reader: str,
    now: datetime,
) -> tuple[AdmissionRecord, bool]:
    """Register an admission with the eligibility answer of its day, recorded as a read of
    the person; answers it and whether it answers an earlier request with the same key. A
    person not enrolled for the day's year is NOT_FOUND (NOT_ENROLLED): no stay of theirs
    can be settled. Two requests with one key at once: the second breaks the unique
    constraint and the caller answers :func:`replay_admission`."""
    found = replay_admission(
        connection=connection,
        hospital_id=hospital.hospital_id,
        request_id=request_id,
        request_sha256=request_sha256,
    )
    if found is not None:
        _record_read(connection, found.person_id, reader, "Admit", now)
        return found, True
    answer = _eligible(connection, hospital, resident_id, day, referred, packs)
    if answer.enrolment is None:
        raise not_enrolled(answer.person_id, day.year)
    record = AdmissionRecord(
        admission_id=str(uuid.uuid4()),
        hospital_id=hospital.hospital_id,
        person_id=answer.person_id,
        admitted_on=day,
        referred=answer.referred,
        out_of_area=answer.out_of_area,
        policy=answer.policy,
        no_deposit_rule=answer.no_deposit_rule,
        no_deposit_reason=answer.no_deposit_reason,
        state=ADMITTED,
        settlement_id=None,
        created_at=now,
    )
    connection.execute(
        admissions.insert().values(
            **{f.name: getattr(record, f.name) for f in dataclasses.fields(record)},
            request_id=request_id,
            request_sha256=request_sha256,
        )
    )
    _record_read(connection, record.person_id, reader, "Admit", now)
    return record, False


def replay_admission(
    *, connection: sqlalchemy.Connection, hospital_id: str, request_id: str, request_sha256: str
) -> AdmissionRecord | None:
    """The admission the hospital made with this key (None: none yet); the same key with
    another request is FAILED_PRECONDITION (IDEMPOTENCY_KEY_REUSED)."""
    row = connection.execute(
        select(admissions).where(
            admissions.c.hospital_id == hospital_id, admissions.c.request_id == request_id
        )
    ).one_or_none()
    if row is None:
        return None
    if row.request_sha256 != request_sha256:
        raise FailedPrecondition(
            "this idempotency key was used for a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
            field="request_id",
        )
    return _admission(row)


def get_admission(
    *,
    connection: sqlalchemy.Connection,
    admission_id: str,
    hospital_id: str | None,
    reader: str,
    now: datetime,
) -> AdmissionRecord:
    """One admission, recorded as a read of its person; another hospital's is NOT_FOUND, as
    an unknown one (``hospital_id`` None: any, for the platform)."""
    record = _admission(_admission_row(connection, admission_id, hospital_id, lock=False))
    _record_read(connection, record.person_id, reader, "GetAdmission", now)
    return record


def cancel_admission(
    *, connection: sqlalchemy.Connection, admission_id: str, hospital_id: str | None
) -> AdmissionRecord:
    """Cancel an admission no standing settlement discharged (ADMISSION_ALREADY_SETTLED
    otherwise); a cancelled one is answered again. The row is locked, so a settlement
    against it waits and then finds it cancelled."""
    row = _admission_row(connection, admission_id, hospital_id, lock=True)
    if row.state == DISCHARGED:
        raise _already_settled(row)
    if row.state == ADMITTED:
        connection.execute(
            admissions.update()
            .where(admissions.c.admission_id == admission_id)
            .values(state=CANCELLED)
        )
    return dataclasses.replace(_admission(row), state=CANCELLED)


def check_admission(connection: sqlalchemy.Connection, command: SettleCommand) -> None:
    """The admission a settlement names, locked: the caller's, of the same person, the stay
    admitted on its day, neither cancelled nor discharged by a standing settlement (unless
    by this very request: a retry, answered by the unique key)."""
    row = connection.execute(
        select(admissions)
        .where(
            admissions.c.admission_id == command.admission_id,
            admissions.c.hospital_id == command.hospital.hospital_id,
        )
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise InvalidInput(
            "admission_id", f"no admission {command.admission_id!r} of this hospital"
        )
    if row.person_id != command.resident_id.number:
        raise InvalidInput("admission_id", "the admission is another person's")
    visit = command.visit
    if visit.visit_type != INPATIENT:
        raise InvalidInput("visit.type", "a visit settled against an admission is inpatient")
    if visit.admitted != row.admitted_on:
        raise InvalidInput("visit.admitted", f"the admission was on {row.admitted_on.isoformat()}")
    if row.state == CANCELLED:
        raise FailedPrecondition(
            f"admission {row.admission_id} was cancelled",
            reason="ADMISSION_CANCELLED",
            field="admission_id",
        )
    if row.state == DISCHARGED:
        by = connection.execute(
            select(settlements.c.request_id).where(settlements.c.settlement_id == row.settlement_id)
        ).scalar_one_or_none()
        if by != command.request_id:
            raise _already_settled(row)


def _discharge(connection: sqlalchemy.Connection, admission_id: str, settlement_id: str) -> None:
    """The admission discharged by the settlement, in its transaction (only an open one)."""
    done = connection.execute(
        admissions.update()
        .where(admissions.c.admission_id == admission_id, admissions.c.state == ADMITTED)
        .values(state=DISCHARGED, settlement_id=settlement_id)
    )
    if done.rowcount != 1:
        raise FailedPrecondition(
            f"admission {admission_id} is no longer open",
            reason="ADMISSION_ALREADY_SETTLED",
            field="admission_id",
        )


def _reopen(connection: sqlalchemy.Connection, admission_id: str, settlement_id: str) -> None:
    """A reversal reopens the admission its settlement discharged: the stay may be settled
    against it again."""
    connection.execute(
        admissions.update()
        .where(
            admissions.c.admission_id == admission_id,
            admissions.c.settlement_id == settlement_id,
        )
        .values(state=ADMITTED, settlement_id=None)
    )


def _already_settled(row: Row) -> FailedPrecondition:
    return FailedPrecondition(
        f"admission {row.admission_id} was discharged by settlement {row.settlement_id}; "
        "reverse that settlement first",
        reason="ADMISSION_ALREADY_SETTLED",
        field="admission_id",
        metadata={"settlement_id": row.settlement_id},
    )


def _admission_row(
    connection: sqlalchemy.Connection, admission_id: str, hospital_id: str | None, *, lock: bool
) -> Row:
    query = select(admissions).where(admissions.c.admission_id == admission_id)
    if hospital_id is not None:
        query = query.where(admissions.c.hospital_id == hospital_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"no admission {admission_id!r}", field="admission_id")
    return row


def _admission(row: Row) -> AdmissionRecord:
    return AdmissionRecord(
        admission_id=row.admission_id,
        hospital_id=row.hospital_id,
        person_id=row.person_id,
        admitted_on=row.admitted_on,
        referred=row.referred,
        out_of_area=row.out_of_area,
        policy=row.policy,
        no_deposit_rule=row.no_deposit_rule,
        no_deposit_reason=row.no_deposit_reason,
        state=row.state,
        settlement_id=row.settlement_id,
        created_at=row.created_at,
    )


def _record_read(
    connection: sqlalchemy.Connection, person_id: str, reader: str, method: str, now: datetime
) -> None:
    """The audit of the admission desk: who read which person's data, how, when."""
    connection.execute(
        person_reads.insert().values(person_id=person_id, reader=reader, method=method, read_at=now)
    )


def list_person_reads(
    *, connection: sqlalchemy.Connection, person_id: str, page_size: int, page_token: str
) -> tuple[list[Row], str]:
    """A page of the reads of a person's data, oldest first, and the next page's token."""
    query = select(person_reads).where(person_reads.c.person_id == person_id)
    return paging.keyset_page(connection, query, person_reads.c.read_id, page_size, page_token)


# --- helpers -----------------------------------------------------------------------------


def visit_document(visit: Visit) -> dict[str, Any]:
    """The visit in the case format (docs/case-format.md), as stored with its settlement."""
    document: dict[str, Any] = {"id": visit.id, "type": visit.visit_type}
    if visit.visit_type == INPATIENT:
        assert visit.admitted is not None
        document["admitted"] = visit.admitted.isoformat()
        document["discharged"] = visit.settles_on.isoformat()
    else:
        document["date"] = visit.settles_on.isoformat()
    document.update(
        hospital_level=visit.hospital_level,
        out_of_area=visit.out_of_area,
        referred=visit.referred,
        diagnoses=list(visit.diagnoses),
        items=[
            {
                "code": item.code,
                "class": item.item_class,
                "amount_fen": item.amount_fen,
                "over_limit_fen": item.over_limit_fen,
            }
            for item in visit.items
        ],
    )
    if visit.region is not None:
        document["region"] = visit.region
    if visit.reformed_hospital:
        document["reformed_hospital"] = True
    return document


def _record(
    result: VisitSettlement,
    settlement_id: str,
    state: str,
    hospital: Hospital,
    pack: Pack,
    person: Person,
    visit: Visit,
    now: datetime | None,
) -> SettlementRecord:
    costs = result.costs
    return SettlementRecord(
        settlement_id=settlement_id,
        state=state,
        hospital_id=hospital.hospital_id,
        person_id=person.resident_id.number,
        visit_id=visit.id,
        visit_type=visit.visit_type,
        settles_on=visit.settles_on,
        policy=pack.id,
        total_fen=costs.total_fen,
        class_c_fen=costs.class_c_fen,
        over_limit_fen=costs.over_limit_fen,
        pre_self_pay_fen=costs.pre_self_pay_fen,
        in_scope_fen=costs.in_scope_fen,
        layers=tuple(
            LayerPayment(layer, fund, paid)
            for layer, fund, paid in zip(result.layer_ids, result.funds, result.paid, strict=True)
        ),
        fund_paid_fen=result.fund_paid_fen,
        self_pay_fen=result.self_pay_fen,
        payouts=result.payouts,
        settled_at=now,
    )


def stored_record(row: Row) -> SettlementRecord:
    return SettlementRecord(
        settlement_id=row.settlement_id,
        state=row.state,
        hospital_id=row.hospital_id,
        person_id=row.person_id,
        visit_id=row.visit_id,
        visit_type=row.visit_type,
        settles_on=row.settles_on,
        policy=row.policy,
        total_fen=row.total_fen,
        class_c_fen=row.class_c_fen,
        over_limit_fen=row.over_limit_fen,
        pre_self_pay_fen=row.pre_self_pay_fen,
        in_scope_fen=row.in_scope_fen,
        layers=tuple(LayerPayment(layer, fund, int(paid)) for layer, fund, paid in row.layers),
        fund_paid_fen=row.fund_paid_fen,
        self_pay_fen=row.self_pay_fen,
        payouts=tuple(Payout(*payout) for payout in row.payouts),
        settled_at=row.settled_at,
        reversed_at=row.reversed_at,
        personal_account_paid_fen=row.personal_account_paid_fen,
        admission_id=row.admission_id,
    )


def _settlement_row(
    connection: sqlalchemy.Connection, settlement_id: str, hospital_id: str | None
) -> Row:
    query = select(settlements).where(settlements.c.settlement_id == settlement_id)
    if hospital_id is not None:
        query = query.where(settlements.c.hospital_id == hospital_id)
    row = connection.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"no settlement {settlement_id!r}", field="settlement_id")
    return row


def _owed(record: SettlementRecord, sign: int) -> dict[str, int]:
    """What each fund that paid owes the hospital for the settlement (清算), negative for a
    reversal: each layer's fund, and the personal-account fund (310200) what the account
    paid of the self-pay."""
    owed: dict[str, int] = {}
    for layer in record.layers:
        if layer.paid_fen:
            owed[layer.fund] = owed.get(layer.fund, 0) + sign * layer.paid_fen
    if record.personal_account_paid_fen:
        fund = accounts.ACCOUNT_FUND
        owed[fund] = owed.get(fund, 0) + sign * record.personal_account_paid_fen
    return owed


def _clear(
    connection: sqlalchemy.Connection,
    record: SettlementRecord,
    *,
    kind: str,
    sign: int,
    now: datetime,
    day: date,
) -> None:
    """One clearing record per fund that paid: what the fund owes the hospital."""
    owed = _owed(record, sign)
    if owed:
        connection.execute(
            clearing_records.insert(),
            [
                {
                    "settlement_id": record.settlement_id,
                    "hospital_id": record.hospital_id,
                    "fund": fund,
                    "kind": kind,
                    "amount_fen": amount,
                    "clearing_date": day,
                    "created_at": now,
                }
                for fund, amount in owed.items()
            ],
        )


def _store_settlement(
    connection: sqlalchemy.Connection,
    stored: dict[str, Any],
    record: SettlementRecord,
    ledger: PersonLedger,
    version: int,
    now: datetime,
) -> None:
    """Insert the settlement, its clearing records and its event, and write the ledger
    back.

    On PostgreSQL this is one statement (data-modifying CTEs): one round trip
    and one execution instead of four, about a third less CPU per settlement.
    SQLite has no data-modifying CTEs, so there it is four statements.
    """
    if connection.dialect.name != "postgresql":
        connection.execute(settlements.insert(), stored)
        _clear(connection, record, kind=SETTLED, sign=1, now=now, day=stored["settled_on"])
        _queue_event(connection, record.settlement_id, SETTLED, now)
        _save_ledger(connection, record.person_id, ledger, version, now)
        return
    document = ledger.to_document()
    parameters = {f"s_{name}": value for name, value in stored.items()}
    parameters.update(
        clearing=[
            {"fund": fund, "amount_fen": amount} for fund, amount in _owed(record, 1).items()
        ],
        clearing_kind=SETTLED,
        event_kind=SETTLED,
        event_queued_at=now,
        ledger_person=record.person_id,
        ledger_years=document["years"],
        ledger_payouts=document["payouts"],
        ledger_first_year=document["first_year"],
        ledger_version=version + 1,
        ledger_updated_at=now,
    )
    connection.execute(_STORE_SETTLEMENT, parameters)


# The statements every settlement runs, built once (building one costs more than running it).
_STATUSES = (
    select(person_statuses.c.periods)
    .where(person_statuses.c.person_id == bindparam("person_of"))
    .scalar_subquery()
    .label("statuses")
)
_COVERAGE = (
    select(person_coverage.c.coverage)
    .where(person_coverage.c.person_id == bindparam("person_of"))
    .scalar_subquery()
    .label("coverage")
)
_READ_PERSON = select(_COVERAGE, _STATUSES)
_READ_LEDGER = select(ledgers.c.years, ledgers.c.payouts, ledgers.c.first_year).where(
    ledgers.c.person_id == bindparam("person_id")
)
_LOCK_LEDGER = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(ledgers)
    .on_conflict_do_update(
        index_elements=[ledgers.c.person_id], set_={"version": ledgers.c.version}
    )
    .returning(
        ledgers.c.years,
        ledgers.c.payouts,
        ledgers.c.first_year,
        ledgers.c.version,
        _COVERAGE,
        _STATUSES,
    )
    for dialect in (postgresql, sqlite)
}
_SAVE_LEDGER = ledgers.update().where(ledgers.c.person_id == bindparam("ledger_person"))
_SETTLEMENT_COLUMNS = [
    column for column in settlements.c if column.name not in {"reversal_request_id", "reversed_at"}
]
_INSERT_SETTLEMENT = (
    settlements.insert()
    .values(
        {column: bindparam(f"s_{column.name}", type_=column.type) for column in _SETTLEMENT_COLUMNS}
    )
    .cte("settled")
)
_OWED = (
    func.json_to_recordset(bindparam("clearing", type_=JSON))
    .table_valued(column("fund", String), column("amount_fen", BigInteger))
    .render_derived(with_types=True)
)
_INSERT_CLEARING = (
    clearing_records.insert()
    .from_select(
        [
            "settlement_id",
            "hospital_id",
            "fund",
            "kind",
            "amount_fen",
            "clearing_date",
            "created_at",
        ],
        select(
            bindparam("s_settlement_id"),
            bindparam("s_hospital_id"),
            _OWED.c.fund,
            bindparam("clearing_kind"),
            _OWED.c.amount_fen,
            bindparam("s_settled_on"),
            bindparam("s_settled_at"),
        ).select_from(_OWED),
    )
    .cte("cleared")
)
_QUEUE_EVENT = event_outbox.insert().values(
    settlement_id=bindparam("s_settlement_id"),
    kind=bindparam("event_kind"),
    queued_at=bindparam("event_queued_at", type_=event_outbox.c.queued_at.type),
)
# PostgreSQL: the settlement, its clearing records, its event and the ledger in one
# statement. The clearing and event rows' foreign keys are checked at the statement's end,
# when the settlement is in.
_STORE_SETTLEMENT = (
    ledgers.update()
    .where(ledgers.c.person_id == bindparam("ledger_person"))
    .values(
        years=bindparam("ledger_years", type_=JSON),
        payouts=bindparam("ledger_payouts", type_=JSON),
        first_year=bindparam("ledger_first_year", type_=Integer),
        version=bindparam("ledger_version", type_=Integer),
        updated_at=bindparam("ledger_updated_at", type_=ledgers.c.updated_at.type),
    )
    .add_cte(_INSERT_SETTLEMENT, _INSERT_CLEARING, _QUEUE_EVENT.cte("queued"))
)


def _queue_event(
    connection: sqlalchemy.Connection, settlement_id: str, kind: str, now: datetime
) -> None:
    """Queue the settlement's event (settled or reversed) for the assistance service, in the
    caller's transaction."""
    connection.execute(
        _QUEUE_EVENT,
        {"s_settlement_id": settlement_id, "event_kind": kind, "event_queued_at": now},
    )


def _lock_ledger(
    connection: sqlalchemy.Connection, person_id: str, now: datetime
) -> tuple[PersonLedger, int, Row]:
    """The person's ledger, locked until the transaction ends (created empty if new), its
    version, and the row, which also holds the person's stored coverage and statuses.

    One statement does all: an upsert whose conflict branch rewrites the row
    takes its row lock on PostgreSQL and answers the row as it stands after any
    concurrent settlement of the person has committed. SQLite's write
    transaction already holds the database's write lock.
    """
    statement = _LOCK_LEDGER[connection.dialect.name]
    row = connection.execute(
        statement,
        {
            "person_id": person_id,
            "person_of": person_id,
            "years": {},
            "payouts": [],
            "first_year": None,
            "version": 0,
            "updated_at": now,
        },
    ).one()
    return _ledger(row), row.version, row


def _ledger(row: Row) -> PersonLedger:
    return PersonLedger.from_document(
        {"years": row.years, "payouts": row.payouts, "first_year": row.first_year}
    )


def _save_ledger(
    connection: sqlalchemy.Connection,
    person_id: str,
    ledger: PersonLedger,
    version: int,
    now: datetime,
) -> None:
    document = ledger.to_document()
    connection.execute(
        _SAVE_LEDGER,
        {
            "ledger_person": person_id,
            "years": document["years"],
            "payouts": document["payouts"],
            "first_year": document["first_year"],
            "version": version + 1,
            "updated_at": now,
        },
    )


# --- a batch's statements on PostgreSQL (settle_batch) ------------------------------------


def _recordset(columns: Sequence[sqlalchemy.Column[Any]]) -> str:
    """The column definitions of ``json_to_recordset`` for ``columns``: texts as ``text``,
    so that one too long for its column fails the insert (an explicit cast to ``varchar(n)``
    would cut it short without a word), the rest as the table types them."""
    return ", ".join(
        f"{column.name} "
        + ("text" if isinstance(column.type, String) else str(column.type.compile(_POSTGRES)))
        for column in columns
    )


_POSTGRES = postgresql.dialect()  # type: ignore[no-untyped-call]
_BATCH_SETTLED = [
    column
    for column in _SETTLEMENT_COLUMNS
    if column.name not in {"state", "settled_at", "settled_on"}
]
_LOCK_BATCH = f"""
WITH asked AS (
    SELECT * FROM json_to_recordset(CAST(%(asked)s AS json))
        AS a(i integer, hospital_id text, request_id text, visit_id text)
), seen AS (
    SELECT array_agg(a.i) AS seen FROM asked AS a
    WHERE (
        SELECT true FROM settlements AS s
        WHERE s.hospital_id = a.hospital_id AND s.request_id = a.request_id
    ) OR (
        SELECT true FROM settlements AS s
        WHERE s.hospital_id = a.hospital_id AND s.visit_id = a.visit_id
            AND s.state = '{SETTLED}'
    )
), locked AS (
    INSERT INTO ledgers (person_id, years, payouts, first_year, version, updated_at)
    SELECT person_id, '{{}}', '[]', NULL, 0, %(now)s FROM person_coverage
    WHERE person_id = ANY(%(persons)s)
    ORDER BY person_id
    ON CONFLICT (person_id) DO UPDATE SET version = ledgers.version
    RETURNING person_id, years, payouts, first_year, version
)
SELECT l.person_id, l.years, l.payouts, l.first_year, l.version,
    (SELECT c.coverage FROM person_coverage AS c WHERE c.person_id = l.person_id) AS coverage,
    (SELECT s.periods FROM person_statuses AS s WHERE s.person_id = l.person_id) AS statuses,
    (SELECT seen FROM seen) AS seen
FROM locked AS l
"""
"""Lock the ledgers of the batch's persons who have coverage (created empty if new), in
the order of their numbers, and answer each with the person's coverage and statuses and, on
every row, the indexes of the commands whose key or visit is already stored (``seen``: read
in the statement's snapshot, before its locks are granted; one stored meanwhile breaks a
unique constraint when the batch is stored, and the batch is settled again one by one). Each
key, visit, coverage and statuses is looked up by its index, a subquery a row: a join over
the batch's rows was planned as a scan of every settlement. A person without coverage is
neither locked nor answered: the engine refuses the command
(PERSON_NOT_FOUND) and no empty ledger is left behind."""
_STORE_BATCH = f"""
WITH made AS (
    SELECT * FROM json_to_recordset(CAST(%(settlements)s AS json))
        AS m({_recordset(_BATCH_SETTLED)})
), settled AS (
    INSERT INTO settlements ({", ".join(column.name for column in _BATCH_SETTLED)},
        state, settled_at, settled_on)
    SELECT {", ".join(column.name for column in _BATCH_SETTLED)},
        '{SETTLED}', %(now)s, %(day)s
    FROM made
), cleared AS (
    INSERT INTO clearing_records
        (settlement_id, hospital_id, fund, kind, amount_fen, clearing_date, created_at)
    SELECT settlement_id, hospital_id, fund, '{SETTLED}', amount_fen, %(day)s, %(now)s
    FROM json_to_recordset(CAST(%(clearing)s AS json))
        AS c(settlement_id text, hospital_id text, fund text, amount_fen bigint)
), queued AS (
    INSERT INTO event_outbox (settlement_id, kind, queued_at)
    SELECT settlement_id, '{SETTLED}', %(now)s FROM made
)
UPDATE ledgers SET years = l.years, payouts = l.payouts, first_year = l.first_year,
    version = l.version, updated_at = %(now)s
FROM json_to_recordset(CAST(%(ledgers)s AS json))
    AS l(person_id text, years json, payouts json, first_year integer, version integer)
WHERE ledgers.person_id = l.person_id
"""
"""Store a batch's settlements, their clearing records and events (in the batch's order:
event ids follow it) and the ledgers they changed, in one statement: the clearing and event
rows' foreign keys are checked at its end, when the settlements are in."""

"""The assistance service's handlers: plain functions on a connection, which the servicer
runs through ``read_in_thread`` / ``write_in_thread``.

Settlement events come in batches; each is recorded once (its event id, and one event of
each kind per settlement, are unique) and the new ones are added to the burden ledger of
their person and year in the same transaction (docs/domain.md section 7, personal
burden): a settlement adds its figures, a reversal takes them away. Bills paid outside
the window (``services/assistance/bills.py``) are added the same way: every change of
the ledger goes through :func:`add_to_ledger`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, NamedTuple

import orjson
import sqlalchemy
from sqlalchemy import insert, select, text

from doudi.common.db import copy_to_temporary, temporary_of
from doudi.core.codes import VISIT_TYPES
from doudi.core.statuses import EffectivePeriod
from services.assistance import ledger_batch, people, reports, warnings
from services.assistance.tables import burden_payments, burdens, settlement_events

SETTLED: Final = "settled"
REVERSED: Final = "reversed"
MAX_EVENTS = 5000
"""The most events one call records. A call is one transaction: the more events it
carries, the less each costs (the pages of the ledger it rewrites and the commit are
shared; docs/performance.md measured 110 us an event at 1,000 and 68 at 5,000). It is the
most settlement's outbox sends at once, when a backlog is queued (after assistance was
down); under a steady load a call carries what settled since the last."""

_VISIT_COLUMNS: Final = {visit_type: f"{visit_type}_visits" for visit_type in VISIT_TYPES}


class SettlementEvent(NamedTuple):
    """A settlement or its reversal, checked (the servicer reads it from the message), as
    its ``settlement_events`` row: the fields are the table's columns, the days in ISO
    form and the payments as JSON, so that the row is bound as it is (a call carries
    thousands: no second object or conversion an event, docs/performance.md)."""

    event_id: int
    kind: str
    settlement_id: str
    person_id: str
    region: str
    visit_type: str
    admitted: str | None
    """The day admitted (``2026-01-31``), or None."""
    settled_on: str
    """The day settled (``2026-02-03``): the day it counts on."""
    total_fen: int
    in_scope_fen: int
    out_of_scope_fen: int
    fund_paid_fen: int
    """The payments together."""
    self_pay_fen: int
    payments: str
    """JSON, ``[[layer, fund, fen], ...]`` of each layer that paid."""
    statuses: str
    """The statuses applied, separated by spaces."""
    policy: str


@dataclass(frozen=True, slots=True)
class Burden:
    person_id: str
    year: int
    total_fen: int
    fund_paid_fen: int
    personal_burden_fen: int
    eligible_burden_fen: int
    fund_payments: tuple[tuple[str, int], ...]
    """(fund, fen), in fund order."""
    visits: dict[str, int]
    """Settled visits by type."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What one visit adds to its person's year in the burden ledger (a settlement, a bill
    paid outside the window) or, with ``sign`` -1, takes away (a reversal)."""

    person_id: str
    year: int
    sign: int
    visit_type: str
    total_fen: int
    fund_payments: tuple[tuple[str, int], ...]
    """(fund, fen) of each fund that paid."""
    self_pay_fen: int
    eligible_burden_fen: int
    region: str
    """The region of the settlement or bill (its pack draws the warning lines)."""
    on: date
    """The day it counts on (a visit's discharge)."""
    source: str
    """What it is, for a warning it may raise (``settlement event 12``, ``bill 3``)."""
    statuses: tuple[str, ...] = ()
    """The statuses applied (a settlement's; a bill's: those held on its day): the
    categories the reports count it in."""
    in_window: bool = True
    """Settled at the one-stop window (its funds owe the hospital: clearing), not a bill
    paid outside it."""


def record_settlement_events(
    *, connection: sqlalchemy.Connection, events: Sequence[SettlementEvent]
) -> int:
    """Record the events not recorded before and add them to the ledger; answers how many
    were new."""
    if not events:
        return 0
    statements = _statements(connection)
    new_ids = statements.events.run(connection, events)
    if not new_ids:
        return 0
    batch = ledger_batch.begin(connection)
    # The new events as the ledger's batch, read back from the rows just written by id
    # (no Python object per event); an event refused as another of its settlement and
    # kind is not there.
    new = connection.execute(statements.stage_events, {"ids": batch.bound(new_ids)}).rowcount
    if new:
        _add_batch(connection, statements)
    return new


def add_to_ledger(connection: sqlalchemy.Connection, entries: Sequence[LedgerEntry]) -> None:
    """Add the entries to the burden ledger (``burdens``, ``burden_payments``) in the
    caller's transaction: the one place the ledger changes, whatever the entries come from
    (settlement events, bills paid outside the window); a household's burden that passes
    a warning line raises its warning in the same transaction."""
    if not entries:
        return
    ledger_batch.begin(connection)
    connection.execute(
        insert(ledger_batch.ledger_batch),
        [
            {
                "seq": index,
                "person_id": entry.person_id,
                "year": entry.year,
                "sign": entry.sign,
                "visit_type": entry.visit_type,
                "total_fen": entry.total_fen,
                "fund_paid_fen": sum(fen for _fund, fen in entry.fund_payments),
                "self_pay_fen": entry.self_pay_fen,
                "eligible_burden_fen": entry.eligible_burden_fen,
                "region": entry.region,
                "on_day": entry.on,
                "month": entry.on.month,
                "statuses": " ".join(entry.statuses),
                "in_window": entry.in_window,
                "source": entry.source,
                "payments": orjson.dumps(
                    [["", fund, fen] for fund, fen in entry.fund_payments]
                ).decode(),
            }
            for index, entry in enumerate(entries)
        ],
    )
    _add_batch(connection, _statements(connection))


def _add_batch(connection: sqlalchemy.Connection, statements: _Statements) -> None:
    """Add the connection's batch (:mod:`services.assistance.ledger_batch`) to the ledger,
    then raise the warnings it calls for and add it to the reports' aggregate."""
    connection.execute(ledger_batch.sql(connection).households)
    # In key order (the statements' ORDER BY): two batches touching the same persons lock
    # their rows in one order (PostgreSQL), so they wait for each other instead of
    # deadlocking.
    connection.execute(statements.burdens)
    connection.execute(statements.payments)
    # --- dual early warning: raised in the transaction that adds to the ledger ---
    warnings.raise_warnings(connection, datetime.now(UTC))
    # --- reports: the month's figures of each region, category and visit type ---
    reports.add_visits(connection)


_COUNTED: Final = (
    "total_fen",
    "fund_paid_fen",
    "personal_burden_fen",
    "eligible_burden_fen",
    *_VISIT_COLUMNS.values(),
)
"""The ledger's sums of a person's year, in the order :func:`add_to_ledger` adds them."""
_EVENT_COLUMNS: Final = SettlementEvent._fields
"""The columns of an event's row, in its order."""


@dataclass(frozen=True, slots=True)
class _EventInsert:
    """Insert the events not recorded before (by id, and by settlement and kind).

    PostgreSQL: the rows are copied into the connection's ``settlement_events_in``
    (:func:`doudi.common.db.copy_to_temporary`), then inserted from it by one statement
    answering the ids it inserted: of two transactions inserting one event at once, only
    the one that inserted it counts it. SQLite (one writer at a time): the ids on
    record are read first and the others inserted by ``executemany``, which binds the
    rows' tuples in C (a JSON array of the rows took twice as long; SQLAlchemy's
    executemany, building a parameter dictionary a row, as long again)."""

    insert: str | None
    """SQLite: the rows' ``executemany``."""
    returning: sqlalchemy.TextClause | None
    """PostgreSQL: the copied rows into ``settlement_events``, answering the ids inserted."""
    recorded: sqlalchemy.TextClause | None
    """SQLite: which of the ids ``:ids`` are on record."""

    def run(
        self, connection: sqlalchemy.Connection, events: Sequence[SettlementEvent]
    ) -> list[int]:
        """Insert ``events`` (each its row); answers the ids of those that may be new: the
        caller reads back those that are there."""
        if self.returning is not None:
            copy_to_temporary(connection, settlement_events, _EVENT_COLUMNS, events)
            return list(connection.execute(self.returning).scalars().all())
        assert self.insert is not None
        assert self.recorded is not None
        ids = ledger_batch.sql(connection).bound([event.event_id for event in events])
        recorded = set(connection.execute(self.recorded, {"ids": ids}).scalars().all())
        fresh = [event for event in events if event.event_id not in recorded]
        if fresh:
            connection.exec_driver_sql(self.insert, fresh)
        return [event.event_id for event in fresh]


@dataclass(frozen=True, slots=True)
class _Statements:
    events: _EventInsert
    stage_events: sqlalchemy.TextClause
    """The new events (ids ``:ids``) into the ledger's batch."""
    burdens: sqlalchemy.TextClause
    """Add the batch to its persons' years."""
    payments: sqlalchemy.TextClause
    """Add the batch's payments to its persons' years, by fund."""


_STATEMENTS: dict[str, _Statements] = {}


def _statements(connection: sqlalchemy.Connection) -> _Statements:
    """The ledger's statements for the connection's dialect, built once."""
    found = _STATEMENTS.get(connection.dialect.name)
    if found is None:
        dialect = connection.dialect
        batch = ledger_batch.sql(connection)

        def adding(table: sqlalchemy.Table, keys: Sequence[str], columns: Sequence[str]) -> str:
            added = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in columns)
            return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"

        year, month = (
            (
                "CAST(EXTRACT(YEAR FROM settled_on) AS INTEGER)",
                "CAST(EXTRACT(MONTH FROM settled_on) AS INTEGER)",
            )
            if dialect.name == "postgresql"
            else (
                "CAST(strftime('%Y', settled_on) AS INTEGER)",
                "CAST(strftime('%m', settled_on) AS INTEGER)",
            )
        )
        staged = {
            "seq": "event_id",
            "person_id": "person_id",
            "year": year,
            "sign": f"CASE kind WHEN '{REVERSED}' THEN -1 ELSE 1 END",
            "visit_type": "visit_type",
            "total_fen": "total_fen",
            "fund_paid_fen": "fund_paid_fen",
            "self_pay_fen": "self_pay_fen",
            "eligible_burden_fen": (
                "CASE WHEN self_pay_fen > out_of_scope_fen "
                "THEN self_pay_fen - out_of_scope_fen ELSE 0 END"
            ),
            "region": "region",
            "on_day": "settled_on",
            "month": month,
            "statuses": "statuses",
            "in_window": batch.true,
            "source": "'settlement event ' || event_id",
            "payments": "payments",
        }
        sums = [
            *(
                f"SUM(sign * {name})"
                for name in ("total_fen", "fund_paid_fen", "self_pay_fen", "eligible_burden_fen")
            ),
            *(
                f"SUM(CASE visit_type WHEN '{visit_type}' THEN sign ELSE 0 END)"
                for visit_type in _VISIT_COLUMNS
            ),
        ]
        burden_key, payment_key = ("person_id", "year"), ("person_id", "year", "fund")
        found = _STATEMENTS[dialect.name] = _Statements(
            events=_event_insert(dialect, batch),
            stage_events=text(
                f"INSERT INTO ledger_batch ({', '.join(staged)}) "
                f"SELECT {', '.join(staged.values())} FROM settlement_events "
                f"WHERE event_id IN ({batch.values('ids', 'bigint')})"
            ),
            burdens=text(
                f"INSERT INTO burdens ({', '.join((*burden_key, *_COUNTED))}) "
                f"SELECT person_id, year, {', '.join(sums)} FROM ledger_batch WHERE true "
                f"GROUP BY person_id, year ORDER BY person_id, year "
                + adding(burdens, burden_key, _COUNTED)
            ),
            payments=text(
                f"INSERT INTO burden_payments ({', '.join((*payment_key, 'paid_fen'))}) "
                f"SELECT b.person_id, b.year, {batch.fund}, SUM(b.sign * {batch.fen}) "
                f"FROM {batch.payments_from} WHERE true "
                f"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
                + adding(burden_payments, payment_key, ["paid_fen"])
            ),
        )
    return found


def _event_insert(dialect: sqlalchemy.Dialect, batch: ledger_batch.Sql) -> _EventInsert:
    columns = ", ".join(_EVENT_COLUMNS)
    if dialect.name == "postgresql":
        return _EventInsert(
            None,
            text(
                f"INSERT INTO settlement_events ({columns}) "
                f"SELECT {columns} FROM {temporary_of(settlement_events)} ORDER BY event_id "
                "ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            None,
        )
    return _EventInsert(
        f"INSERT INTO settlement_events ({columns}) "
        f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}) ON CONFLICT DO NOTHING",
        None,
        text(
            "SELECT event_id FROM settlement_events "
            f"WHERE event_id IN ({batch.values('ids', 'bigint')})"
        ),
    )


def get_burden(*, connection: sqlalchemy.Connection, person_id: str, year: int) -> Burden:
    """The person's burden of ``year``; zeros when no settlement counts in it."""
    row = connection.execute(
        select(burdens).where(burdens.c.person_id == person_id, burdens.c.year == year)
    ).one_or_none()
    funds = connection.execute(
        select(burden_payments.c.fund, burden_payments.c.paid_fen)
        .where(
            burden_payments.c.person_id == person_id,
            burden_payments.c.year == year,
            burden_payments.c.paid_fen != 0,
        )
        .order_by(burden_payments.c.fund)
    ).all()
    values: dict[str, Any] = {} if row is None else row._asdict()
    return Burden(
        person_id=person_id,
        year=year,
        total_fen=values.get("total_fen", 0),
        fund_paid_fen=values.get("fund_paid_fen", 0),
        personal_burden_fen=values.get("personal_burden_fen", 0),
        eligible_burden_fen=values.get("eligible_burden_fen", 0),
        fund_payments=tuple((fund, fen) for fund, fen in funds),
        visits={kind: values.get(column, 0) for kind, column in _VISIT_COLUMNS.items()},
    )


@dataclass(frozen=True, slots=True)
class Member:
    person_id: str
    name: str
    personal_burden_fen: int
    eligible_burden_fen: int


@dataclass(frozen=True, slots=True)
class PersonsYear:
    """A person's burden of a year, their household's, and the statuses they held."""

    burden: Burden
    household_id: str
    """"" when enrollment has not sent the person: the household is then the person."""
    members: tuple[Member, ...]
    statuses: tuple[EffectivePeriod, ...]
    """The person's status periods that overlap the year."""

    @property
    def household_burden_fen(self) -> int:
        return sum(member.personal_burden_fen for member in self.members)

    @property
    def household_eligible_burden_fen(self) -> int:
        return sum(member.eligible_burden_fen for member in self.members)


def get_persons_year(
    *, connection: sqlalchemy.Connection, person_id: str, year: int
) -> PersonsYear:
    """The person's burden of ``year`` with their household's and their statuses in it."""
    burden = get_burden(connection=connection, person_id=person_id, year=year)
    person = people.persons(connection, [person_id]).get(person_id)
    if person is None:
        household_id, names = "", {person_id: ""}
    else:
        household_id = person.household_id
        members = people.household_members(connection, [household_id])[household_id]
        names = {member.person_id: member.name for member in members}
    burdens_of = {
        row.person_id: (row.personal_burden_fen, row.eligible_burden_fen)
        for row in connection.execute(
            select(
                burdens.c.person_id, burdens.c.personal_burden_fen, burdens.c.eligible_burden_fen
            ).where(burdens.c.person_id.in_(names), burdens.c.year == year)
        )
    }
    periods = people.status_periods(connection, [person_id]).get(person_id, ())
    return PersonsYear(
        burden=burden,
        household_id=household_id,
        members=tuple(
            Member(member, name, *burdens_of.get(member, (0, 0)))
            for member, name in sorted(names.items())
        ),
        statuses=people.periods_in_year(periods, year),
    )

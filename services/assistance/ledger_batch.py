"""The batch being added to the burden ledger: a temporary table of the connection.

Every addition to the ledger (:func:`services.assistance.service.add_to_ledger`, a batch
of settlement events, a bill) is first written here, one row a visit, in the caller's
transaction; the ledger, the warning pass and the reports' monthly aggregate then read
it with a few set-based statements (a ``GROUP BY`` each) instead of walking the visits in
Python: a year is a million events, and the intake's goal ten thousand a second
(docs/performance.md). It is emptied before each batch; on PostgreSQL also at each
commit (``ON COMMIT DELETE ROWS``). A temporary table is the connection's own: two
transactions at once never see each other's batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
import sqlalchemy
from sqlalchemy import BigInteger, Boolean, Column, Date, Integer, MetaData, String, Table, text
from sqlalchemy.schema import CreateTable

ledger_batch: Final = Table(
    "ledger_batch",
    MetaData(),  # not a migrated table: created by each connection that needs it
    # The visit's order in the batch (a settlement event's id): the warning pass walks
    # a household's additions in it.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("person_id", String(18), nullable=False),
    Column("year", Integer, nullable=False),
    # 1 added, -1 taken away (a reversal).
    Column("sign", Integer, nullable=False),
    Column("visit_type", String(32), nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("fund_paid_fen", BigInteger, nullable=False),
    Column("self_pay_fen", BigInteger, nullable=False),
    Column("eligible_burden_fen", BigInteger, nullable=False),
    Column("region", String(32), nullable=False),
    Column("on_day", Date, nullable=False),
    Column("month", Integer, nullable=False),
    # The statuses applied, space-separated codes (the reports' categories).
    Column("statuses", String(512), nullable=False),
    Column("in_window", Boolean, nullable=False),
    # What it is, for a warning it raises: ``settlement event 12``, ``bill 3``.
    Column("source", String(64), nullable=False),
    # The funds' payments as JSON text, [[layer, fund, fen], ...] (a settlement event's
    # as stored; a bill's layer is "").
    Column("payments", String, nullable=False),
    # The person's household and its region as enrollment sent them (NULL when it has
    # not: the person is a household alone), filled in by :func:`begin`'s ``households``.
    Column("household", String(64), nullable=True),
    Column("household_region", String(32), nullable=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)


@dataclass(frozen=True, slots=True)
class Sql:
    """The batch's statements and fragments for one dialect, built once."""

    create: sqlalchemy.TextClause
    clear: sqlalchemy.TextClause
    households: sqlalchemy.TextClause
    """Fill in the batch's households and their regions, a lookup by key each (a join
    may scan every person, as PostgreSQL planned it on a table just filled)."""
    payments_from: str
    """``FROM`` the batch ``b`` joined to each of its payments ``p``."""
    fund: str
    """A payment's fund in :attr:`payments_from`."""
    fen: str
    """A payment's fen in :attr:`payments_from`."""
    true: str
    json_arrays: bool
    """Whether a list is bound as a JSON array (SQLite), not an array (PostgreSQL)."""

    def values(self, name: str, sql_type: str) -> str:
        """A subquery of the values of the list bound as ``:name`` (see :meth:`bound`)."""
        if self.json_arrays:
            return f"SELECT value FROM json_each(:{name})"
        return f"SELECT unnest(CAST(:{name} AS {sql_type}[]))"

    def bound(self, values: list[Any]) -> Any:
        """A list as :meth:`values` takes it."""
        return orjson.dumps(values).decode() if self.json_arrays else values


_SQL: dict[str, Sql] = {}


def sql(connection: sqlalchemy.Connection) -> Sql:
    """The batch's SQL for the connection's dialect."""
    dialect = connection.dialect
    found = _SQL.get(dialect.name)
    if found is None:
        create = str(CreateTable(ledger_batch, if_not_exists=True).compile(dialect=dialect))
        households = text(
            "UPDATE ledger_batch SET (household, household_region) = "
            "(SELECT p.household_id, p.region FROM assistance_persons AS p "
            "WHERE p.person_id = ledger_batch.person_id)"
        )
        if dialect.name == "postgresql":
            found = Sql(
                create=text(create),
                clear=text("DELETE FROM ledger_batch"),
                households=households,
                payments_from=(
                    "ledger_batch AS b CROSS JOIN LATERAL "
                    "json_array_elements(CAST(b.payments AS json)) AS p(value)"
                ),
                fund="(p.value ->> 1)",
                fen="CAST(p.value ->> 2 AS bigint)",
                true="true",
                json_arrays=False,
            )
        else:
            found = Sql(
                create=text(create),
                clear=text("DELETE FROM ledger_batch"),
                households=households,
                payments_from="ledger_batch AS b, json_each(b.payments) AS p",
                fund="json_extract(p.value, '$[1]')",
                fen="json_extract(p.value, '$[2]')",
                true="1",
                json_arrays=True,
            )
        _SQL[dialect.name] = found
    return found


def begin(connection: sqlalchemy.Connection) -> Sql:
    """An empty batch on the connection (the table created when it has none)."""
    statements = sql(connection)
    connection.execute(statements.create)
    connection.execute(statements.clear)
    return statements

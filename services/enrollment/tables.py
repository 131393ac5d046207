"""The enrollment service's tables (SQLAlchemy Core); its migrations create them.

Codes are stored as the core's lower-case strings (``resident``, ``in_service``,
``adult_low``, ``assistance_fund``); money as ``int`` fen.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy
from sqlalchemy import BigInteger, Column, Date, DateTime, ForeignKey, Index, Integer, String, Table

from doudi.common.outbox import outbox_table

metadata = sqlalchemy.MetaData()


def _created_at() -> Column[datetime]:
    """When the row was stored, by the database's clock."""
    return Column(
        "created_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=sqlalchemy.func.current_timestamp(),
    )


persons = Table(
    "persons",
    metadata,
    # The validated identity number, upper-case X (doudi.core.identity).
    Column("person_id", String(18), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(6), nullable=False),
    Column("household_id", String(64), nullable=False),
    # A pack's 6-digit administrative division code.
    Column("region", String(32), nullable=False),
    _created_at(),
)
# ListPersons with a region filter walks this index in identity-number order.
Index("ix_persons_region_person_id", persons.c.region, persons.c.person_id)

enrolments = Table(
    "enrolments",
    metadata,
    Column("person_id", String(18), ForeignKey("persons.person_id"), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("scheme", String(16), nullable=False),
    Column("employment", String(16), nullable=True),
    Column("tier", String(16), nullable=True),
    Column("premium_fen", BigInteger, nullable=False),
    Column("premium_payer", String(32), nullable=False),
    # Subsidised enrolment (资助参保): the assistance fund's part of the premium, and the
    # policy pack's category it was paid under (NULL: not subsidised).
    Column("subsidy_fen", BigInteger, nullable=False, server_default="0"),
    Column("subsidy_category", String(32), nullable=True),
    _created_at(),
)

# Persons whose name, household, region and enrolments a subscriber (settlement,
# datashare, assistance) has not received yet (doudi.common.outbox); ``version`` counts
# the person's records (1 + enrolments).
coverage_deliveries = outbox_table(metadata, "coverage_deliveries")

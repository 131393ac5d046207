"""The assistance service's tables (SQLAlchemy Core); its migrations create them.

``settlement_events`` keeps every settlement and reversal the settlement service sent
(once: by its event id, and by settlement and kind); ``burdens`` and
``burden_payments`` are the ledger they add up to, per person and calendar year
(docs/domain.md section 7). ``assistance_persons`` and ``assistance_statuses`` are the
copies enrollment and the datashare hub send (doudi.common.outbox): who belongs to which
household, and who holds which status when. Codes are the core's lower-case strings;
money ``int`` fen.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from doudi.common.outbox import outbox_table
from doudi.common.warnings import warnings_table

metadata = sqlalchemy.MetaData()

settlement_events = Table(
    "settlement_events",
    metadata,
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    # settled or reversed
    Column("kind", String(16), nullable=False),
    Column("settlement_id", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("region", String(32), nullable=False),
    Column("visit_type", String(32), nullable=False),
    Column("admitted", Date, nullable=True),
    Column("settled_on", Date, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("in_scope_fen", BigInteger, nullable=False),
    Column("out_of_scope_fen", BigInteger, nullable=False),
    Column("fund_paid_fen", BigInteger, nullable=False),
    Column("self_pay_fen", BigInteger, nullable=False),
    # The layers' payments as JSON text ([[layer, fund, fen], ...]) and the statuses
    # applied (space-separated codes): kept for the reports and screening.
    Column("payments", String, nullable=False),
    Column("statuses", String(512), nullable=False),
    Column("policy", String(64), nullable=False),
    UniqueConstraint("settlement_id", "kind", name="uq_settlement_events_settlement_kind"),
)
Index("ix_settlement_events_person", settlement_events.c.person_id, settlement_events.c.settled_on)

burdens = Table(
    "burdens",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("fund_paid_fen", BigInteger, nullable=False),
    Column("personal_burden_fen", BigInteger, nullable=False),
    Column("eligible_burden_fen", BigInteger, nullable=False),
    Column("inpatient_visits", Integer, nullable=False),
    Column("outpatient_chronic_visits", Integer, nullable=False),
    Column("outpatient_major_visits", Integer, nullable=False),
    Column("outpatient_general_visits", Integer, nullable=False),
    Column("pharmacy_visits", Integer, nullable=False),
)

burden_payments = Table(
    "burden_payments",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("fund", String(16), primary_key=True),
    Column("paid_fen", BigInteger, nullable=False),
)

# --- the copies of persons and statuses ----------------------------------------------

assistance_persons = Table(
    "assistance_persons",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("name", String(64), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("region", String(32), nullable=False),
    # The years enrolled, ascending: [2025, 2026].
    Column("years", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_assistance_persons_household", assistance_persons.c.household_id)
Index("ix_assistance_persons_region", assistance_persons.c.region)

assistance_statuses = Table(
    "assistance_statuses",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("version", BigInteger, nullable=False),
    # [[status, valid_from, valid_to or null, agency], ...] in ISO dates, as the hub
    # computed them (settlement keeps the same shape).
    Column("periods", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# --- dual early warning ---------------------------------------------------------------

# Each warning raised, and what the agencies did with it (doudi.common.warnings).
warnings = warnings_table(metadata, raised_here=True)

# Warnings the datashare hub has not received yet (doudi.common.outbox), by warning id.
warning_deliveries = outbox_table(metadata, "warning_deliveries", "warning_id", 20)

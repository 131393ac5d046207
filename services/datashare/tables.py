"""The datashare service's tables (SQLAlchemy Core); its migrations create them.

The registry and the audit are append-only: a row is never updated or
deleted. ``status_deliveries`` is an outbox: the persons whose statuses a
subscriber (the settlement service) has not yet received.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import Column, Date, DateTime, Index, String, Table, UniqueConstraint

from doudi.common.outbox import outbox_table

metadata = sqlalchemy.MetaData()

# A 64-bit key on PostgreSQL; on SQLite an INTEGER PRIMARY KEY, the only type it autoincrements.
Id = sqlalchemy.BigInteger().with_variant(sqlalchemy.Integer, "sqlite")

# What agencies certified: one row per assertion or revocation (kind), in recording order.
status_assertions = Table(
    "status_assertions",
    metadata,
    Column("assertion_id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(6), nullable=False),  # assert / revoke
    Column("person_id", String(18), nullable=False),
    Column("household_id", String(64), nullable=True),  # NULL on revocations
    Column("status", String(32), nullable=False),
    Column("agency", String(32), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),  # NULL: open-ended
    Column("reference", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("agency", "reference", name="uq_status_assertions_agency_reference"),
    # A person's records in recording order: statuses and history in one index range.
    Index("ix_status_assertions_person_id", "person_id", "assertion_id"),
)

# Every read by an agency: who, which method, whose data, why, when.
audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", Id, primary_key=True, autoincrement=True),
    Column("caller", String(64), nullable=False),
    Column("method", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Index("ix_audit_events_person_id", "person_id", "event_id"),
)

# Persons whose statuses the settlement service has not received yet (doudi.common.outbox).
status_deliveries = outbox_table(metadata, "status_deliveries")

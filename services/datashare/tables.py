"""The datashare service's tables (SQLAlchemy Core); its migrations create them.

The registry and the audit are append-only: a row is never updated or
deleted. ``status_deliveries`` is an outbox: the persons whose statuses a
subscriber (the settlement service) has not yet received. ``roster_submissions``
records every roster an agency submitted; ``roster_rows`` holds the rows of
each agency's current roster of a region (a superseded roster's rows are
dropped once the difference is recorded as assertions and revocations).
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    text,
)

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
    # The roster whose difference recorded it; NULL for AssertStatus and RevokeStatus.
    Column("submission_id", Id, ForeignKey("roster_submissions.submission_id"), nullable=True),
    # A person's records in recording order: statuses and history in one index range.
    Index("ix_status_assertions_person_id", "person_id", "assertion_id"),
    # AssertStatus and RevokeStatus are idempotent on the agency's reference; a roster's
    # rows keep their references from one roster to the next, so they are not unique.
    Index(
        "uq_status_assertions_agency_reference",
        "agency",
        "reference",
        unique=True,
        sqlite_where=text("submission_id IS NULL"),
        postgresql_where=text("submission_id IS NULL"),
    ),
    Index("ix_status_assertions_submission_id", "submission_id"),
)

# Every roster an agency submitted: what it is of, and what its difference recorded.
roster_submissions = Table(
    "roster_submissions",
    metadata,
    Column("submission_id", Id, primary_key=True, autoincrement=True),
    Column("agency", String(32), nullable=False),
    Column("region", String(32), nullable=False),
    Column("as_of", Date, nullable=False),
    # receiving (rows arriving), current (the agency's roster of the region),
    # superseded (a later one is current), abandoned (the stream broke off).
    Column("state", String(16), nullable=False),
    # Of the accepted rows, whatever their order: the same roster again is a no-op.
    Column("digest", String(64), nullable=True),
    Column("row_count", Integer, nullable=False, server_default="0"),
    Column("accepted_count", Integer, nullable=False, server_default="0"),
    Column("rejected_count", Integer, nullable=False, server_default="0"),
    Column("asserted_count", Integer, nullable=False, server_default="0"),
    Column("changed_count", Integer, nullable=False, server_default="0"),
    Column("revoked_count", Integer, nullable=False, server_default="0"),
    Column("unchanged_count", Integer, nullable=False, server_default="0"),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Index("ix_roster_submissions_agency_region", "agency", "region", "submission_id"),
)

# The accepted rows of each receiving or current roster.
roster_rows = Table(
    "roster_rows",
    metadata,
    Column(
        "submission_id",
        Id,
        ForeignKey("roster_submissions.submission_id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("person_id", String(18), primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("line", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("reference", String(64), nullable=False),
)

# Every read by an agency: who, which method, whose data (or what, when no person's:
# a roster submission, a comparison), why, when.
audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", Id, primary_key=True, autoincrement=True),
    Column("caller", String(64), nullable=False),
    Column("method", String(64), nullable=False),
    Column("person_id", String(18), nullable=True),
    Column("subject", String(64), nullable=True),
    Column("purpose", String(200), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Index("ix_audit_events_person_id", "person_id", "event_id"),
)

# The enrolment register as the enrollment service sent it (doudi.common.outbox): whom
# the rosters are compared with.
register_persons = Table(
    "register_persons",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("version", sqlalchemy.BigInteger, nullable=False),
    Column("name", String(64), nullable=False),
    Column("region", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
register_enrolments = Table(
    "register_enrolments",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
)

# A comparison of a region's current rosters with the register for a year, and its counts.
comparisons = Table(
    "comparisons",
    metadata,
    Column("comparison_id", Id, primary_key=True, autoincrement=True),
    Column("region", String(32), nullable=False),
    Column("year", Integer, nullable=False),
    Column("compared_at", DateTime(timezone=True), nullable=False),
    Column("person_count", Integer, nullable=False, server_default="0"),
    Column("insured_count", Integer, nullable=False, server_default="0"),
    Column("not_insured_count", Integer, nullable=False, server_default="0"),
    Column("insured_elsewhere_count", Integer, nullable=False, server_default="0"),
    Column("name_differs_count", Integer, nullable=False, server_default="0"),
    Column("duplicate_count", Integer, nullable=False, server_default="0"),
    Index("ix_comparisons_region", "region", "comparison_id"),
)
# The roster submissions a comparison compared (every agency's current one of the region).
comparison_submissions = Table(
    "comparison_submissions",
    metadata,
    Column(
        "comparison_id",
        Id,
        ForeignKey("comparisons.comparison_id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column(
        "submission_id",
        Id,
        ForeignKey("roster_submissions.submission_id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("agency", String(32), nullable=False),
)
# One row per certified person of a comparison: the class and why.
comparison_entries = Table(
    "comparison_entries",
    metadata,
    Column(
        "comparison_id",
        Id,
        ForeignKey("comparisons.comparison_id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("person_id", String(18), primary_key=True),
    # insured / not_insured / insured_elsewhere / name_differs
    Column("class", String(20), nullable=False),
    Column("gap_reason", String(16), nullable=True),  # not_registered / not_enrolled
    # Comma-separated, with a comma at each end (",civil_affairs,poverty_office,"), so
    # that one agency's persons are found by LIKE.
    Column("agencies", String(400), nullable=False),
    Column("statuses", String(800), nullable=False),
    Column("roster_name", String(64), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("registered_name", String(64), nullable=True),
    Column("registered_region", String(32), nullable=True),
    Column("duplicate", sqlalchemy.Boolean, nullable=False),
)
Index(
    "ix_comparison_entries_class",
    comparison_entries.c.comparison_id,
    comparison_entries.c["class"],
    comparison_entries.c.person_id,
)

# Persons whose statuses the settlement service has not received yet (doudi.common.outbox).
status_deliveries = outbox_table(metadata, "status_deliveries")

"""The datashare service's tables (SQLAlchemy Core); its migrations create them.

The registry and the audit are append-only: a row is never updated or
deleted. ``status_deliveries`` is an outbox: the persons whose statuses a
subscriber (the settlement service) has not yet received; ``roster_deliveries``
the rosters whose changed persons it has not all received. ``roster_submissions``
records every roster an agency submitted; ``received_rows`` the rows of the
rosters still arriving, ``roster_rows`` the rows of each agency's current roster
of a region (a superseded roster's rows are dropped once the difference is
recorded as assertions and revocations). ``console_users`` holds the web console's
accounts, with their password hashes and lock-outs; ``agency_clients`` the agencies'
systems that call the hub and ``agency_keys`` the digests of their API keys
(services/datashare/agency_keys.py).
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
    Text,
    text,
)

from doudi.common.outbox import outbox_sets_table, outbox_table
from doudi.common.warnings import warnings_table

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
    # No foreign key: a roster records a million rows with the id it has just written,
    # and PostgreSQL would check each (see migration 0005).
    Column("submission_id", Id, nullable=True),
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
    Column("row_count", Integer, nullable=False, server_default="0"),
    Column("accepted_count", Integer, nullable=False, server_default="0"),
    Column("rejected_count", Integer, nullable=False, server_default="0"),
    Column("asserted_count", Integer, nullable=False, server_default="0"),
    Column("changed_count", Integer, nullable=False, server_default="0"),
    Column("revoked_count", Integer, nullable=False, server_default="0"),
    Column("unchanged_count", Integer, nullable=False, server_default="0"),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    # Where its records are: every record of the roster has an assertion_id from
    # records_from to records_to (others' may lie between); NULL before the finish. The
    # sender walks this range for the persons a roster changed, so that status_assertions
    # needs no index of submissions (it cost a third of writing a roster's records).
    Column("records_from", Id, nullable=True),
    Column("records_to", Id, nullable=True),
    Index("ix_roster_submissions_agency_region", "agency", "region", "submission_id"),
)


def _row_values() -> list[Column[object]]:
    """What a roster row says of its person and status, besides them."""
    return [
        Column("line", Integer, nullable=False),
        Column("name", String(64), nullable=False),
        Column("household_id", String(64), nullable=False),
        Column("valid_from", Date, nullable=False),
        Column("valid_to", Date, nullable=True),
        Column("reference", String(64), nullable=False),
    ]


# The accepted rows of each roster still being received, appended in the order they come:
# written into roster_rows' key as they come, in no order, each batch would rewrite most
# of the key's pages. The roster's finish moves them into roster_rows in key order. No key
# (SQLite's rowid is the arrival order): rows are only ever read and deleted a whole
# submission at a time, and a key cost PostgreSQL a tenth of a roster's time.
received_rows = Table(
    "received_rows",
    metadata,
    Column("submission_id", Id, nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("status", String(32), nullable=False),
    *_row_values(),
)

# The accepted rows of each current roster, stored in the order of their key
# (WITHOUT ROWID on SQLite, as the other bulk tables: one B-tree, read in key order). No
# foreign key on the submission: see status_assertions.
roster_rows = Table(
    "roster_rows",
    metadata,
    Column("submission_id", Id, primary_key=True, autoincrement=False),
    Column("person_id", String(18), primary_key=True),
    Column("status", String(32), primary_key=True),
    *_row_values(),
    sqlite_with_rowid=False,
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
    sqlite_with_rowid=False,
)
register_enrolments = Table(
    "register_enrolments",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
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
# One row per certified person of a comparison: the class and why. Written once, by one
# statement, in identity-number order. Most persons are insured and on one roster; the
# others ("notable": the gap, insured elsewhere, names to review, duplicates), a tenth or
# so, have an index of their own: the comparison's counts and its review of names read
# only them (PostgreSQL also for a clerk's page of such a class; SQLite reads the
# comparison's entries in order and skips the others).
comparison_entries = Table(
    "comparison_entries",
    metadata,
    Column("comparison_id", Id, primary_key=True, autoincrement=False),
    Column("person_id", String(18), primary_key=True),
    # insured / not_insured / insured_elsewhere / name_differs
    Column("class", String(20), nullable=False),
    Column("gap_reason", String(16), nullable=True),  # not_registered / not_enrolled
    # Comma-separated, with a comma at each end (",dibao,registered_poor,"), so that an
    # agency's persons are found by LIKE (the agencies follow from the statuses).
    Column("statuses", String(800), nullable=False),
    Column("roster_name", String(64), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("registered_name", String(64), nullable=True),
    Column("registered_region", String(32), nullable=True),
    Column("duplicate", sqlalchemy.Boolean, nullable=False),
    sqlite_with_rowid=False,
)
NOTABLE = text("(class <> 'insured' OR duplicate)")
"""The entries in ``ix_comparison_entries_notable``: a query's WHERE names this very
condition (SQLite uses a partial index only for a query that does). The index holds all
that the comparison reads of them (class, duplicate, registered name), so that SQLite,
without statistics, prefers it to the table."""
Index(
    "ix_comparison_entries_notable",
    comparison_entries.c.comparison_id,
    comparison_entries.c["class"],
    comparison_entries.c.person_id,
    comparison_entries.c.duplicate,
    comparison_entries.c.registered_name,
    sqlite_where=NOTABLE,
    postgresql_where=NOTABLE,
)

# Persons whose statuses the settlement service has not received yet (doudi.common.outbox).
status_deliveries = outbox_table(metadata, "status_deliveries")
# Rosters whose changed persons the settlement service has not all received yet: a set of
# persons each (those with records of the roster), walked in recording order through the
# roster's range of assertion ids (roster_submissions.records_from/records_to).
roster_deliveries = outbox_sets_table(metadata, "roster_deliveries")

# --- dual early warning ---------------------------------------------------------------

# The warnings the assistance service raised (its ids and versions), and what the agencies
# did with them here (doudi.common.warnings).
warnings = warnings_table(metadata, raised_here=False)
# Warnings whose decisions the assistance service has not received yet (doudi.common.outbox).
warning_decision_deliveries = outbox_table(
    metadata, "warning_decision_deliveries", "warning_id", 20
)

# --- the console's accounts -----------------------------------------------------------

# The web console's accounts (services/datashare/console_users.py): the bureau's staff and
# the agencies' clerks. The password only as its argon2id hash.
console_users = Table(
    "console_users",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("display_name", String(64), nullable=False),
    # case_worker / analyst / supervisor / administrator / agency_clerk
    Column("role", String(16), nullable=False),
    Column("agency", String(32), nullable=True),  # an agency clerk's; NULL for staff
    # An agency clerk's regions, space-separated in order; "" for every region (and staff).
    Column("regions", Text, nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("disabled", sqlalchemy.Boolean, nullable=False),
    # Failed logins in a row, counted in SQL (concurrent attempts each count).
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
)


# An agency's system that calls the hub, and the regions its keys serve.
agency_clients = Table(
    "agency_clients",
    metadata,
    Column("client_id", String(48), primary_key=True),  # <agency>-<6 hex digits>
    Column("agency", String(32), nullable=False),
    # The regions its keys serve, space-separated in order; "" for every region.
    Column("regions", Text, nullable=False),
    Column("label", String(128), nullable=False),  # what the bureau calls it
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The SHA-256 digests of the clients' API keys (never a key); two alive during a rotation.
agency_keys = Table(
    "agency_keys",
    metadata,
    Column("key_sha256", String(64), primary_key=True),
    Column("client_id", String(48), ForeignKey("agency_clients.client_id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retires_at", DateTime(timezone=True), nullable=True),  # NULL: not retiring
    Index("ix_agency_keys_client", "client_id", "created_at"),
)

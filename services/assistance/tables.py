"""The assistance service's tables (SQLAlchemy Core); its migrations create them.

``settlement_events`` keeps every settlement and reversal the settlement service sent
(once: by its event id, and by settlement and kind); ``burdens`` and
``burden_payments`` are the ledger they add up to, per person and calendar year
(docs/domain.md section 7). ``assistance_persons`` and ``assistance_statuses`` are the
copies enrollment and the datashare hub send (doudi.common.outbox): who belongs to which
household, and who holds which status when. ``assistance_bills`` are the bills paid
outside the window that clerks enter; they count in the ledger as settlements do. Codes are the core's lower-case strings;
money ``int`` fen.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
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
    # On SQLite the row id itself (INTEGER PRIMARY KEY: one tree, not two; migration 0013).
    Column(
        "event_id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
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
    # SQLite: rows kept in the key's tree (migration 0013).
    sqlite_with_rowid=False,
)

burden_payments = Table(
    "burden_payments",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    # A fund code as the pack names it (``assistance_project``), as wide as settlement's.
    Column("fund", String(32), primary_key=True),
    Column("paid_fen", BigInteger, nullable=False),
    # SQLite: rows kept in the key's tree (migration 0013).
    sqlite_with_rowid=False,
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
    # SQLite: rows kept in the key's tree (migration 0013).
    sqlite_with_rowid=False,
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

# --- bills paid outside the window ---------------------------------------------------

# A bill a clerk entered from receipts (docs/domain.md section 7), once per request id:
# ``digest`` is the content's, to tell a repeat from another bill under the same id.
# ``visit`` is the visit in docs/case-format.md's shape (JSON), so that screening can
# run the engine on it; ``insurance_payments`` [[fund, fen], ...].
assistance_bills = Table(
    "assistance_bills",
    metadata,
    Column(
        "bill_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("digest", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("region", String(32), nullable=False),
    Column("hospital_name", String(128), nullable=False),
    Column("hospital_level", Integer, nullable=True),
    Column("visit_type", String(32), nullable=False),
    Column("out_of_area", Boolean, nullable=False),
    Column("admitted", Date, nullable=True),
    Column("settled_on", Date, nullable=False),
    Column("visit", JSON, nullable=False),
    Column("insurance_payments", JSON, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("insurance_paid_fen", BigInteger, nullable=False),
    Column("out_of_scope_fen", BigInteger, nullable=False),
    Column("self_pay_fen", BigInteger, nullable=False),
    Column("eligible_burden_fen", BigInteger, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("ix_assistance_bills_person", assistance_bills.c.person_id, assistance_bills.c.settled_on)
Index("ix_assistance_bills_region", assistance_bills.c.region, assistance_bills.c.settled_on)
# --- applications (依申请救助; services/assistance/applications.py) ----------------------

# A 64-bit key on PostgreSQL; on SQLite an INTEGER PRIMARY KEY, the only type it autoincrements.
_Id = BigInteger().with_variant(Integer, "sqlite")

# Applications accepted at the window, one row each; the caller's request id makes a
# retried acceptance answer the same row.
applications = Table(
    "applications",
    metadata,
    Column("application_id", _Id, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("person_id", String(18), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("region", String(32), nullable=False),
    # expenditure_hardship / temporary / out_of_area_hardship
    Column("kind", String(32), nullable=False),
    Column("accepted_on", Date, nullable=False),
    # JSON lists of names: the documents received, the proofs a commitment replaces.
    Column("documents_received", String, nullable=False),
    Column("commitments", String, nullable=False),
    Column("case_worker", String(64), nullable=False),
    # accepted / under_review / approved / refused
    Column("state", String(16), nullable=False),
    Column("deadline", Date, nullable=False),
    # Counted in a year the calendar did not know: recounted at each start.
    Column("deadline_provisional", Boolean, nullable=False),
    Column("decided_on", Date, nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decision_reason", String(500), nullable=True),
    Column("approved_amount_fen", BigInteger, nullable=False),
    # expenditure_hardship approved: the status's period, and the hub's assertion once sent.
    Column("status_valid_from", Date, nullable=True),
    Column("status_valid_to", Date, nullable=True),
    Column("status_assertion_id", BigInteger, nullable=True),
)
Index("ix_applications_region", applications.c.region, applications.c.application_id)
Index("ix_applications_person", applications.c.person_id, applications.c.application_id)

# The documents an application was accepted without (容缺受理), and when each came.
application_documents = Table(
    "application_documents",
    metadata,
    Column("application_id", _Id, primary_key=True, autoincrement=False),
    Column("name", String(100), primary_key=True),
    Column("due_on", Date, nullable=False),
    Column("supplied_on", Date, nullable=True),
)

# Persons and years to screen again (主动救助): screening runs read them.
screening_requests = Table(
    "screening_requests",
    metadata,
    Column("request_id", _Id, primary_key=True, autoincrement=True),
    Column("person_id", String(18), nullable=False),
    Column("year", Integer, nullable=False),
    Column("reason", String(64), nullable=False),
    # What asked for it, e.g. "application 12".
    Column("source", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
)

# Persons with an approved expenditure_hardship application the hub has not recorded yet
# (doudi.common.outbox; the version is the latest such application's id).
assertion_deliveries = outbox_table(metadata, "assertion_deliveries")
# --- secondary assistance (services/assistance/secondary.py) ---

secondary_runs = Table(
    "secondary_runs",
    metadata,
    Column("run_id", _Id, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("region", String(32), nullable=False),
    Column("year", Integer, nullable=False),
    Column("through", Date, nullable=False),
    Column("case_worker", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("approver", String(64), nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("entry_count", Integer, nullable=False),
    Column("payable_count", Integer, nullable=False),
    Column("to_pay_fen", BigInteger, nullable=False),
    Column("flagged_count", Integer, nullable=False),
    Column("paid_count", Integer, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    # Space-separated pack ids whose visits could not be judged.
    Column("unjudged_policies", String(512), nullable=False),
)
Index("ix_secondary_runs_region_year", secondary_runs.c.region, secondary_runs.c.year)

secondary_entries = Table(
    "secondary_entries",
    metadata,
    Column(
        "run_id",
        BigInteger,
        ForeignKey("secondary_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("person_id", String(18), primary_key=True),
    Column("policy", String(64), nullable=False),
    Column("eligible_burden_fen", BigInteger, nullable=False),
    Column("threshold_fen", BigInteger, nullable=False),
    Column("share_basis_points", Integer, nullable=False),
    Column("yearly_cap_fen", BigInteger, nullable=False),
    Column("owed_fen", BigInteger, nullable=False),
    Column("paid_before_fen", BigInteger, nullable=False),
    Column("to_pay_fen", BigInteger, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("reason", String(1024), nullable=False),
    # What the approval paid; 0 before it.
    Column("paid_fen", BigInteger, nullable=False),
)

# A person's entries across runs, in run order (migration 0014).
Index("ix_secondary_entries_person", secondary_entries.c.person_id, secondary_entries.c.run_id)

secondary_paid = Table(
    "secondary_paid",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    # What every approved run together paid the person for the year.
    Column("paid_fen", BigInteger, nullable=False),
)
# --- dual early warning ---------------------------------------------------------------

# Each warning raised, and what the agencies did with it (doudi.common.warnings).
warnings = warnings_table(metadata, raised_here=True)

# Warnings the datashare hub has not received yet (doudi.common.outbox), by warning id.
warning_deliveries = outbox_table(metadata, "warning_deliveries", "warning_id", 20)
# --- proactive screening (主动救助; services/assistance/screening.py) -------------------

# A run a case worker starts for a region and year (or the screening requests alone).
screening_runs = Table(
    "screening_runs",
    metadata,
    Column("run_id", _Id, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("region", String(32), nullable=False),
    Column("year", Integer, nullable=False),
    Column("case_worker", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("offer_count", Integer, nullable=False),
    Column("offered_fen", BigInteger, nullable=False),
)
Index("ix_screening_runs_region_year", screening_runs.c.region, screening_runs.c.year)

# One offer per finding: a settled visit recomputed under a status certified later
# (source ``settlement``, reference its settlement id) or a bill paid outside the window
# (source ``bill``, reference its bill id). A visit or bill is paid at most once: the
# confirmed offer of a (source, reference) is unique; a later run re-offers what is not
# confirmed yet.
screening_offers = Table(
    "screening_offers",
    metadata,
    Column("offer_id", _Id, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("region", String(32), nullable=False),
    Column("year", Integer, nullable=False),
    # The visit's or bill's discharge day: the month the reports count it in.
    Column("settled_on", Date, nullable=False),
    Column("visit_type", String(32), nullable=False),
    # Space-separated status codes the person held on that day (the reports' categories).
    Column("statuses", String(512), nullable=False),
    Column("policy", String(64), nullable=False),
    # What the person paid, what the assistance would have paid, and the offer.
    Column("self_pay_fen", BigInteger, nullable=False),
    Column("offered_fen", BigInteger, nullable=False),
    # The figures behind the offer (layers then and recomputed, rules applied), as JSON.
    Column("details", JSON, nullable=False),
    # offered / confirmed / superseded (a later run found other figures)
    Column("state", String(16), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    Column("confirmed_by", String(64), nullable=True),
    # What the confirmation paid; 0 before it.
    Column("paid_fen", BigInteger, nullable=False),
    # The case worker's note on confirming (the person contacted, the account); 0009.
    Column("confirm_note", String(500), nullable=True),
)
Index("ix_screening_offers_region", screening_offers.c.region, screening_offers.c.year)
Index("ix_screening_offers_reference", screening_offers.c.source, screening_offers.c.reference)
# A person's offers across runs, in the order made (migration 0014).
Index("ix_screening_offers_person", screening_offers.c.person_id, screening_offers.c.offer_id)

# What confirmations paid per visit or bill (migration 0009): the row a confirmation
# locks, so that two confirmations of offers of the same visit pay it once.
screening_paid = Table(
    "screening_paid",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("reference", String(64), primary_key=True),
    Column("person_id", String(18), nullable=False),
    Column("year", Integer, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
)

# --- reports (services/assistance/reports.py) -------------------------------------------

# Each person's enrolments as enrollment sent them with the person (replaced whole with
# each newer version): the reports count the subsidised ones (``subsidy_category``).
assistance_enrolments = Table(
    "assistance_enrolments",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("premium_fen", BigInteger, nullable=False),
    # The medical-assistance fund's part of the premium; the person paid the rest.
    Column("subsidy_fen", BigInteger, nullable=False),
    Column("subsidy_category", String(32), nullable=True),
    # When enrollment recorded it (NULL: an older enrollment that did not say).
    Column("enrolled_at", DateTime(timezone=True), nullable=True),
)
Index("ix_assistance_enrolments_year", assistance_enrolments.c.year)


def _report_key() -> list[Column[object]]:
    """A month's row of the ledger's visits: the region whose pack settled them, the
    discharge month, the category (a status code, ``monitored`` for anyone with a status,
    "" for every visit) and the visit type."""
    return [
        Column("region", String(32), primary_key=True),
        Column("year", Integer, primary_key=True, autoincrement=False),
        Column("month", Integer, primary_key=True, autoincrement=False),
        Column("category", String(32), primary_key=True),
        Column("visit_type", String(32), primary_key=True),
    ]


# What ``service.add_to_ledger`` added, net of reversals, per month, category and type.
report_visits = Table(
    "report_visits",
    metadata,
    *_report_key(),
    Column("visits", BigInteger, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("fund_paid_fen", BigInteger, nullable=False),
    Column("personal_burden_fen", BigInteger, nullable=False),
    Column("eligible_burden_fen", BigInteger, nullable=False),
)

# Each fund's payments of those visits; ``cleared_fen`` the window's settlements' alone
# (what the fund owes the hospitals; a bill paid outside the window was paid there).
report_fund_payments = Table(
    "report_fund_payments",
    metadata,
    *_report_key(),
    Column("fund", String(32), primary_key=True),
    Column("paid_fen", BigInteger, nullable=False),
    Column("cleared_fen", BigInteger, nullable=False),
)

# The report's reads of the other features' tables, each from an index alone and in the
# order its figure groups them (migration 0011): a person's region, the year's subsidised
# enrolments by category, the warnings by kind, an approved run's payments. On SQLite the
# migration also indexes the status histories as text (``ix_assistance_statuses_periods``,
# not declared here: SQLite's expression indexes are not compared, and PostgreSQL, which
# groups them by hashing, would refuse a history longer than a B-tree entry).
Index(
    "ix_assistance_persons_person_region",
    assistance_persons.c.person_id,
    assistance_persons.c.region,
)
Index(
    "ix_warnings_report",
    warnings.c.region,
    warnings.c.kind,
    warnings.c.raised_at,
    warnings.c.state,
    warnings.c.decided_at,
    warnings.c.due_on,
)
Index(
    "ix_assistance_enrolments_subsidised",
    assistance_enrolments.c.year,
    assistance_enrolments.c.subsidy_category,
    assistance_enrolments.c.person_id,
    assistance_enrolments.c.enrolled_at,
    assistance_enrolments.c.premium_fen,
    assistance_enrolments.c.subsidy_fen,
)
Index(
    "ix_secondary_entries_paid",
    secondary_entries.c.run_id,
    secondary_entries.c.person_id,
    secondary_entries.c.paid_fen,
)

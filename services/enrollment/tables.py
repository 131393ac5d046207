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

# Persons whose name, household, region and enrolments (settlement: also certificates
# and registrations) a subscriber (settlement, datashare, assistance) has not received
# yet (doudi.common.outbox); ``version`` counts the person's records
# (service.coverage_versions).
coverage_deliveries = outbox_table(metadata, "coverage_deliveries")

# --- outpatient certificates and registrations (certificates.py, registrations.py) ------

# Applications for an outpatient certificate (门诊慢特病), decided in a region's monthly
# batch. ``diseases`` and ``diagnoses`` are JSON lists: the pack's disease ids, and the
# ICD-10 codes as given. One pending application a person (the partial unique index).
certificate_applications = Table(
    "certificate_applications",
    metadata,
    Column("application_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("person_id", String(18), ForeignKey("persons.person_id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("diseases", String(512), nullable=False),
    Column("diagnoses", String(512), nullable=False),
    Column("health_centre", String(64), nullable=False),
    Column("applied_on", Date, nullable=False),
    # pending, approved or rejected
    Column("state", String(16), nullable=False),
    Column("batch_id", BigInteger, ForeignKey("certificate_batches.batch_id"), nullable=True),
    Column("reason", String(200), nullable=False, server_default=""),
    _created_at(),
)
# A batch walks its region's pending applications in id order.
Index(
    "ix_certificate_applications_region_state",
    certificate_applications.c.region,
    certificate_applications.c.state,
    certificate_applications.c.application_id,
)
Index(
    "ux_certificate_applications_pending",
    certificate_applications.c.person_id,
    unique=True,
    sqlite_where=certificate_applications.c.state == "pending",
    postgresql_where=certificate_applications.c.state == "pending",
)

# A region's monthly batch ("2026-11"), once.
certificate_batches = Table(
    "certificate_batches",
    metadata,
    Column("batch_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("region", String(32), nullable=False),
    Column("month", String(7), nullable=False),
    Column("decided_on", Date, nullable=False),
    Column("approved_count", Integer, nullable=False),
    Column("rejected_count", Integer, nullable=False),
    Column("certificate_count", Integer, nullable=False),
    _created_at(),
    sqlalchemy.UniqueConstraint("region", "month", name="uq_certificate_batches_region_month"),
)

# Certificates: one disease each, valid from the batch's day for the pack's years.
certificates = Table(
    "certificates",
    metadata,
    Column("certificate_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("person_id", String(18), ForeignKey("persons.person_id"), nullable=False),
    Column("disease", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column(
        "application_id",
        BigInteger,
        ForeignKey("certificate_applications.application_id"),
        nullable=False,
    ),
    _created_at(),
)
Index("ix_certificates_person_id", certificates.c.person_id)

# Registrations for care outside the person's region (异地安置 relocated, 转诊备案
# referred). ``ended_at``: when EndRegistration ended (or cancelled) it, once.
registrations = Table(
    "registrations",
    metadata,
    Column("registration_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("person_id", String(18), ForeignKey("persons.person_id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("region", String(32), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("cancelled", sqlalchemy.Boolean, nullable=False, server_default=sqlalchemy.false()),
    Column(
        "recorded_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=sqlalchemy.func.current_timestamp(),
    ),
)
Index("ix_registrations_person_id", registrations.c.person_id)

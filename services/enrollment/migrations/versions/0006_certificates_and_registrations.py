"""Outpatient certificates (applications, monthly batches, certificates) and registrations
for care outside the region (issue 21); every person queued for settlement again, whose
copy now carries them.

The coverage's version counts from 2 from here (services/enrollment/service.py,
``coverage_versions``): one above any version sent before, so that settlement replaces
its copy of every person with one holding the (so far empty) lists, and checks
certificates and registrations for all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    )


def upgrade() -> None:
    op.create_table(
        "certificate_batches",
        sa.Column("batch_id", Id, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("decided_on", sa.Date, nullable=False),
        sa.Column("approved_count", sa.Integer, nullable=False),
        sa.Column("rejected_count", sa.Integer, nullable=False),
        sa.Column("certificate_count", sa.Integer, nullable=False),
        _created_at(),
        sa.UniqueConstraint("region", "month", name="uq_certificate_batches_region_month"),
    )
    op.create_table(
        "certificate_applications",
        sa.Column("application_id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("person_id", sa.String(18), sa.ForeignKey("persons.person_id"), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("diseases", sa.String(512), nullable=False),
        sa.Column("diagnoses", sa.String(512), nullable=False),
        sa.Column("health_centre", sa.String(64), nullable=False),
        sa.Column("applied_on", sa.Date, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column(
            "batch_id", sa.BigInteger, sa.ForeignKey("certificate_batches.batch_id"), nullable=True
        ),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        _created_at(),
    )
    op.create_index(
        "ix_certificate_applications_region_state",
        "certificate_applications",
        ["region", "state", "application_id"],
    )
    op.create_index(
        "ux_certificate_applications_pending",
        "certificate_applications",
        ["person_id"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "certificates",
        sa.Column("certificate_id", Id, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(18), sa.ForeignKey("persons.person_id"), nullable=False),
        sa.Column("disease", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=False),
        sa.Column(
            "application_id",
            sa.BigInteger,
            sa.ForeignKey("certificate_applications.application_id"),
            nullable=False,
        ),
        _created_at(),
    )
    op.create_index("ix_certificates_person_id", "certificates", ["person_id"])
    op.create_table(
        "registrations",
        sa.Column("registration_id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("person_id", sa.String(18), sa.ForeignKey("persons.person_id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
    )
    op.create_index("ix_registrations_person_id", "registrations", ["person_id"])
    # Every person to settlement again, at the new versions (2 + enrolments: no person has
    # a certificate or registration yet), replacing an older queued version.
    op.execute(
        "INSERT INTO coverage_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'settlement', persons.person_id, 2 + COUNT(enrolments.year), "
        "CURRENT_TIMESTAMP "
        "FROM persons LEFT JOIN enrolments ON enrolments.person_id = persons.person_id "
        "GROUP BY persons.person_id "
        "ON CONFLICT (subscriber, person_id) DO UPDATE SET version = excluded.version, "
        "queued_at = excluded.queued_at "
        "WHERE coverage_deliveries.version < excluded.version"
    )


def downgrade() -> None:
    """The tables go; the queued persons stay (a person sent once more changes nothing)."""
    op.drop_index("ix_registrations_person_id", table_name="registrations")
    op.drop_table("registrations")
    op.drop_index("ix_certificates_person_id", table_name="certificates")
    op.drop_table("certificates")
    op.drop_index("ux_certificate_applications_pending", table_name="certificate_applications")
    op.drop_index("ix_certificate_applications_region_state", table_name="certificate_applications")
    op.drop_table("certificate_applications")
    op.drop_table("certificate_batches")

"""Applications (依申请救助), their missing documents, screening requests and the outbox of
statuses to certify through the hub.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
# The lead rechains to 0003 (persons and statuses) at merge.
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("application_id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("accepted_on", sa.Date, nullable=False),
        sa.Column("documents_received", sa.String, nullable=False),
        sa.Column("commitments", sa.String, nullable=False),
        sa.Column("case_worker", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("deadline_provisional", sa.Boolean, nullable=False),
        sa.Column("decided_on", sa.Date, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decision_reason", sa.String(500), nullable=True),
        sa.Column("approved_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("status_valid_from", sa.Date, nullable=True),
        sa.Column("status_valid_to", sa.Date, nullable=True),
        sa.Column("status_assertion_id", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_applications_region", "applications", ["region", "application_id"])
    op.create_index("ix_applications_person", "applications", ["person_id", "application_id"])
    op.create_table(
        "application_documents",
        sa.Column("application_id", Id, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("supplied_on", sa.Date, nullable=True),
    )
    op.create_table(
        "screening_requests",
        sa.Column("request_id", Id, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "assertion_deliveries",
        sa.Column("subscriber", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "person_id", name="pk_assertion_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("assertion_deliveries")
    op.drop_table("screening_requests")
    op.drop_table("application_documents")
    op.drop_index("ix_applications_person", table_name="applications")
    op.drop_index("ix_applications_region", table_name="applications")
    op.drop_table("applications")

"""The status registry (status_assertions) and the audit of agency reads (audit_events).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    # 64 bits on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "status_assertions",
        sa.Column("assertion_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("agency", "reference", name="uq_status_assertions_agency_reference"),
    )
    op.create_index(
        "ix_status_assertions_person_id", "status_assertions", ["person_id", "assertion_id"]
    )
    op.create_table(
        "audit_events",
        sa.Column("event_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_events_person_id", "audit_events", ["person_id", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_person_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_status_assertions_person_id", table_name="status_assertions")
    op.drop_table("status_assertions")

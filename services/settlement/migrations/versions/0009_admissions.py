"""The admission desk (issue 21):

- ``hospitals.reformed``: a level-2 hospital of the public-hospital reform (Tianjin's
  residents' general outpatient cover), false for every hospital registered before;
- ``admissions``: the admissions registered at the hospitals' desks, with the eligibility
  answer of their day, unique per hospital and idempotency key;
- ``settlements.admission_id``: the admission a settlement discharged (NULL: none);
- ``person_reads``: who read a person's data at the admission desk (the audit).

Added columns only, nullable or with a default: SQLite adds them without copying a table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "hospitals",
        sa.Column("reformed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("settlements", sa.Column("admission_id", sa.String(36), nullable=True))
    op.create_table(
        "admissions",
        sa.Column("admission_id", sa.String(36), primary_key=True),
        sa.Column(
            "hospital_id", sa.String(32), sa.ForeignKey("hospitals.hospital_id"), nullable=False
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("admitted_on", sa.Date(), nullable=False),
        sa.Column("referred", sa.Boolean(), nullable=False),
        sa.Column("out_of_area", sa.Boolean(), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("no_deposit_rule", sa.String(64), nullable=True),
        sa.Column("no_deposit_reason", sa.String(256), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("settlement_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("hospital_id", "request_id", name="uq_admissions_request"),
    )
    op.create_index("ix_admissions_settlement", "admissions", ["settlement_id"])
    op.create_table(
        "person_reads",
        sa.Column(
            "read_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("reader", sa.String(32), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_person_reads_person", "person_reads", ["person_id", "read_id"])


def downgrade() -> None:
    op.drop_index("ix_person_reads_person", table_name="person_reads")
    op.drop_table("person_reads")
    op.drop_index("ix_admissions_settlement", table_name="admissions")
    op.drop_table("admissions")
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35 and later): no copy of two tables
    # that others refer to.
    op.execute("ALTER TABLE settlements DROP COLUMN admission_id")
    op.execute("ALTER TABLE hospitals DROP COLUMN reformed")

"""The enrolment register's copy, roster comparisons, and audit rows of reads that are
not of one person (a roster submission, a comparison).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTS = (
    "person_count",
    "insured_count",
    "not_insured_count",
    "insured_elsewhere_count",
    "name_differs_count",
    "duplicate_count",
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("person_id", existing_type=sa.String(18), nullable=True)
        batch.add_column(sa.Column("subject", sa.String(64), nullable=True))
    op.create_table(
        "register_persons",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "register_enrolments",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "comparisons",
        sa.Column("comparison_id", Id, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("compared_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in COUNTS),
    )
    op.create_index("ix_comparisons_region", "comparisons", ["region", "comparison_id"])
    op.create_table(
        "comparison_submissions",
        sa.Column(
            "comparison_id",
            Id,
            sa.ForeignKey("comparisons.comparison_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column(
            "submission_id",
            Id,
            sa.ForeignKey("roster_submissions.submission_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("agency", sa.String(32), nullable=False),
    )
    op.create_table(
        "comparison_entries",
        sa.Column(
            "comparison_id",
            Id,
            sa.ForeignKey("comparisons.comparison_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("class", sa.String(20), nullable=False),
        sa.Column("gap_reason", sa.String(16), nullable=True),
        sa.Column("agencies", sa.String(400), nullable=False),
        sa.Column("statuses", sa.String(800), nullable=False),
        sa.Column("roster_name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("registered_name", sa.String(64), nullable=True),
        sa.Column("registered_region", sa.String(32), nullable=True),
        sa.Column("duplicate", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_comparison_entries_class",
        "comparison_entries",
        ["comparison_id", "class", "person_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_comparison_entries_class", "comparison_entries")
    op.drop_table("comparison_entries")
    op.drop_table("comparison_submissions")
    op.drop_index("ix_comparisons_region", "comparisons")
    op.drop_table("comparisons")
    op.drop_table("register_enrolments")
    op.drop_table("register_persons")
    # The audit is never deleted: reads of no one person's data keep an empty person.
    op.execute("UPDATE audit_events SET person_id = '' WHERE person_id IS NULL")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("subject")
        batch.alter_column("person_id", existing_type=sa.String(18), nullable=False)

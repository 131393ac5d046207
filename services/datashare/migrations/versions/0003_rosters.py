"""Agencies' rosters: submissions, the rows of each current roster, and the registry's
records linked to the roster whose difference recorded them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WITHOUT_ROSTER = sa.text("submission_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "roster_submissions",
        sa.Column("submission_id", Id, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=True),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "row_count",
                "accepted_count",
                "rejected_count",
                "asserted_count",
                "changed_count",
                "revoked_count",
                "unchanged_count",
            )
        ),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_roster_submissions_agency_region",
        "roster_submissions",
        ["agency", "region", "submission_id"],
    )
    op.create_table(
        "roster_rows",
        sa.Column(
            "submission_id",
            Id,
            sa.ForeignKey("roster_submissions.submission_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("status", sa.String(32), primary_key=True),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("status_assertions") as batch:
        batch.add_column(
            sa.Column(
                "submission_id",
                Id,
                sa.ForeignKey(
                    "roster_submissions.submission_id",
                    name="fk_status_assertions_submission_id",
                ),
                nullable=True,
            )
        )
        batch.drop_constraint("uq_status_assertions_agency_reference", type_="unique")
    op.create_index(
        "uq_status_assertions_agency_reference",
        "status_assertions",
        ["agency", "reference"],
        unique=True,
        sqlite_where=WITHOUT_ROSTER,
        postgresql_where=WITHOUT_ROSTER,
    )
    op.create_index("ix_status_assertions_submission_id", "status_assertions", ["submission_id"])


def downgrade() -> None:
    op.drop_index("ix_status_assertions_submission_id", "status_assertions")
    op.drop_index("uq_status_assertions_agency_reference", "status_assertions")
    with op.batch_alter_table("status_assertions") as batch:
        batch.drop_column("submission_id")
        batch.create_unique_constraint(
            "uq_status_assertions_agency_reference", ["agency", "reference"]
        )
    op.drop_table("roster_rows")
    op.drop_table("roster_submissions")

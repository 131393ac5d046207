"""Indexes for the report (issue 18's goal for ``GetReport``): each lets the database read
what a figure needs from an index alone, in the order the figure groups it.

- ``assistance_persons (person_id, region)``: the monitored people's join finds a person's
  region in the index;
- ``assistance_statuses (CAST(periods AS TEXT), person_id)``, on SQLite alone: their
  distinct status histories in order, without sorting them (PostgreSQL groups them by
  hashing, and would refuse a history too long for a B-tree entry even compressed);
- ``assistance_enrolments (year, subsidy_category, person_id, enrolled_at, premium_fen,
  subsidy_fen)``: the year's subsidised enrolments by category, without the others;
- ``warnings (region, kind, raised_at, state, decided_at, due_on)``: the warnings'
  figures by kind;
- ``secondary_entries (run_id, person_id, paid_fen)``: an approved run's payments, in
  identity-number order (its persons counted once without sorting them again).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_assistance_persons_person_region", "assistance_persons", ["person_id", "region"]
    )
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "ix_assistance_statuses_periods",
            "assistance_statuses",
            [sa.text("CAST(periods AS TEXT)"), "person_id"],
        )
    op.create_index(
        "ix_warnings_report",
        "warnings",
        ["region", "kind", "raised_at", "state", "decided_at", "due_on"],
    )
    op.create_index(
        "ix_assistance_enrolments_subsidised",
        "assistance_enrolments",
        ["year", "subsidy_category", "person_id", "enrolled_at", "premium_fen", "subsidy_fen"],
    )
    op.create_index(
        "ix_secondary_entries_paid", "secondary_entries", ["run_id", "person_id", "paid_fen"]
    )


def downgrade() -> None:
    op.drop_index("ix_secondary_entries_paid", "secondary_entries")
    op.drop_index("ix_assistance_enrolments_subsidised", "assistance_enrolments")
    op.drop_index("ix_warnings_report", "warnings")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_assistance_statuses_periods", "assistance_statuses")
    op.drop_index("ix_assistance_persons_person_region", "assistance_persons")

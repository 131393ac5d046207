"""Persons keyed by their identity number, and their enrolment per year.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.String(6), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        _created_at(),
    )
    op.create_index("ix_persons_region_person_id", "persons", ["region", "person_id"])
    op.create_table(
        "enrolments",
        sa.Column("person_id", sa.String(18), sa.ForeignKey("persons.person_id"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("employment", sa.String(16), nullable=True),
        sa.Column("tier", sa.String(16), nullable=True),
        sa.Column("premium_fen", sa.BigInteger, nullable=False),
        sa.Column("premium_payer", sa.String(32), nullable=False),
        _created_at(),
    )


def downgrade() -> None:
    op.drop_table("enrolments")
    op.drop_index("ix_persons_region_person_id", table_name="persons")
    op.drop_table("persons")


def _created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    )

"""Reports (issue 18, item 7): the persons' enrolments enrollment sends (the subsidised
ones are reported), and the monthly aggregate of the ledger's visits the reports read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
# Another 0009 (screening) may be chained before this one at merge.
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("month", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("visit_type", sa.String(32), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "assistance_enrolments",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("premium_fen", sa.BigInteger, nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger, nullable=False),
        sa.Column("subsidy_category", sa.String(32), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_assistance_enrolments_year", "assistance_enrolments", ["year"])
    op.create_table(
        "report_visits",
        *_key(),
        sa.Column("visits", sa.BigInteger, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("personal_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("eligible_burden_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_fund_payments",
        *_key(),
        sa.Column("fund", sa.String(32), primary_key=True),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
        sa.Column("cleared_fen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("report_fund_payments")
    op.drop_table("report_visits")
    op.drop_table("assistance_enrolments")

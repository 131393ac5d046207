"""Secondary assistance (二次救助): runs, their entries, and what was paid per person and year.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
# The lead rechains the reserved numbers (0004, 0005) at merge.
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secondary_runs",
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("through", sa.Date, nullable=False),
        sa.Column("case_worker", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approver", sa.String(64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_count", sa.Integer, nullable=False),
        sa.Column("payable_count", sa.Integer, nullable=False),
        sa.Column("to_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("flagged_count", sa.Integer, nullable=False),
        sa.Column("paid_count", sa.Integer, nullable=False),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
        sa.Column("unjudged_policies", sa.String(512), nullable=False),
    )
    op.create_index("ix_secondary_runs_region_year", "secondary_runs", ["region", "year"])
    op.create_table(
        "secondary_entries",
        sa.Column(
            "run_id",
            sa.BigInteger,
            sa.ForeignKey("secondary_runs.run_id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("eligible_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("threshold_fen", sa.BigInteger, nullable=False),
        sa.Column("share_basis_points", sa.Integer, nullable=False),
        sa.Column("yearly_cap_fen", sa.BigInteger, nullable=False),
        sa.Column("owed_fen", sa.BigInteger, nullable=False),
        sa.Column("paid_before_fen", sa.BigInteger, nullable=False),
        sa.Column("to_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "secondary_paid",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secondary_paid")
    op.drop_table("secondary_entries")
    op.drop_index("ix_secondary_runs_region_year", table_name="secondary_runs")
    op.drop_table("secondary_runs")

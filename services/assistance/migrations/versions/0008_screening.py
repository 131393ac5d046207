"""Proactive screening (主动救助): runs and their offers (issue 18, item 5).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "screening_runs",
        sa.Column("run_id", _Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("case_worker", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offer_count", sa.Integer, nullable=False),
        sa.Column("offered_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_screening_runs_region_year", "screening_runs", ["region", "year"])
    op.create_table(
        "screening_offers",
        sa.Column("offer_id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("visit_type", sa.String(32), nullable=False),
        sa.Column("statuses", sa.String(512), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("self_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("offered_fen", sa.BigInteger, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by", sa.String(64), nullable=True),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_screening_offers_region", "screening_offers", ["region", "year"])
    op.create_index("ix_screening_offers_reference", "screening_offers", ["source", "reference"])


def downgrade() -> None:
    op.drop_table("screening_offers")
    op.drop_table("screening_runs")

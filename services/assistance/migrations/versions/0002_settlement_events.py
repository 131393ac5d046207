"""Settlement events and the burden ledger they add up to.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_events",
        sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("settlement_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("visit_type", sa.String(32), nullable=False),
        sa.Column("admitted", sa.Date, nullable=True),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("in_scope_fen", sa.BigInteger, nullable=False),
        sa.Column("out_of_scope_fen", sa.BigInteger, nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("self_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("payments", sa.String, nullable=False),
        sa.Column("statuses", sa.String(512), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.UniqueConstraint("settlement_id", "kind", name="uq_settlement_events_settlement_kind"),
    )
    op.create_index("ix_settlement_events_person", "settlement_events", ["person_id", "settled_on"])
    op.create_table(
        "burdens",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("personal_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("eligible_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("inpatient_visits", sa.Integer, nullable=False),
        sa.Column("outpatient_chronic_visits", sa.Integer, nullable=False),
        sa.Column("outpatient_major_visits", sa.Integer, nullable=False),
        sa.Column("outpatient_general_visits", sa.Integer, nullable=False),
        sa.Column("pharmacy_visits", sa.Integer, nullable=False),
    )
    op.create_table(
        "burden_payments",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("fund", sa.String(16), primary_key=True),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("burden_payments")
    op.drop_table("burdens")
    op.drop_index("ix_settlement_events_person", table_name="settlement_events")
    op.drop_table("settlement_events")

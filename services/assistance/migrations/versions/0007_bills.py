"""Bills paid outside the window, entered by clerks from receipts (issue 18, item 2).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
# The lead rechains this after 0006 at merge (numbers 0004-0006 are reserved).
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assistance_bills",
        sa.Column(
            "bill_id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("hospital_name", sa.String(128), nullable=False),
        sa.Column("hospital_level", sa.Integer, nullable=True),
        sa.Column("visit_type", sa.String(32), nullable=False),
        sa.Column("out_of_area", sa.Boolean, nullable=False),
        sa.Column("admitted", sa.Date, nullable=True),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("visit", sa.JSON, nullable=False),
        sa.Column("insurance_payments", sa.JSON, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("insurance_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("out_of_scope_fen", sa.BigInteger, nullable=False),
        sa.Column("self_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("eligible_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assistance_bills_person", "assistance_bills", ["person_id", "settled_on"])
    op.create_index("ix_assistance_bills_region", "assistance_bills", ["region", "settled_on"])


def downgrade() -> None:
    op.drop_table("assistance_bills")

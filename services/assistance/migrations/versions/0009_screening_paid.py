"""Proactive screening (主动救助): what confirmations paid per visit or bill, and the case
worker's note on each confirmed offer (issue 18, item 5).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("screening_offers", sa.Column("confirm_note", sa.String(500), nullable=True))
    op.create_table(
        "screening_paid",
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("reference", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("screening_paid")
    with op.batch_alter_table("screening_offers") as batch:
        batch.drop_column("confirm_note")

"""The copies of persons (households) and statuses that enrollment and datashare send;
a fund's code as wide as settlement's (a pack's fund may be named, ``assistance_project``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("burden_payments") as table:
        table.alter_column("fund", type_=sa.String(32), existing_type=sa.String(16))
    op.create_table(
        "assistance_persons",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("years", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assistance_persons_household", "assistance_persons", ["household_id"])
    op.create_index("ix_assistance_persons_region", "assistance_persons", ["region"])
    op.create_table(
        "assistance_statuses",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("periods", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("burden_payments") as table:
        table.alter_column("fund", type_=sa.String(16), existing_type=sa.String(32))
    op.drop_table("assistance_statuses")
    op.drop_table("assistance_persons")
